"""Render conversations to text with a chat template, through transformers' own Jinja renderer.

:func:`render` uses a tokenizer (its template and special tokens), :func:`render_many` renders a
batch with it; :func:`render_source` renders a template text with explicit special tokens and
can report the character spans of the ``{% generation %}`` blocks (the assistant replies that
are trained on).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConversationError, ModelError, bilingual

Span = tuple[int, int]


def render_source(
    source: str,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = False,
    special_tokens: dict[str, str] | None = None,
    return_spans: bool = False,
    template_kwargs: dict[str, Any] | None = None,
) -> str | tuple[str, list[Span]]:
    """Render ``messages`` with the Jinja ``source``; ``special_tokens`` fills ``bos_token``/``eos_token``...

    ``template_kwargs`` are further template variables (``date_string`` for the Llama 3.1+ templates).
    With ``return_spans`` returns ``(text, spans)`` where spans are the ``[start, end)`` character
    ranges of the generation blocks (empty when the template has no markers).
    """
    from jinja2 import TemplateError
    from transformers.utils.chat_template_utils import render_jinja_template

    kwargs = {k: v for k, v in (special_tokens or {}).items() if isinstance(v, str)}
    try:
        rendered, spans = render_jinja_template(
            conversations=[messages],
            chat_template=source,
            add_generation_prompt=add_generation_prompt,
            return_assistant_tokens_mask=return_spans,
            **{**(template_kwargs or {}), **kwargs},
        )
    except TemplateError as exc:
        raise ConversationError(bilingual("il chat template ha rifiutato la conversazione",
                                          f"the chat template rejected the conversation: {exc}")) from None
    text = rendered[0]
    if not return_spans:
        return text
    return text, [(s, e) for s, e in (spans[0] if spans else []) if e > s]


def special_tokens_of(tokenizer) -> dict[str, str]:
    """The special-token strings a chat template can use (``bos_token``, ``eos_token``...)."""
    return {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}


def tokenizer_template(tokenizer) -> str:
    """The tokenizer's chat template text, or a :class:`ModelError` saying how to set one."""
    source = getattr(tokenizer, "chat_template", None)
    if not source or not isinstance(source, str):
        raise ModelError(bilingual("il tokenizer non ha un chat template", "the tokenizer has no chat template"),
                         hint="call hf_ita_plugin.templates.apply_template(tokenizer, 'chatml') (or another registry name)")
    return source


def render(tokenizer, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
    """The text of ``messages`` in the tokenizer's chat format (what the model reads)."""
    return render_source(tokenizer_template(tokenizer), messages, add_generation_prompt=add_generation_prompt,
                         special_tokens=special_tokens_of(tokenizer))


def render_many(tokenizer, conversations: list[list[dict[str, Any]]],
                add_generation_prompt: bool = False) -> list[str | ConversationError]:
    """:func:`render` of many conversations with one call to the renderer (a third cheaper per row).

    A conversation the template rejects gets its :class:`ConversationError` in its place; the
    others are rendered all the same.
    """
    from jinja2 import TemplateError
    from transformers.utils.chat_template_utils import render_jinja_template

    if not conversations:
        return []
    try:
        rendered, _ = render_jinja_template(conversations=conversations, chat_template=tokenizer_template(tokenizer),
                                            add_generation_prompt=add_generation_prompt,
                                            **special_tokens_of(tokenizer))
        return list(rendered)
    except TemplateError:  # at least one is rejected: find which, one at a time
        out: list[str | ConversationError] = []
        for messages in conversations:
            try:
                out.append(render(tokenizer, messages, add_generation_prompt))
            except ConversationError as exc:
                out.append(exc)
        return out
