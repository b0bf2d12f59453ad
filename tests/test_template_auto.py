"""``model.template: auto`` (the default): a model trains with the chat template it ships.

Tokenizers built in tests (see test_templates_tokenizers.py) are given each official template text
from ``shared/reference/chat_templates``; ``auto`` must then pick the registry entry of that family
(same rendering, generation markers, exact masks). A template that is not exactly an official one is
kept and its masks are derived; a tokenizer without a template is a clear error naming registry entries.
"""

from __future__ import annotations

import warnings

import pytest

from hf_ita_plugin.config.schema import ModelConfig, RunConfig, list_presets
from hf_ita_plugin.errors import ModelError
from hf_ita_plugin.templates import (
    AUTO_TEMPLATE,
    apply_template,
    get_template,
    has_generation_markers,
    official_template_name,
    template_name,
    tokenize_conversation,
)
from test_templates_official import FAMILY, REFERENCE, SOURCES
from test_templates_tokenizers import CONVERSATIONS, FAMILY_TOKENIZER, load, tokenizer_dirs  # noqa: F401

OFFICIAL = sorted(FAMILY)


def official_text(model: str) -> str:
    return (REFERENCE / SOURCES[model]["file"]).read_text("utf-8")


def with_template(tokenizer_dirs, kind, template: str | None, name=AUTO_TEMPLATE):  # noqa: F811
    tok = load(tokenizer_dirs, kind)
    tok.chat_template = template
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # control tokens added when the vocab lacks them
        return apply_template(tok, name)


def test_auto_is_the_default_and_every_preset_uses_it():
    """Except a preset of an embedded base model, which ships no template: it names the registry template
    that ``auto`` falls back to for it anyway."""
    from hf_ita_plugin.models.embedded import embedded_model

    assert ModelConfig().template == AUTO_TEMPLATE
    for preset in list_presets():
        model = RunConfig.from_preset(preset).model
        base_model_fallback = model.name_or_path is None and embedded_model(model.embedded).template != AUTO_TEMPLATE
        expected = embedded_model(model.embedded).template if base_model_fallback else AUTO_TEMPLATE
        assert model.template == expected, preset


@pytest.mark.parametrize("model", OFFICIAL)
def test_every_official_template_is_recognised_exactly(model):
    text = official_text(model)
    assert official_template_name(text) == FAMILY[model]
    # exactly: one byte more or less is a foreign template
    assert official_template_name(text + "\n") is None
    assert official_template_name(text[:-1]) is None


@pytest.mark.parametrize("model", OFFICIAL)
def test_auto_trains_an_official_template_with_the_registry_entry(tokenizer_dirs, model):  # noqa: F811
    family = FAMILY[model]
    kind = FAMILY_TOKENIZER[family]
    auto = with_template(tokenizer_dirs, kind, official_text(model))
    explicit = with_template(tokenizer_dirs, kind, None, family)
    assert template_name(auto) == family
    assert auto.chat_template == get_template(family).source and has_generation_markers(auto.chat_template)
    for label, conv in CONVERSATIONS.items():
        got = tokenize_conversation(auto, conv)
        assert got == tokenize_conversation(explicit, conv), (model, label)
        assert 1 in got["assistant_masks"]


def test_a_foreign_template_is_kept_and_its_masks_derived(tokenizer_dirs):  # noqa: F811
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    foreign = official_text(model) + "\n"  # renders the same, but is not the official text
    tok = with_template(tokenizer_dirs, "smollm2", foreign)
    assert template_name(tok) == "custom" and tok.chat_template == foreign
    registry = with_template(tokenizer_dirs, "smollm2", None, "smollm2")
    for label, conv in CONVERSATIONS.items():
        assert tokenize_conversation(tok, conv) == tokenize_conversation(registry, conv), label


@pytest.mark.parametrize("template", [None, ""])
def test_a_base_model_without_template_is_a_clear_error(tokenizer_dirs, template):  # noqa: F811
    tok = load(tokenizer_dirs, "llama-sp")
    tok.chat_template = template
    with pytest.raises(ModelError) as err:
        apply_template(tok, AUTO_TEMPLATE)
    text = f"{err.value} {getattr(err.value, 'hint', '')}"
    assert "auto" in text and "no chat template" in text and "chatml" in text and "llama-3.1" in text


def test_embedded_smollm2_preset_picks_smollm2():
    from hf_ita_plugin.training.recipe import ItalianSFT

    cfg = RunConfig.from_preset("smollm2-135m-cpu")
    tok = ItalianSFT(cfg).load_tokenizer()
    assert template_name(tok) == "smollm2"
    assert tok.chat_template == get_template("smollm2").source
