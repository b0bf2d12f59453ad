"""Italian-native models (issue 16, item 3): their documented chat formats, written out literally.

No official template file of these models is in ``shared/reference/chat_templates``; each expected text
below is written from the format the model's authors document, with the place it was read.

* LLaMAntino-3-ANITA-8B-Inst-DPO-ITA (swap-uniba, University of Bari) is Llama 3 8B Instruct adapted to
  Italian and keeps the Llama 3 chat format: registry ``llama-3``, no entry of its own. Its authors serve
  it with an Italian system prompt; the preset ``llamantino-3-anita-8b`` trains with that same text.
* Minerva-7B-instruct-v1.0 (Sapienza NLP) and Velvet-14B / Velvet-2B (Almawave): see
  :func:`test_minerva_and_velvet_have_no_guessed_entry`.
"""

from __future__ import annotations

import pytest

from hf_ita_plugin.config import RunConfig, list_presets
from hf_ita_plugin.errors import ConfigError
from hf_ita_plugin.templates import get_template, render_source, resolve_system_prompt, with_system_prompt

# Read in the authors' Ollama Modelfile (SYSTEM line), Hugging Face repo
# swap-uniba/LLaMAntino-3-ANITA-8B-Inst-DPO-ITA_GGUF, file Modelfile (commit 2d18838 "Add Modelfile for OLLAMA
# use"); the same text, "un an" included, is in the README of github.com/marcopoli/LLaMAntino-3-ANITA.
ANITA_SYSTEM_PROMPT = (
    "Sei un an assistente AI per la lingua Italiana di nome LLaMAntino-3 ANITA (Advanced Natural-based "
    "interaction for the ITAlian language). Rispondi nella lingua usata per la domanda in modo chiaro, "
    "semplice ed esaustivo."
)
# Llama 3 special tokens of ANITA's tokenizer (Meta-Llama-3-8B-Instruct's: BOS id 128000, end of turn 128009).
ANITA_TOKENS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}

CONVERSATIONS = {
    "single": [
        {"role": "user", "content": "Qual è la capitale d'Italia?"},
        {"role": "assistant", "content": "Roma. 🇮🇹"},
    ],
    "multi": [
        {"role": "user", "content": "Ciao!"},
        {"role": "assistant", "content": "Ciao! Come posso aiutarti?"},
        {"role": "user", "content": "Scrivi un haiku sul mare."},
        {"role": "assistant", "content": "Onde d'argento\nsussurrano alla riva:\nil sale resta."},
    ],
    "prompt": [
        {"role": "user", "content": "Che tempo fa a Bari d'estate?"},
    ],
}

# The Llama 3 format as ANITA's authors document it (README "Prompt Template" of
# github.com/marcopoli/LLaMAntino-3-ANITA and the TEMPLATE of the Modelfile above):
#   <|start_header_id|>system<|end_header_id|>\n\n{SYS}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n
#   {USER}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{ASSISTANT}<|eot_id|>
# preceded by <|begin_of_text|>, which the Llama 3 tokenizer template writes (the Modelfile leaves it to
# Ollama, which adds BOS from the GGUF). Key: (conversation, with ANITA's system prompt, generation prompt).
ANITA_LITERAL = {
    ("single", True, False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSei un an assistente AI per la "
        "lingua Italiana di nome LLaMAntino-3 ANITA (Advanced Natural-based interaction for the ITAlian "
        "language). Rispondi nella lingua usata per la domanda in modo chiaro, semplice ed esaustivo."
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQual è la capitale d'Italia?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nRoma. 🇮🇹<|eot_id|>",
    ("prompt", True, True):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSei un an assistente AI per la "
        "lingua Italiana di nome LLaMAntino-3 ANITA (Advanced Natural-based interaction for the ITAlian "
        "language). Rispondi nella lingua usata per la domanda in modo chiaro, semplice ed esaustivo."
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nChe tempo fa a Bari d'estate?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ("multi", True, False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSei un an assistente AI per la "
        "lingua Italiana di nome LLaMAntino-3 ANITA (Advanced Natural-based interaction for the ITAlian "
        "language). Rispondi nella lingua usata per la domanda in modo chiaro, semplice ed esaustivo."
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nCiao!<|eot_id|><|start_header_id|>assistant"
        "<|end_header_id|>\n\nCiao! Come posso aiutarti?<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nScrivi un haiku sul mare.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nOnde "
        "d'argento\nsussurrano alla riva:\nil sale resta.<|eot_id|>",
    ("multi", False, False):
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nCiao!<|eot_id|><|start_header_id|>"
        "assistant<|end_header_id|>\n\nCiao! Come posso aiutarti?<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nScrivi un haiku sul mare.<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
        "\n\nOnde d'argento\nsussurrano alla riva:\nil sale resta.<|eot_id|>",
    ("prompt", False, True):
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nChe tempo fa a Bari d'estate?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ("prompt", False, False):
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nChe tempo fa a Bari d'estate?<|eot_id|>",
}


def anita_messages(conv: str, with_system: bool):
    return with_system_prompt(CONVERSATIONS[conv], ANITA_SYSTEM_PROMPT if with_system else None)


@pytest.mark.parametrize(("conv", "with_system", "gen"), sorted(ANITA_LITERAL))
def test_anita_renders_its_documented_llama_3_format(conv, with_system, gen):
    text = render_source(get_template("llama-3").source, anita_messages(conv, with_system),
                         add_generation_prompt=gen, special_tokens=ANITA_TOKENS)
    assert text == ANITA_LITERAL[(conv, with_system, gen)]


@pytest.mark.parametrize(("conv", "with_system", "gen"), sorted(ANITA_LITERAL))
def test_llama_cpp_serves_anita_with_the_same_text(conv, with_system, gen):
    pytest.importorskip("llama_cpp")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    fmt = Jinja2ChatFormatter(template=get_template("llama-3").inference_source, add_generation_prompt=gen,
                              bos_token=ANITA_TOKENS["bos_token"], eos_token=ANITA_TOKENS["eos_token"])
    assert fmt(messages=anita_messages(conv, with_system)).prompt == ANITA_LITERAL[(conv, with_system, gen)]


def test_anita_serving_prompt_is_the_authors_modelfile_template_after_bos():
    """Their Modelfile TEMPLATE with .System and .Prompt set, written out: our prompt is BOS + exactly that."""
    modelfile_render = (
        "<|start_header_id|>system<|end_header_id|>\n\n" + ANITA_SYSTEM_PROMPT + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nChe tempo fa a Bari d'estate?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert ANITA_LITERAL[("prompt", True, True)] == "<|begin_of_text|>" + modelfile_render


def test_anita_preset_trains_with_its_system_prompt_and_the_shipped_template():
    assert "llamantino-3-anita-8b" in list_presets()
    cfg = RunConfig.from_preset("llamantino-3-anita-8b")
    assert cfg.model.name_or_path == "swap-uniba/LLaMAntino-3-ANITA-8B-Inst-DPO-ITA"
    assert cfg.model.template == "auto" and cfg.model.gpu_memory_gb >= 16
    assert resolve_system_prompt(cfg.data.system_prompt) == ANITA_SYSTEM_PROMPT
    # a conversation that brings its own system message keeps it
    own = [{"role": "system", "content": "Sii breve."}, *CONVERSATIONS["prompt"]]
    assert with_system_prompt(own, resolve_system_prompt(cfg.data.system_prompt)) == own


def test_minerva_and_velvet_have_no_guessed_entry():
    """Minerva-7B-instruct-v1.0 and Velvet-14B / Velvet-2B: chat format not found, so nothing is guessed.

    Searched (December 2026): the model cards of sapienzanlp/Minerva-7B-instruct-v1.0 and its -GGUF repo,
    Almawave/Velvet-14B and Almawave/Velvet-2B (and AlmawaveLabs mirrors), their tokenizer_config.json,
    Ollama's Almawave/Velvet page and public GitHub code that loads these models. None of the reachable
    copies quotes the chat template or a rendered prompt: the cards only call
    ``tokenizer.apply_chat_template``, and Ollama's page shows Velvet's vocabulary (``<instruction>``,
    ``</instruction>``) but not its template. So the registry has no entry and no preset for them;
    ``model.template: auto`` trains either with the template its tokenizer ships (masks derived from the
    rendered text). An entry needs their official template, with literal renderings tested here.
    """
    for name in ("minerva", "minerva-7b", "velvet", "velvet-14b"):
        with pytest.raises(ConfigError, match="unknown chat template"):
            get_template(name)
    named = {RunConfig.from_preset(p).model.name_or_path or "" for p in list_presets()}
    assert not any(("Minerva" in n or "Velvet" in n) for n in named)
