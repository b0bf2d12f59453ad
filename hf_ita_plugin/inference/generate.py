"""Text generation with transformers: chat messages in, the assistant's reply out.

One implementation for evaluation answers, Hub pull's smoke reply, the chat back end and the
data teacher: the conversation is rendered with the tokenizer's chat template
(:func:`hf_ita_plugin.templates.render`), decoding is greedy (``temperature`` 0 or None) or
sampled (``temperature``, ``top_k``, ``top_p``, ``seed``), and generation stops at the model's
EOS or at the template's end-of-turn tokens (:func:`stop_token_ids`).

Example::

    text = generate(model, tokenizer, [{"role": "user", "content": "Ciao!"}], max_new_tokens=32)
    for chunk in stream(model, tokenizer, messages, temperature=0.7, seed=1):
        print(chunk, end="", flush=True)
"""

from __future__ import annotations

import threading
from typing import Any, Iterator, Sequence

from ..errors import ModelError

Messages = Sequence[dict[str, str]]


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids of the model's generation config and tokenizer, plus the chat template's end-of-turn tokens."""
    from ..templates import registry_template_of

    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    tpl = registry_template_of(tokenizer)
    for text in (tpl.end_of_turn_for(tokenizer) if tpl else ()):
        tid = tokenizer.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(ids)


def _decoding_kwargs(*, max_new_tokens: int, temperature: float | None, top_k: int | None, top_p: float | None,
                     repetition_penalty: float | None) -> dict[str, Any]:
    sample = bool(temperature)
    kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": sample}
    if repetition_penalty is not None:
        kwargs["repetition_penalty"] = float(repetition_penalty)
    if sample:
        kwargs["temperature"] = float(temperature)
        if top_k is not None:
            kwargs["top_k"] = int(top_k)
        if top_p is not None:
            kwargs["top_p"] = float(top_p)
    return kwargs


def generate_batch(model, tokenizer, conversations: Sequence[Messages], *, max_new_tokens: int = 256,
                   temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                   repetition_penalty: float | None = None, seed: int | None = None, batch_size: int = 8,
                   streamer=None, stop_ids: Sequence[int] | None = None, progress: bool = False,
                   desc: str = "risposte / answers") -> list[str]:
    """The replies to ``conversations`` (each a list of ``{"role", "content"}`` messages), batched.

    Prompts are left-padded so every row ends where generation starts. ``seed`` seeds torch once
    before the first batch. A ``streamer`` (e.g. ``TextIteratorStreamer``) receives the tokens;
    it needs ``batch_size`` 1. The model is put in eval mode and restored afterwards.
    """
    import torch
    from tqdm.auto import tqdm

    from ..templates import render

    texts = [render(tokenizer, list(c), add_generation_prompt=True) for c in conversations]
    stops = list(stop_ids) if stop_ids is not None else stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
        tokenizer.eos_token_id if tokenizer.eos_token_id is not None else stops[0])
    kwargs = _decoding_kwargs(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                              repetition_penalty=repetition_penalty)
    kwargs.update(pad_token_id=pad_id, eos_token_id=stops or None)
    if streamer is not None:
        if batch_size != 1 and len(texts) > 1:
            raise ValueError("a streamer follows one conversation at a time: batch_size must be 1")
        kwargs["streamer"] = streamer
    device = next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(int(seed))
    answers: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not progress, leave=False):
            batch = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[start : start + batch_size]]
            width = max(len(ids) for ids in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ids in enumerate(batch):
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                attention[row, width - len(ids):] = 1
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
            answers.extend(tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
                           for row in range(len(batch)))
    finally:
        model.train(was_training)
    return answers


def generate(model, tokenizer, messages: Messages, **options) -> str:
    """The reply to one conversation (see :func:`generate_batch` for the options)."""
    return generate_batch(model, tokenizer, [messages], batch_size=1, **options)[0]


def stream(model, tokenizer, messages: Messages, **options) -> Iterator[str]:
    """The reply to one conversation as text chunks while it is generated (options of :func:`generate`).

    Generation runs in a worker thread; an error there is raised here as :class:`ModelError`.
    """
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []

    def run():
        try:
            generate(model, tokenizer, messages, streamer=streamer, **options)
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, name="hf-ita-generate", daemon=True)
    worker.start()
    for text in streamer:
        if text:
            yield text
    worker.join()
    if errors:
        raise ModelError(f"generazione fallita / generation failed: {type(errors[0]).__name__}: {errors[0]}")


__all__ = ["generate", "generate_batch", "stream", "stop_token_ids"]
