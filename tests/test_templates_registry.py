"""The template registry: literal renderings per family, generation markers, name/path/Jinja resolution."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from hf_ita_plugin.errors import ConfigError, ConversationError
from hf_ita_plugin.templates import (
    get_template,
    has_generation_markers,
    list_templates,
    registry_name_of,
    render_source,
    resolve_template_source,
    strip_generation_markers,
)

ALL = ["alpaca-it", "chatml", "gemma-2", "gemma-3", "llama-2", "llama-3", "llama-3.1", "llama-3.2", "mistral",
       "mistral-nemo", "mistral-small-3.1", "mistral-v3", "phi-3.5", "phi-4", "qwen2.5", "qwen3", "smollm2",
       "smollm3", "zephyr"]

# Conversations whose renderings are written out below, from each family's documented format.
SIMPLE = [
    {"role": "user", "content": "Ciao, come stai?"},
    {"role": "assistant", "content": "Bene, grazie!"},
]
SYSTEM = [
    {"role": "system", "content": "Rispondi in italiano."},
    {"role": "user", "content": "Qual è la capitale d'Italia?"},
    {"role": "assistant", "content": "Roma."},
]
MULTI = [
    {"role": "user", "content": "Ciao!"},
    {"role": "assistant", "content": "Ciao! Come posso aiutarti?"},
    {"role": "user", "content": "Dimmi un numero."},
    {"role": "assistant", "content": "Sette."},
]
SYSTEM_MULTI = [{"role": "system", "content": "Rispondi in italiano."}, *MULTI]

ALPACA_PREAMBLE = ("Di seguito è riportata un'istruzione che descrive un task. "
                   "Scrivete una risposta che completi adeguatamente la richiesta.")
ALPACA_PREAMBLE_INPUT = ("Di seguito è riportata un'istruzione che descrive un task, insieme ad un input che "
                         "fornisce un contesto più ampio. Scrivete una risposta che completi adeguatamente la richiesta.")

# (template, conversation, add_generation_prompt) -> expected text, with the family's reference BOS/EOS.
EXPECTED = {
    ("chatml", "SIMPLE", False):
        "<|im_start|>user\nCiao, come stai?<|im_end|>\n<|im_start|>assistant\nBene, grazie!<|im_end|>\n",
    ("chatml", "SYSTEM", False):
        "<|im_start|>system\nRispondi in italiano.<|im_end|>\n<|im_start|>user\nQual è la capitale d'Italia?<|im_end|>\n"
        "<|im_start|>assistant\nRoma.<|im_end|>\n",
    ("chatml", "SYSTEM_PROMPT", True):
        "<|im_start|>system\nRispondi in italiano.<|im_end|>\n<|im_start|>user\nQual è la capitale d'Italia?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ("llama-3", "SIMPLE", False):
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nCiao, come stai?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBene, grazie!<|eot_id|>",
    ("llama-3", "SYSTEM", False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nRispondi in italiano.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQual è la capitale d'Italia?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nRoma.<|eot_id|>",
    ("llama-3", "SYSTEM_PROMPT", True):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nRispondi in italiano.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQual è la capitale d'Italia?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    # Mistral tokenizer v1 (docs.mistral.ai): "<s> [INST] Hello [/INST] Fine</s> [INST] ..."; system -> first user turn.
    ("mistral", "SIMPLE", False): "<s> [INST] Ciao, come stai? [/INST] Bene, grazie!</s>",
    ("mistral", "SYSTEM", False): "<s> [INST] Rispondi in italiano.\n\nQual è la capitale d'Italia? [/INST] Roma.</s>",
    ("mistral", "MULTI", False):
        "<s> [INST] Ciao! [/INST] Ciao! Come posso aiutarti?</s> [INST] Dimmi un numero. [/INST] Sette.</s>",
    ("mistral", "SYSTEM_MULTI", False):
        "<s> [INST] Rispondi in italiano.\n\nCiao! [/INST] Ciao! Come posso aiutarti?</s> [INST] Dimmi un numero. [/INST] Sette.</s>",
    # Mistral tokenizer v3: "<s>[INST] Hello[/INST] Fine</s>[INST] ..."; as the official template, the system
    # text goes into the last message only when that message is the user's (else it is not written).
    ("mistral-v3", "SIMPLE", False): "<s>[INST] Ciao, come stai?[/INST] Bene, grazie!</s>",
    ("mistral-v3", "SYSTEM", False): "<s>[INST] Qual è la capitale d'Italia?[/INST] Roma.</s>",
    ("mistral-v3", "SYSTEM_PROMPT", True): "<s>[INST] Rispondi in italiano.\n\nQual è la capitale d'Italia?[/INST]",
    ("mistral-v3", "SYSTEM_MULTI", False):
        "<s>[INST] Ciao![/INST] Ciao! Come posso aiutarti?</s>[INST] Dimmi un numero.[/INST] Sette.</s>",
    # Llama 2 chat (Meta's reference): BOS + [INST] per exchange, " answer " + EOS.
    ("llama-2", "SIMPLE", False): "<s>[INST] Ciao, come stai? [/INST] Bene, grazie! </s>",
    ("llama-2", "SYSTEM", False):
        "<s>[INST] <<SYS>>\nRispondi in italiano.\n<</SYS>>\n\nQual è la capitale d'Italia? [/INST] Roma. </s>",
    ("llama-2", "MULTI", False):
        "<s>[INST] Ciao! [/INST] Ciao! Come posso aiutarti? </s><s>[INST] Dimmi un numero. [/INST] Sette. </s>",
    ("zephyr", "SIMPLE", False): "<|user|>\nCiao, come stai?</s>\n<|assistant|>\nBene, grazie!</s>\n",
    ("zephyr", "SYSTEM", False):
        "<|system|>\nRispondi in italiano.</s>\n<|user|>\nQual è la capitale d'Italia?</s>\n<|assistant|>\nRoma.</s>\n",
    ("zephyr", "SYSTEM_PROMPT", True):
        "<|system|>\nRispondi in italiano.</s>\n<|user|>\nQual è la capitale d'Italia?</s>\n<|assistant|>\n",
    ("gemma-3", "SIMPLE", False):
        "<bos><start_of_turn>user\nCiao, come stai?<end_of_turn>\n<start_of_turn>model\nBene, grazie!<end_of_turn>\n",
    ("gemma-3", "SYSTEM", False):
        "<bos><start_of_turn>user\nRispondi in italiano.\n\nQual è la capitale d'Italia?<end_of_turn>\n"
        "<start_of_turn>model\nRoma.<end_of_turn>\n",
    ("gemma-3", "SYSTEM_PROMPT", True):
        "<bos><start_of_turn>user\nRispondi in italiano.\n\nQual è la capitale d'Italia?<end_of_turn>\n<start_of_turn>model\n",
    # Gemma 2: as Gemma 3 (its official template rejects a system message; the registry folds it like Gemma 3).
    ("gemma-2", "SIMPLE", False):
        "<bos><start_of_turn>user\nCiao, come stai?<end_of_turn>\n<start_of_turn>model\nBene, grazie!<end_of_turn>\n",
    ("gemma-2", "SYSTEM_PROMPT", True):
        "<bos><start_of_turn>user\nRispondi in italiano.\n\nQual è la capitale d'Italia?<end_of_turn>\n<start_of_turn>model\n",
    # Llama 3.1/3.2: the system header is always written (date fixed by date_string in these tests).
    ("llama-3.1", "SIMPLE", False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nCiao, come stai?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBene, grazie!<|eot_id|>",
    ("llama-3.2", "SYSTEM_PROMPT", True):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\nRispondi in italiano.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "Qual è la capitale d'Italia?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    # Family ChatML entries: the model's default system message when the conversation has none.
    ("qwen2.5", "SIMPLE", False):
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nCiao, come stai?<|im_end|>\n<|im_start|>assistant\nBene, grazie!<|im_end|>\n",
    ("qwen2.5", "SYSTEM", False):
        "<|im_start|>system\nRispondi in italiano.<|im_end|>\n<|im_start|>user\nQual è la capitale d'Italia?<|im_end|>\n"
        "<|im_start|>assistant\nRoma.<|im_end|>\n",
    ("smollm2", "SIMPLE", False):
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nCiao, come stai?<|im_end|>\n<|im_start|>assistant\nBene, grazie!<|im_end|>\n",
    # Reasoning off: an empty think block opens the generation prompt and the reply that ends the conversation.
    ("qwen3", "SIMPLE", False):
        "<|im_start|>user\nCiao, come stai?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        "Bene, grazie!<|im_end|>\n",
    ("qwen3", "SYSTEM_PROMPT", True):
        "<|im_start|>system\nRispondi in italiano.<|im_end|>\n<|im_start|>user\nQual è la capitale d'Italia?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n",
    # SmolLM3: generated system header with today's date, not closed by <|im_end|> (as the official template).
    ("smollm3", "SIMPLE", False):
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: {TODAY}\n"
        "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant named SmolLM, trained by "
        "Hugging Face.\n\n<|im_start|>user\nCiao, come stai?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n"
        "Bene, grazie!<|im_end|>\n",
    ("phi-3.5", "SIMPLE", False):
        "<|user|>\nCiao, come stai?<|end|>\n<|assistant|>\nBene, grazie!<|end|>\n<|endoftext|>",
    ("phi-3.5", "SYSTEM_PROMPT", True):
        "<|system|>\nRispondi in italiano.<|end|>\n<|user|>\nQual è la capitale d'Italia?<|end|>\n<|assistant|>\n",
    ("phi-4", "SYSTEM", False):
        "<|im_start|>system<|im_sep|>Rispondi in italiano.<|im_end|><|im_start|>user<|im_sep|>Qual è la capitale "
        "d'Italia?<|im_end|><|im_start|>assistant<|im_sep|>Roma.<|im_end|>",
    ("mistral-nemo", "SYSTEM", False): "<s>[INST]Qual è la capitale d'Italia?[/INST]Roma.</s>",
    ("mistral-nemo", "SYSTEM_PROMPT", True): "<s>[INST]Rispondi in italiano.\n\nQual è la capitale d'Italia?[/INST]",
    ("mistral-small-3.1", "SYSTEM", False):
        "<s>[SYSTEM_PROMPT]Rispondi in italiano.[/SYSTEM_PROMPT][INST]Qual è la capitale d'Italia?[/INST]Roma.</s>",
    ("alpaca-it", "SIMPLE", False):
        f"<s>{ALPACA_PREAMBLE}\n\n### Istruzione:\nCiao, come stai?\n\n### Risposta:\nBene, grazie!</s>",
    ("alpaca-it", "SYSTEM", False):
        "<s>Rispondi in italiano.\n\n### Istruzione:\nQual è la capitale d'Italia?\n\n### Risposta:\nRoma.</s>",
    ("alpaca-it", "MULTI", False):
        f"<s>{ALPACA_PREAMBLE}\n\n### Istruzione:\nCiao!\n\n### Risposta:\nCiao! Come posso aiutarti?</s>"
        "\n\n### Istruzione:\nDimmi un numero.\n\n### Risposta:\nSette.</s>",
    ("alpaca-it", "INPUT", False):
        f"<s>{ALPACA_PREAMBLE_INPUT}\n\n### Istruzione:\nTraduci in inglese.\n\n### Input:\nBuongiorno a tutti."
        "\n\n### Risposta:\nGood morning, everyone.</s>",
    ("alpaca-it", "INPUT_PROMPT", True):
        f"<s>{ALPACA_PREAMBLE_INPUT}\n\n### Istruzione:\nTraduci in inglese.\n\n### Input:\nBuongiorno a tutti."
        "\n\n### Risposta:\n",
}
INPUT = [
    {"role": "user", "content": "Traduci in inglese.", "input": "Buongiorno a tutti."},
    {"role": "assistant", "content": "Good morning, everyone."},
]
CONVERSATIONS = {
    "SIMPLE": SIMPLE, "SYSTEM": SYSTEM, "MULTI": MULTI, "SYSTEM_MULTI": SYSTEM_MULTI,
    "SYSTEM_PROMPT": SYSTEM[:2], "INPUT": INPUT, "INPUT_PROMPT": INPUT[:1],
}


def reference_tokens(name: str) -> dict[str, str]:
    tpl = get_template(name)
    return {k: v for k, v in (("bos_token", tpl.reference_bos), ("eos_token", tpl.reference_eos)) if v}


def test_registry_lists_every_family():
    assert list_templates() == ALL


@pytest.mark.parametrize(("name", "conv", "gen"), sorted(EXPECTED))
def test_literal_renderings(name, conv, gen):
    text = render_source(get_template(name).source, CONVERSATIONS[conv], add_generation_prompt=gen,
                         special_tokens=reference_tokens(name), template_kwargs={"date_string": "26 Jul 2024"})
    assert text == EXPECTED[(name, conv, gen)].replace("{TODAY}", f"{datetime.now():%d %B %Y}")


def test_every_family_has_literal_expectations():
    assert {name for name, _, _ in EXPECTED} == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_generation_markers_render_identically_without_them(name):
    tpl = get_template(name)
    assert has_generation_markers(tpl.source)
    assert not has_generation_markers(tpl.inference_source)
    # Markers are written exactly in the form the stripping assumes (no whitespace control on them).
    assert len(re.findall(r"\{%-?\s*generation", tpl.source)) == tpl.source.count("{% generation %}")
    for conv in CONVERSATIONS.values():
        if name != "alpaca-it" and any("input" in m for m in conv):
            continue
        for gen in (False, True):
            args = dict(add_generation_prompt=gen, special_tokens=reference_tokens(name))
            assert render_source(tpl.source, conv, **args) == render_source(tpl.inference_source, conv, **args)


@pytest.mark.parametrize("name", ALL)
def test_generation_blocks_are_exactly_replies_plus_end_of_turn(name):
    tpl = get_template(name)
    for conv in (SIMPLE, SYSTEM, MULTI, SYSTEM_MULTI):
        text, spans = render_source(tpl.source, conv, special_tokens=reference_tokens(name), return_spans=True)
        replies = [m["content"] for m in conv if m["role"] == "assistant"]
        assert len(spans) == len(replies)
        eot = tpl.reference_eos if tpl.end_of_turn_is_eos else tpl.end_of_turn[0]
        for (start, end), reply in zip(spans, replies):
            block = text[start:end]
            assert block.endswith(eot)
            assert block[: -len(eot)].strip() == reply


@pytest.mark.parametrize("name", [n for n in ALL if get_template(n).prefix_stable])
def test_generation_prompt_then_reply_extends_the_prompt(name):
    """What the model sees at inference is a prefix of what it was trained on."""
    specials = reference_tokens(name)
    source = get_template(name).source
    for conv in (SYSTEM, MULTI, SYSTEM_MULTI):
        for i, message in enumerate(conv):
            if message["role"] != "assistant":
                continue
            prompt = render_source(source, conv[:i], add_generation_prompt=True, special_tokens=specials)
            trained = render_source(source, conv[: i + 1], special_tokens=specials)
            assert trained.startswith(prompt)
            assert render_source(source, conv, special_tokens=specials).startswith(trained)


def test_mistral_v3_is_declared_not_prefix_stable_because_system_moves():
    specials = reference_tokens("mistral-v3")
    source = get_template("mistral-v3").source
    prompt = render_source(source, SYSTEM_MULTI[:2], add_generation_prompt=True, special_tokens=specials)
    full = render_source(source, SYSTEM_MULTI, special_tokens=specials)
    assert not full.startswith(prompt)
    assert get_template("mistral-v3").prefix_stable is False


@pytest.mark.parametrize("name", ["mistral", "mistral-v3", "mistral-nemo", "mistral-small-3.1", "llama-2", "gemma-2",
                                  "gemma-3", "alpaca-it"])
def test_templates_themselves_reject_broken_alternation(name):
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ConversationError, match="alternate"):
        render_source(get_template(name).source, bad, special_tokens=reference_tokens(name))


def test_template_facts():
    chatml = get_template("chatml")
    assert chatml.native_system and not chatml.emits_bos and chatml.end_of_turn == ("<|im_end|>",)
    assert "<|im_end|>" in chatml.stop
    mistral = get_template("mistral")
    assert not mistral.native_system and mistral.supports_system and mistral.strict_alternation
    assert get_template("llama-3").end_of_turn == ("<|eot_id|>",)
    assert get_template("gemma-3").stop == ("<start_of_turn>", "<end_of_turn>")
    assert not get_template("zephyr").emits_bos  # the official Zephyr template writes no BOS
    assert get_template("llama-3.1").end_of_turn == get_template("llama-3.2").end_of_turn == ("<|eot_id|>",)


def test_former_gemma_name_is_the_gemma_3_entry():
    assert get_template("gemma") == get_template("gemma-3")
    assert resolve_template_source("gemma") == get_template("gemma-3").source
    assert "gemma" not in list_templates()


def test_every_entry_has_its_own_text():
    """registry_name_of tells entries apart by their Jinja text."""
    sources = [get_template(name).source for name in ALL]
    assert len(set(sources)) == len(ALL)
    for name in ALL:
        assert registry_name_of(get_template(name).source) == name


def test_unknown_template_lists_available_ones():
    with pytest.raises(ConfigError) as err:
        get_template("vicuna")
    assert "vicuna" in str(err.value)
    for name in ALL:
        assert name in str(err.value)


def test_resolve_by_name_path_and_literal(tmp_path):
    assert resolve_template_source("chatml") == get_template("chatml").source
    path = tmp_path / "mio.jinja"
    path.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}", encoding="utf-8")
    assert resolve_template_source(str(path)) == path.read_text(encoding="utf-8")
    literal = "{{ bos_token }}{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}"
    assert resolve_template_source(literal) == literal
    assert registry_name_of(get_template("gemma-3").inference_source) == "gemma-3"
    assert registry_name_of(get_template("gemma-2").inference_source) == "gemma-2"
    assert registry_name_of(literal) is None


def test_resolve_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve_template_source(str(tmp_path / "manca.jinja"))
    bad = tmp_path / "rotto.jinja"
    bad.write_text("{% for m in messages %}{{ m.content }}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rotto\.jinja: .* / invalid Jinja at line 1"):
        resolve_template_source(str(bad))
    with pytest.raises(ConfigError, match="available templates"):
        resolve_template_source("chatml2")
    with pytest.raises(ConfigError):
        resolve_template_source("")


def test_strip_generation_markers_keeps_everything_else():
    src = "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
    assert strip_generation_markers(src) == "{% for m in messages %}{{ m.content }}{% endfor %}"
