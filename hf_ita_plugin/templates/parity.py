"""Parity between training and llama.cpp: same chat text, same token ids, one BOS.

:func:`check_gguf_template_parity` renders conversations twice - with transformers (the tokenizer
used for training) and with llama-cpp-python's ``Jinja2ChatFormatter`` fed with the GGUF's embedded
``tokenizer.chat_template`` and its BOS/EOS - then tokenizes each text the way each side does
(transformers: ``apply_chat_template``; llama-cpp-python's chat handler: ``tokenize(prompt,
add_bos=not added_special, special=True)``, and its formatter reports ``added_special``: the
template writes BOS itself) and compares. The formatter is built as ``Llama.__init__`` builds it
from GGUF metadata: the template text and the BOS/EOS token texts of the GGUF vocabulary. Each
conversation is checked as a training text (no generation prompt) and, when it ends with a reply,
as an inference prompt (the conversation before that reply, with the generation prompt); with
``both_settings`` every conversation is rendered as given, with and without the generation prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError, bilingual
from .registry import strip_generation_markers
from .render import render

JINJA_CHAT_FORMAT = "chat_template.default"
"""The chat format llama-cpp-python picks when it serves a GGUF with its own Jinja template (no built-in guess)."""


@dataclass
class ConversationParity:
    """Comparison of one rendering (one conversation, with or without generation prompt)."""

    index: int
    add_generation_prompt: bool
    hf_text: str = ""
    gguf_text: str = ""
    hf_ids: list[int] = field(default_factory=list)
    gguf_ids: list[int] = field(default_factory=list)
    hf_double_bos: bool = False
    gguf_double_bos: bool = False
    error: str | None = None

    @property
    def text_equal(self) -> bool:
        return self.error is None and self.hf_text == self.gguf_text

    @property
    def ids_equal(self) -> bool:
        return self.error is None and self.hf_ids == self.gguf_ids

    @property
    def ok(self) -> bool:
        return self.text_equal and self.ids_equal and not (self.hf_double_bos or self.gguf_double_bos)

    def first_difference(self) -> str | None:
        """Where the two sides first differ, in words (``None`` when they agree)."""
        if self.error:
            return self.error
        if not self.text_equal:
            pos = _first_diff(self.hf_text, self.gguf_text)
            return (f"text differs at character {pos}: transformers {self.hf_text[pos:pos + 30]!r} "
                    f"vs llama.cpp {self.gguf_text[pos:pos + 30]!r}")
        if not self.ids_equal:
            pos = _first_diff(self.hf_ids, self.gguf_ids)
            return (f"token ids differ at position {pos}: transformers {self.hf_ids[pos:pos + 5]} "
                    f"vs llama.cpp {self.gguf_ids[pos:pos + 5]}")
        if self.hf_double_bos or self.gguf_double_bos:
            return "double BOS at the start of the sequence"
        return None


@dataclass
class ParityReport:
    """Outcome of :func:`check_gguf_template_parity`; ``ok`` is true when every rendering agrees."""

    gguf_path: str
    gguf_template: str | None
    tokenizer_template: str | None
    gguf_bos_token: str
    gguf_eos_token: str
    gguf_add_bos_token: bool | None
    gguf_chat_format: str | None = None
    results: list[ConversationParity] = field(default_factory=list)

    @property
    def template_found(self) -> bool:
        return bool(self.gguf_template)

    @property
    def template_equal(self) -> bool:
        """Whether the GGUF carries the tokenizer's template (markers aside)."""
        if not self.gguf_template or not self.tokenizer_template:
            return False
        return strip_generation_markers(self.gguf_template) == strip_generation_markers(self.tokenizer_template)

    @property
    def serves_gguf_template(self) -> bool:
        """Whether ``Llama()`` serves the GGUF with its Jinja template, not a built-in format it guessed from
        the template text (``None``: a llama-cpp-python that does not say; its Jinja path is assumed)."""
        return self.gguf_chat_format in (None, JINJA_CHAT_FORMAT)

    @property
    def ok(self) -> bool:
        return (self.template_found and self.serves_gguf_template and bool(self.results)
                and all(r.ok for r in self.results))

    @property
    def failures(self) -> list[ConversationParity]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> str:
        """A short human summary (Italian first, English alongside)."""
        if not self.template_found:
            return f"{self.gguf_path}: nessun tokenizer.chat_template nel GGUF / no chat template in the GGUF"
        head = (f"parità template / template parity: {len(self.results) - len(self.failures)}/{len(self.results)} "
                f"rendering identici / identical renderings")
        lines = [head]
        if not self.serves_gguf_template:
            lines.append(f"  llama-cpp-python serve il formato {self.gguf_chat_format!r}, non il template del GGUF / "
                         f"llama-cpp-python serves the {self.gguf_chat_format!r} chat format, not the GGUF's template")
        for r in self.failures:
            kind = "prompt" if r.add_generation_prompt else "training"
            lines.append(f"  conversazione / conversation {r.index} ({kind}): {r.first_difference()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready summary (no full texts or id lists)."""
        return {
            "ok": self.ok,
            "gguf_path": self.gguf_path,
            "template_found": self.template_found,
            "template_equal": self.template_equal,
            "gguf_bos_token": self.gguf_bos_token,
            "gguf_eos_token": self.gguf_eos_token,
            "gguf_add_bos_token": self.gguf_add_bos_token,
            "gguf_chat_format": self.gguf_chat_format,
            "renderings": len(self.results),
            "identical": len(self.results) - len(self.failures),
            "failures": [
                {"conversation": r.index, "add_generation_prompt": r.add_generation_prompt,
                 "problem": r.first_difference()}
                for r in self.failures
            ],
        }

    def raise_for_mismatch(self) -> None:
        """Raise :class:`ModelError` with :meth:`summary` when the report is not ``ok``."""
        if not self.ok:
            raise ModelError(bilingual("verifica di parità del chat template fallita",
                                       f"chat template parity check failed\n{self.summary()}", where=self.gguf_path),
                             hint="embed the tokenizer's template in the GGUF (ChatTemplate.inference_source)")


def _first_diff(a, b) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _starts_with_double(ids: list[int], token_id: int | None) -> bool:
    return token_id is not None and token_id >= 0 and len(ids) >= 2 and ids[0] == ids[1] == token_id


def _token_text(llama, token_id: int) -> str:
    """A token's text as ``Llama.__init__`` reads it for the chat formatter (empty when the id is -1)."""
    if token_id < 0:
        return ""
    model = getattr(llama, "_model", None)
    if model is not None and hasattr(model, "token_get_text"):
        return model.token_get_text(token_id)
    return llama.detokenize([token_id], special=True).decode("utf-8", "replace")


def _load_tokenizer(tokenizer: Any):
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(tokenizer))
        except (OSError, ValueError) as exc:
            raise ModelError(bilingual("impossibile caricare il tokenizer", f"cannot load tokenizer: {exc}", where=tokenizer)) from None
    return tokenizer


def _renderings(conversations: list[list[dict[str, Any]]], both_settings: bool = False):
    for i, messages in enumerate(conversations):
        yield i, messages, False
        if both_settings:
            yield i, messages, True
            continue
        if len(messages) > 1 and messages[-1].get("role") == "assistant":
            yield i, messages[:-1], True


def check_gguf_template_parity(gguf_path, tokenizer, conversations: list[list[dict[str, Any]]], *,
                               both_settings: bool = False) -> ParityReport:
    """Compare transformers' and llama.cpp's chat rendering and token ids for ``conversations``.

    ``tokenizer`` is a transformers tokenizer or a path to one; ``both_settings`` renders every
    conversation with and without the generation prompt (default: training text, plus the prompt
    before the last reply). Needs ``llama-cpp-python``
    (extra ``gguf``); only the GGUF's vocabulary is loaded, not its weights.
    """
    try:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError:
        raise ModelError(bilingual("la verifica di parità richiede llama-cpp-python", "the parity check needs llama-cpp-python"),
                         hint="pip install 'hf-ita-plugin[gguf]'") from None
    path = Path(gguf_path)
    if not path.is_file():
        raise ModelError(bilingual("file GGUF non trovato", "GGUF file not found", where=path))
    if not conversations:
        raise ModelError(bilingual("la verifica di parità richiede almeno una conversazione",
                                   "the parity check needs at least one conversation"))
    tokenizer = _load_tokenizer(tokenizer)
    try:
        llama = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(bilingual("llama.cpp non riesce a leggere il file", f"llama.cpp cannot read it: {exc}", where=path)) from None
    try:
        metadata = dict(llama.metadata or {})
        bos_id, eos_id = llama.token_bos(), llama.token_eos()
        bos, eos = _token_text(llama, bos_id), _token_text(llama, eos_id)
        add_bos = metadata.get("tokenizer.ggml.add_bos_token")
        report = ParityReport(
            gguf_path=str(path),
            gguf_template=metadata.get("tokenizer.chat_template"),
            tokenizer_template=getattr(tokenizer, "chat_template", None),
            gguf_bos_token=bos,
            gguf_eos_token=eos,
            gguf_add_bos_token=None if add_bos is None else str(add_bos).lower() == "true",
            gguf_chat_format=getattr(llama, "chat_format", None),
        )
        if not report.template_found:
            return report
        formatters = {
            gen: Jinja2ChatFormatter(template=report.gguf_template, eos_token=eos, bos_token=bos, add_generation_prompt=gen)
            for gen in (False, True)
        }
        hf_bos = getattr(tokenizer, "bos_token_id", None)
        for index, messages, gen in _renderings(conversations, both_settings):
            result = ConversationParity(index=index, add_generation_prompt=gen)
            try:
                result.hf_text = render(tokenizer, messages, add_generation_prompt=gen)
                result.hf_ids = list(tokenizer.apply_chat_template(messages, add_generation_prompt=gen,
                                                                   tokenize=True)["input_ids"])
                response = formatters[gen](messages=messages)
                result.gguf_text = response.prompt
                result.gguf_ids = list(llama.tokenize(result.gguf_text.encode("utf-8"),
                                                      add_bos=not response.added_special, special=True))
            except Exception as exc:  # a template that fails on one side is a parity failure, reported per row
                result.error = f"{type(exc).__name__}: {exc}"
            result.hf_double_bos = _starts_with_double(result.hf_ids, hf_bos)
            result.gguf_double_bos = _starts_with_double(result.gguf_ids, bos_id)
            report.results.append(result)
        return report
    finally:
        if hasattr(llama, "close"):
            llama.close()
