"""Held-out measurements that mean something across models.

- :func:`bits_per_byte`: negative log-likelihood of a text in bits per UTF-8 byte. Unlike token
  perplexity it does not depend on the tokenizer, so base and fine-tune (or two model families)
  compare directly.
- :func:`response_loss`: mean cross-entropy (nats per token) on the assistant tokens of held-out
  conversations, with the training masks: how well the model predicts good Italian answers.
- :func:`heldout_metrics`: both, as the recipe (before/after training) and ``hf-ita eval`` report
  them; :func:`load_bpb_text` reads the prose bits per byte is measured on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..data import bundled_data_path
from ..errors import DataError, bilingual


@dataclass
class BitsPerByte:
    bits_per_byte: float
    n_bytes: int
    n_tokens: int


def _document_start_id(tokenizer) -> int | None:
    for attr in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return None


def split_documents(text: str) -> list[str]:
    """Split prose into documents at blank lines, keeping paragraphs together as written."""
    return [d.strip() for d in text.split("\n\n") if d.strip()]


@torch.no_grad()
def bits_per_byte(model, tokenizer, text: str | Sequence[str], *, max_length: int = 512,
                  progress: bool = True, desc: str = "bits/byte") -> BitsPerByte:
    """Bits per UTF-8 byte of ``text`` (a string split at blank lines, or a list of documents).

    Each document is scored on its own, preceded by the tokenizer's BOS (or EOS) token as the
    document start; documents longer than ``max_length`` tokens are scored with a sliding window
    that keeps half a window of context, so every token is predicted exactly once.
    """
    docs = split_documents(text) if isinstance(text, str) else [d for d in text if d.strip()]
    if not docs:
        raise DataError(bilingual("il testo è vuoto", "the text is empty", where="bits-per-byte"))
    start_id = _document_start_id(tokenizer)
    device = _model_device(model)
    total_nll, total_bytes, total_tokens = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        for doc in tqdm(docs, desc=desc, disable=not progress, leave=False):
            ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
            if not ids:
                continue
            total_nll += _document_nll(model, ids, start_id, max_length, device)
            total_bytes += len(doc.encode("utf-8"))
            total_tokens += len(ids)
    finally:
        model.train(was_training)
    return BitsPerByte(total_nll / math.log(2) / total_bytes, total_bytes, total_tokens)


def _document_nll(model, ids: list[int], start_id: int | None, max_length: int, device) -> float:
    """Sum of NLL (nats) of every token of ``ids``, each predicted once."""
    prefix = [start_id] if start_id is not None else []
    window = max_length - len(prefix)
    stride = max(1, window // 2)
    nll, scored_until = 0.0, 0 if prefix else 1  # without a start token the first token is not scored
    begin = 0
    while scored_until < len(ids):
        end = min(len(ids), max(begin + window, scored_until + 1))
        chunk = prefix + ids[begin:end] if begin == 0 else ids[begin:end]
        input_ids = torch.tensor([chunk], device=device)
        logits = model(input_ids=input_ids).logits[0].float()
        offset = len(chunk) - (end - begin)  # tokens before ids[begin] in the chunk
        # logits at chunk position p predict chunk token p+1
        first_target = scored_until - begin + offset
        targets = input_ids[0, first_target:]
        log_probs = torch.log_softmax(logits[first_target - 1 : len(chunk) - 1], dim=-1)
        nll -= log_probs.gather(1, targets[:, None]).sum().item()
        scored_until = end
        begin = max(0, end - stride) if end < len(ids) else end
    return nll


@dataclass
class ResponseLoss:
    loss: float
    """Mean NLL (nats) per assistant token."""
    n_tokens: int
    n_examples: int


@torch.no_grad()
def response_loss(model, examples: Sequence[dict[str, Any]], *, batch_size: int = 8, pad_id: int = 0,
                  progress: bool = True, desc: str = "response loss") -> ResponseLoss:
    """Mean cross-entropy on assistant tokens of pre-tokenized examples.

    ``examples`` are dicts with ``input_ids`` and ``assistant_masks`` (see
    :func:`hf_ita_plugin.templates.tokenize_conversation`).
    """
    usable = [e for e in examples if sum(e["assistant_masks"][1:]) > 0]
    if not usable:
        raise DataError(bilingual("nessun esempio held-out ha token dell'assistente", "no held-out example has assistant tokens",
                                  where="response loss"))
    device = _model_device(model)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        order = sorted(range(len(usable)), key=lambda i: len(usable[i]["input_ids"]))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
            width = max(len(usable[i]["input_ids"]) for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, i in enumerate(batch):
                seq = usable[i]["input_ids"]
                ids[row, : len(seq)] = torch.tensor(seq)
                attn[row, : len(seq)] = 1
                mask[row, : len(seq)] = torch.tensor(usable[i]["assistant_masks"], dtype=torch.bool)
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            target_ll = log_probs.gather(2, ids[:, 1:].to(device)[..., None])[..., 0]
            target_mask = mask[:, 1:].to(device)
            total -= target_ll[target_mask].sum().item()
            count += int(target_mask.sum().item())
    finally:
        model.train(was_training)
    return ResponseLoss(total / count, count, len(usable))


def load_bpb_text(spec: str | None, max_chars: int | None) -> str | None:
    """The held-out prose for bits-per-byte: ``bundled``, a file path, or ``None``."""
    if spec is None:
        return None
    path = bundled_data_path("prose_it.txt") if spec == "bundled" else Path(spec)
    if not path.is_file():
        raise DataError(bilingual(f"file non trovato: {spec}", f"file not found: {spec}", where="evaluation.bpb_text"))
    from ..utils.text import read_text

    text = read_text(path, error=DataError, option=None)
    return text[:max_chars] if max_chars else text


def heldout_metrics(model, tokenizer, *, bpb_text: str | None = None, bpb_max_chars: int | None = None,
                    examples: Sequence[dict[str, Any]] | None = None, max_length: int = 512, progress: bool = True,
                    label: str = "") -> tuple[dict[str, float], dict[str, Any]]:
    """Bits per byte on ``bpb_text`` and response loss on ``examples``; returns ``(metrics, details)``.

    ``bpb_text`` is a :func:`load_bpb_text` spec (``None``: no bits per byte); ``examples`` are
    pre-tokenized conversations with assistant masks (``None``: no response loss). ``metrics`` has
    ``bits_per_byte`` and ``response_loss`` rounded to 5 decimals, ``details`` their token and byte counts.
    """
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    suffix = f" ({label})" if label else ""
    text = load_bpb_text(bpb_text, bpb_max_chars)
    if text is not None:
        bpb = bits_per_byte(model, tokenizer, text, max_length=max_length, progress=progress, desc=f"bits/byte{suffix}")
        metrics["bits_per_byte"] = round(bpb.bits_per_byte, 5)
        details["bits_per_byte"] = asdict(bpb)
    if examples is not None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        rl = response_loss(model, examples, pad_id=pad, progress=progress, desc=f"response loss{suffix}")
        metrics["response_loss"] = round(rl.loss, 5)
        details["response_loss"] = asdict(rl)
    return metrics, details


def _model_device(model) -> torch.device:
    try:
        return next(p.device for p in model.parameters() if p.device.type != "meta")
    except StopIteration:
        return torch.device("cpu")
