"""Assistant-only loss masks: which tokens of a conversation the model is trained on.

A token is trainable exactly when it belongs to an assistant reply or to the end-of-turn / EOS
token that closes it. With a registry template the replies are the ``{% generation %}`` blocks;
with a tokenizer's own template without markers they are found by rendering each prefix of the
conversation and taking the difference (which requires a prefix-stable template; if it is not, a
clear :class:`~hf_ita_plugin.errors.ModelError` says so). The token ids are exactly those of
``tokenizer.apply_chat_template(messages, tokenize=True)``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError, bilingual
from .registry import has_generation_markers, registry_name_of
from .render import Span, render_source, special_tokens_of, tokenizer_template
from .validation import validate_messages


def assistant_spans(tokenizer, messages: list[dict[str, Any]]) -> tuple[str, list[Span]]:
    """The rendered conversation and the ``[start, end)`` character span of each trainable reply."""
    source = tokenizer_template(tokenizer)
    registry = registry_name_of(source)
    if registry:  # message-indexed errors before the template's own, terser, checks
        validate_messages(messages, registry)
    specials = special_tokens_of(tokenizer)
    if has_generation_markers(source):
        text, spans = render_source(source, messages, special_tokens=specials, return_spans=True)
    else:
        text, spans = _spans_from_prefixes(source, messages, specials)
    replies = _assistant_indices(messages)
    if len(spans) != len(replies):
        raise ModelError(
            bilingual(f"il chat template marca {len(spans)} blocchi assistant con {{% generation %}} ma la "
                      f"conversazione ha {len(replies)} messaggi assistant",
                      f"the chat template marks {len(spans)} assistant block(s) with {{% generation %}} but the "
                      f"conversation has {len(replies)} assistant message(s)"),
            hint="every assistant reply must be inside exactly one {% generation %} block",
        )
    closers = _closing_tokens(tokenizer)
    for index, (start, end) in zip(replies, spans):
        if not any(text[start:end].endswith(tok) for tok in closers):
            raise ModelError(
                bilingual("il chat template non chiude la risposta assistant con un token di fine turno/EOS",
                          f"the chat template does not close the assistant reply with an end-of-turn/EOS token "
                          f"(reply ends with {text[max(start, end - 20):end]!r})", where=f"messages[{index}]"),
                hint="the model would never learn to stop: use a registry template (hf-ita template list)",
            )
    return text, spans


def _assistant_indices(messages: list[dict[str, Any]]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant"]


def _closing_tokens(tokenizer) -> list[str]:
    added = [t.content for t in tokenizer.added_tokens_decoder.values() if not t.content.isspace()]
    eos = getattr(tokenizer, "eos_token", None)
    return [t for t in {eos, *added} if t]


def _spans_from_prefixes(source: str, messages: list[dict[str, Any]], specials: dict[str, str]) -> tuple[str, list[Span]]:
    """Spans of assistant replies from renderings of growing prefixes (templates without markers)."""
    text = render_source(source, messages, special_tokens=specials)
    spans: list[Span] = []
    for i in _assistant_indices(messages):
        if i == 0:
            raise ModelError(bilingual("una conversazione non può iniziare con una risposta assistant",
                                       "a conversation cannot start with an assistant reply", where="messages[0]"))
        before = render_source(source, messages[:i], add_generation_prompt=True, special_tokens=specials)
        after = render_source(source, messages[: i + 1], special_tokens=specials)
        if not (after.startswith(before) and text.startswith(after)):
            raise ModelError(
                bilingual("il chat template non è stabile sui prefissi, quindi le maschere assistant non si possono "
                          "ricavare",
                          "the chat template is not prefix-stable (rendering the conversation up to this reply is not "
                          "a prefix of the full rendering), so its assistant masks cannot be derived",
                          where=f"messages[{i}]"),
                hint="add {% generation %}...{% endgeneration %} around assistant replies, or use a registry template",
            )
        end = len(after.rstrip())
        spans.append((len(before), max(end, len(before))))
    return text, spans


def tokenize_conversation(tokenizer, messages: list[dict[str, Any]], max_length: int | None = None) -> dict[str, list[int]]:
    """Token ids of the conversation and its assistant mask, truncated to ``max_length`` tokens.

    Returns ``{"input_ids": [...], "assistant_masks": [...]}`` with 1 on every token of each
    assistant reply and on the end-of-turn token closing it, 0 elsewhere.
    """
    if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
        raise ModelError(bilingual("max_length deve essere un intero positivo", f"max_length must be a positive integer, got {max_length!r}"))
    text, spans = assistant_spans(tokenizer, messages)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        mask = _mask_from_offsets(enc["offset_mapping"], spans)
    else:
        ids, mask = _mask_by_token_prefixes(tokenizer, text, spans)
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "assistant_masks": mask}


def _mask_from_offsets(offsets, spans: list[Span]) -> list[int]:
    """1 for each token whose character range overlaps a span (both sorted: one linear sweep)."""
    mask = [0] * len(offsets)
    j, n = 0, len(spans)
    for t, (a, b) in enumerate(offsets):
        while j < n and spans[j][1] <= a:
            j += 1
        if j == n:
            break
        if b > a and b > spans[j][0]:
            mask[t] = 1
    return mask


def _mask_by_token_prefixes(tokenizer, text: str, spans: list[Span]) -> tuple[list[int], list[int]]:
    """Masks for tokenizers without offsets: each span boundary must fall on a token boundary."""
    def encode(s: str) -> list[int]:
        return list(tokenizer(s, add_special_tokens=False)["input_ids"])

    ids = encode(text)
    mask = [0] * len(ids)
    for start, end in spans:
        head, upto = encode(text[:start]), encode(text[:end])
        if ids[: len(head)] != head or ids[: len(upto)] != upto:
            raise ModelError(bilingual("una risposta assistant non inizia o non finisce su un confine di token con questo tokenizer",
                                       "an assistant reply does not start or end on a token boundary with this tokenizer"),
                             hint="use a fast tokenizer (tokenizer.json) so offsets can be used")
        for t in range(len(head), len(upto)):
            mask[t] = 1
    return ids, mask
