"""Chat templates: one registry, identical from training to inference to GGUF.

Public API::

    from hf_ita_plugin.templates import (
        DEFAULT_SYSTEM_PROMPT, ChatTemplate, list_templates, get_template, resolve_template_source,
        apply_template, validate_messages, with_system_prompt, render, render_many, tokenize_conversation,
        check_gguf_template_parity,
    )
"""

from .masks import assistant_spans, tokenize_conversation
from .registry import (
    ChatTemplate,
    get_template,
    has_generation_markers,
    list_templates,
    official_template_name,
    registry_name_of,
    resolve_template_source,
    strip_generation_markers,
)
from .render import render, render_many, render_source
from .system_prompt import DEFAULT_SYSTEM_PROMPT, resolve_system_prompt, with_system_prompt
from .tokenizer_setup import AUTO_TEMPLATE, TEMPLATE_NAME_KEY, apply_template, registry_template_of, template_name
from .validation import validate_messages


def check_gguf_template_parity(gguf_path, tokenizer, conversations, **kwargs):
    """Compare transformers' and llama.cpp's rendering of ``conversations`` (see :mod:`.parity`)."""
    from .parity import check_gguf_template_parity as _check

    return _check(gguf_path, tokenizer, conversations, **kwargs)


__all__ = [
    "AUTO_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "TEMPLATE_NAME_KEY",
    "ChatTemplate",
    "apply_template",
    "assistant_spans",
    "check_gguf_template_parity",
    "get_template",
    "has_generation_markers",
    "list_templates",
    "official_template_name",
    "registry_name_of",
    "registry_template_of",
    "render",
    "render_many",
    "render_source",
    "resolve_system_prompt",
    "resolve_template_source",
    "strip_generation_markers",
    "template_name",
    "tokenize_conversation",
    "validate_messages",
    "with_system_prompt",
]
