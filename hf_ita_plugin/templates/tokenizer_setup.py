"""Put a chat template on a transformers tokenizer, with BOS/EOS/pad hygiene.

:func:`apply_template` is the one place where a tokenizer gets its chat format for training and
inference. It fixes the classic ways fine-tunes break:

- double BOS: the template text is the only source of BOS; the tokenizer is told not to add one
  (``add_bos_token=False``), so ``tokenizer(rendered_text)`` equals ``apply_chat_template(...)``;
- pad == EOS (EOS then never learned): the pad token is moved to an unused special token of the
  vocabulary (``<|endoftext|>``, ``<pad>``, ``<unk>``, a reserved token...), and only when there is
  none is a new one added (with a warning: the model's embeddings must then be resized);
- control tokens of the format (``<|im_end|>``, ``<|eot_id|>``...) missing from the vocabulary are
  added as special tokens (same warning);
- the template name is recorded in the tokenizer config, so it survives ``save_pretrained``.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from ..errors import ModelError, bilingual
from .registry import ChatTemplate, get_template, list_templates, registry_name_of, resolve_template_source

TEMPLATE_NAME_KEY = "hf_ita_template"
"""Key under which the template name is stored in the tokenizer's config (``tokenizer_config.json``)."""
CUSTOM_TEMPLATE = "custom"
AUTO_TEMPLATE = "auto"
"""``model.template`` value (the default) that keeps the template the model ships."""

_PAD_CANDIDATES = (
    "<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|fim_pad|>", "<|endoftext|>", "<unk>",
)
_SPARE_RE = re.compile(r"reserved|unused|pad", re.IGNORECASE)
_NEW_PAD = "<|pad|>"


def apply_template(tokenizer, name_or_jinja: str | None = AUTO_TEMPLATE):
    """Set ``tokenizer.chat_template`` and make BOS/EOS/pad safe for training; returns the same tokenizer.

    ``name_or_jinja`` is a registry name, a ``.jinja`` path, Jinja text, or ``auto`` / ``None`` to keep
    the template the tokenizer ships. A shipped template that is exactly the official template of a
    registry family is replaced by that registry entry (same text, generation markers: exact masks);
    any other is kept as it is and its masks are derived (:mod:`.masks`).
    """
    if name_or_jinja is None or name_or_jinja == AUTO_TEMPLATE:
        source = getattr(tokenizer, "chat_template", None)
        if not source or not isinstance(source, str):
            origin = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise ModelError(
                bilingual(f"model.template è 'auto' ma il tokenizer di {origin!r} non ha un chat template (modello base?)",
                          f"model.template is 'auto' but the tokenizer of {origin!r} ships no chat template (a base model?)"),
                hint=f"name one in model.template, e.g. chatml; registry templates: {', '.join(list_templates())}",
            )
    else:
        source = resolve_template_source(name_or_jinja)
    name = registry_name_of(source) or CUSTOM_TEMPLATE
    template = get_template(name) if name != CUSTOM_TEMPLATE else None
    if template is not None:
        source = template.source  # the marked version renders the same text and gives exact masks
    tokenizer.chat_template = source

    added = _ensure_control_tokens(tokenizer, template)
    _disable_automatic_bos_eos(tokenizer)
    pad_added = _ensure_distinct_pad(tokenizer, template, source)
    if pad_added:
        added.append(pad_added)
    if added:
        warnings.warn(
            bilingual(f"aggiunti {len(added)} token al tokenizer: ridimensiona gli embedding del modello",
                      f"added {len(added)} token(s) to the tokenizer ({', '.join(added)}): resize the model's "
                      f"embeddings (model.resize_token_embeddings(len(tokenizer)))", where="hf-ita"),
            UserWarning,
            stacklevel=2,
        )
    tokenizer.init_kwargs[TEMPLATE_NAME_KEY] = name
    return tokenizer


def template_name(tokenizer) -> str | None:
    """The template name recorded by :func:`apply_template` (``custom`` for non-registry Jinja), if any."""
    return getattr(tokenizer, "init_kwargs", {}).get(TEMPLATE_NAME_KEY)


def registry_template_of(tokenizer) -> ChatTemplate | None:
    """The registry template the tokenizer currently renders with, or ``None``."""
    name = registry_name_of(getattr(tokenizer, "chat_template", None))
    return get_template(name) if name else None


def _vocab_has(tokenizer, token: Any) -> bool:
    """Whether ``token`` is one entry of the vocabulary (cheap: no full vocabulary dict)."""
    if not isinstance(token, str) or not token:
        return False
    token_id = tokenizer.convert_tokens_to_ids(token)
    return isinstance(token_id, int) and tokenizer.convert_ids_to_tokens(token_id) == token


def _ensure_control_tokens(tokenizer, template: ChatTemplate | None) -> list[str]:
    """Add the format's control tokens missing from the vocabulary; mark present ones special."""
    if template is None:
        return []
    if template.end_of_turn_is_eos and not getattr(tokenizer, "eos_token", None):
        raise ModelError(bilingual(f"il template {template.name!r} chiude le risposte con EOS, ma il tokenizer non ha eos_token",
                                   f"template {template.name!r} closes replies with EOS, but the tokenizer has no eos_token"),
                         hint="set tokenizer.eos_token, or pick a template with its own end-of-turn token (chatml)")
    missing = [tok for tok in template.control_tokens if not _vocab_has(tokenizer, tok)]
    if missing:
        from tokenizers import AddedToken

        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    for tok in template.control_tokens:
        ids = tokenizer.encode(tok, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelError(bilingual(f"il token di controllo {tok!r} del template {template.name!r} è diviso in {len(ids)} token",
                                       f"control token {tok!r} of template {template.name!r} is split into {len(ids)} tokens"),
                             hint="the tokenizer must treat it as one special token")
    return missing


def _disable_automatic_bos_eos(tokenizer) -> None:
    """The template writes BOS/EOS itself: plain tokenization must never add them again.

    Measured, not trusted: a tokenizer.json post-processor can add BOS while ``add_bos_token``
    reads False (transformers drops that flag when a tokenizer.json exists).
    """
    def added() -> tuple[bool, bool]:
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a")["input_ids"]
        if full == plain:
            return False, False
        bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
        return (bos is not None and full[:1] == [bos] and plain[:1] != [bos],
                eos is not None and full[-1:] == [eos] and plain[-1:] != [eos])

    adds_bos, adds_eos = added()
    if adds_bos:
        tokenizer.add_bos_token = False
    if adds_eos:
        tokenizer.add_eos_token = False
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    if tokenizer("a")["input_ids"] != plain:
        raise ModelError(
            bilingual(f"il tokenizer ({type(tokenizer).__name__}) aggiunge ancora token speciali attorno al testo semplice",
                      f"the tokenizer ({type(tokenizer).__name__}) still adds special tokens around plain text"),
            hint="use a fast tokenizer (tokenizer.json) so hf-ita can control BOS/EOS",
        )


def _reserved_strings(tokenizer, template: ChatTemplate | None) -> set[str]:
    reserved = {getattr(tokenizer, "eos_token", None), getattr(tokenizer, "bos_token", None)}
    if template is not None:
        reserved |= set(template.end_of_turn_for(tokenizer)) | set(template.control_tokens)
    return {r for r in reserved if r}


def _ensure_distinct_pad(tokenizer, template: ChatTemplate | None, source: str) -> str | None:
    """Make the pad token an unused special token; returns the token if it had to be added."""
    reserved = _reserved_strings(tokenizer, template)
    current = getattr(tokenizer, "pad_token", None)
    if current and current not in reserved and current not in source:
        return None

    def usable(token: Any) -> bool:
        return _vocab_has(tokenizer, token) and token not in reserved and token not in source

    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if getattr(t, "special", False)]
    candidates = [*_PAD_CANDIDATES, getattr(tokenizer, "unk_token", None), *(t for t in specials if _SPARE_RE.search(t))]
    for token in candidates:
        if usable(token):
            tokenizer.pad_token = token
            return None
    tokenizer.add_special_tokens({"pad_token": _NEW_PAD})
    return _NEW_PAD
