"""Registry templates against the official chat templates of the models the presets name.

The official templates (exact ``tokenizer_config.json`` text, with their BOS/EOS and sources) live in
``shared/reference/chat_templates`` beside the checkout; they are read at test time, never copied.
Each is rendered with transformers' own renderer and compared byte for byte with the registry
entry of its family on the same Italian conversations, with and without the generation prompt.
Where the official template rejects a conversation the registry's documented choice is checked.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from jinja2 import TemplateError
from transformers.utils import chat_template_utils
from transformers.utils.chat_template_utils import render_jinja_template

from hf_ita_plugin.templates import get_template, render_source, validate_messages

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "chat_templates"
if not (REFERENCE / "SOURCES.json").is_file():
    if os.environ.get("CI") == "true":
        pytest.fail(f"official chat templates missing: {REFERENCE} (CI keeps them beside the checkout)",
                    pytrace=False)
    pytest.skip(f"official chat templates not found at {REFERENCE}", allow_module_level=True)

SOURCES = {entry["model"]: entry for entry in json.loads((REFERENCE / "SOURCES.json").read_text("utf-8"))["models"]}

# Official model -> registry entry that must render the same text.
FAMILY = {
    "mistralai/Mistral-7B-Instruct-v0.1": "mistral",
    "mistralai/Mistral-7B-Instruct-v0.2": "mistral",
    "mistralai/Mistral-7B-Instruct-v0.3": "mistral-v3",
    "meta-llama/Llama-2-7b-chat-hf": "llama-2",
    "meta-llama/Meta-Llama-3-8B-Instruct": "llama-3",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.1",
    "meta-llama/Llama-3.2-3B-Instruct": "llama-3.2",
    "google/gemma-2-2b-it": "gemma-2",
    "google/gemma-3-1b-it": "gemma-3",
    "Qwen/Qwen2.5-3B-Instruct": "qwen2.5",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2",
    "HuggingFaceH4/zephyr-7b-beta": "zephyr",
    "Qwen/Qwen3-0.6B": "qwen3",
    "Qwen/Qwen3-1.7B": "qwen3",
    "HuggingFaceTB/SmolLM3-3B": "smollm3",
    "microsoft/Phi-3.5-mini-instruct": "phi-3.5",
    "microsoft/phi-4": "phi-4",
    "mistralai/Mistral-Nemo-Instruct-2407": "mistral-nemo",
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": "mistral-small-3.1",
}
# Options the official template is rendered with (the registry entry has them built in).
OFFICIAL_OPTIONS = {"qwen3": {"enable_thinking": False}, "smollm3": {"enable_thinking": False}}

# Templates that print today's date get a fixed one: ``date_string`` where they honour it (Llama 3.1+);
# strftime_now (transformers' template global) reads a frozen clock in every test here.
NOW = datetime(2026, 12, 2, 9, 30)
DATE = "02 Dec 2026"
FIXED_DATE = {"date_string": DATE}


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(chat_template_utils, "datetime", FrozenClock)
SYSTEM = {"role": "system", "content": "Sei un assistente che risponde sempre in italiano, in modo chiaro."}
CONVERSATIONS = {
    "single": [
        {"role": "user", "content": "Qual è la capitale d'Italia?"},
        {"role": "assistant", "content": "Roma, città d'arte e di storia. 🇮🇹"},
    ],
    "system_single": [
        SYSTEM,
        {"role": "user", "content": "Perché è così famosa la pizza napoletana?"},
        {"role": "assistant", "content": "Perché è semplice: pomodoro, mozzarella, basilico… e un forno a legna! 🍕"},
    ],
    "multi": [
        {"role": "user", "content": "Ciao! 😊"},
        {"role": "assistant", "content": "Ciao! Come posso aiutarti oggi?"},
        {"role": "user", "content": "Scrivi una funzione Python che saluta per nome."},
        {"role": "assistant", "content": "```python\ndef saluta(nome: str) -> str:\n    return f\"Ciao, {nome}! È un piacere.\"\n```"},
    ],
    "system_multi": [
        SYSTEM,
        {"role": "user", "content": "Come si dice «thank you» in italiano?"},
        {"role": "assistant", "content": "Si dice «grazie»."},
        {"role": "user", "content": "E «you're welcome»? Usa {{ parentesi }} nel testo."},
        {"role": "assistant", "content": "«Prego» — oppure {{ di nulla }}."},
    ],
    "edges": [
        {"role": "system", "content": "  Rispondi in modo conciso.\n"},
        {"role": "user", "content": "\n  Perché il cielo è blu?  "},
        {"role": "assistant", "content": "  Per la diffusione di Rayleigh: il blu è più diffuso.\n\n"},
        {"role": "user", "content": "\tE al tramonto? "},
        {"role": "assistant", "content": " Diventa rosso perché la luce attraversa più atmosfera. "},
    ],
    "prompt": [
        {"role": "user", "content": "Dammi un consiglio per l'esame di maturità."},
    ],
    "system_prompt": [
        SYSTEM,
        {"role": "user", "content": "Che tempo fa a Torino d'inverno? ❄️"},
    ],
    "multi_prompt": [
        SYSTEM,
        {"role": "user", "content": "Quanti abitanti ha Milano?"},
        {"role": "assistant", "content": "Circa 1,4 milioni nel comune."},
        {"role": "user", "content": "  E Bologna?  "},
    ],
}


def tokens_of(model: str) -> dict[str, str]:
    entry = SOURCES[model]
    return {k: entry[k] for k in ("bos_token", "eos_token") if entry.get(k)}


def render_official(model: str, messages, add_generation_prompt: bool, **extra) -> str:
    """The official template's text, rendered as ``tokenizer.apply_chat_template(tokenize=False)`` does."""
    source = (REFERENCE / SOURCES[model]["file"]).read_text(encoding="utf-8")
    options = {**OFFICIAL_OPTIONS.get(FAMILY.get(model), {}), **extra}
    rendered, _ = render_jinja_template(conversations=[messages], chat_template=source,
                                        add_generation_prompt=add_generation_prompt, **tokens_of(model), **options)
    return rendered[0]


def render_registry(name: str, model: str, messages, add_generation_prompt: bool, **extra) -> str:
    return render_source(get_template(name).source, messages, add_generation_prompt=add_generation_prompt,
                         special_tokens=tokens_of(model), template_kwargs=extra)


def has_system(messages) -> bool:
    return messages[0]["role"] == "system"


# Where an official template rejects a conversation, the model whose official rendering the
# registry entry follows instead (its documented choice).
FALLBACK = {"gemma-2": "google/gemma-3-1b-it"}

CASES = [(model, conv, gen) for model in FAMILY for conv in CONVERSATIONS for gen in (False, True)]


def test_every_listed_official_template_is_present():
    for model in FAMILY:
        assert model in SOURCES, model
        assert (REFERENCE / SOURCES[model]["file"]).is_file()


@pytest.mark.parametrize(("model", "conv", "gen"), CASES, ids=[f"{m.split('/')[1]}-{c}-{g}" for m, c, g in CASES])
def test_registry_renders_like_the_official_template(model, conv, gen):
    name = FAMILY[model]
    messages = CONVERSATIONS[conv]
    validate_messages(messages, name)  # the conversations are valid for the registry entry
    try:
        expected = render_official(model, messages, gen, **FIXED_DATE)
    except TemplateError:
        # Only Gemma 2 rejects these conversations (no system role), and only when one is present.
        assert name in FALLBACK and has_system(messages)
        expected = render_official(FALLBACK[name], messages, gen, **FIXED_DATE)
    assert render_registry(name, model, messages, gen, **FIXED_DATE) == expected


def test_gemma_2_official_rejects_a_system_message_registry_folds_it_into_the_first_user_turn():
    with pytest.raises(TemplateError, match="System role not supported"):
        render_official("google/gemma-2-2b-it", CONVERSATIONS["system_single"], False)
    text = render_registry("gemma-2", "google/gemma-2-2b-it", CONVERSATIONS["system_single"], False)
    assert text.startswith("<bos><start_of_turn>user\n" + SYSTEM["content"] + "\n\nPerché è così famosa")


@pytest.mark.parametrize(("model", "today"), [
    ("meta-llama/Llama-3.2-3B-Instruct", "Today Date: 02 Dec 2026\n"),  # strftime_now('%d %b %Y')
    ("meta-llama/Llama-3.1-8B-Instruct", "Today Date: 26 Jul 2024\n"),  # fixed default
    ("HuggingFaceTB/SmolLM3-3B", "Today Date: 02 December 2026\n"),  # strftime_now('%d %B %Y')
    ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", "The current date is 2026-12-02."),  # default system
])
def test_without_date_string_the_date_is_the_official_one(model, today):
    messages = CONVERSATIONS["single"]
    official = render_official(model, messages, False)
    assert today in official
    assert render_registry(FAMILY[model], model, messages, False) == official


def test_mistral_v3_keeps_the_system_text_only_when_the_user_speaks_last():
    model = "mistralai/Mistral-7B-Instruct-v0.3"
    trained = render_registry("mistral-v3", model, CONVERSATIONS["system_multi"], False)
    assert SYSTEM["content"] not in trained
    prompt = render_registry("mistral-v3", model, CONVERSATIONS["multi_prompt"], True)
    assert prompt.endswith("[INST] " + SYSTEM["content"] + "\n\n  E Bologna?  [/INST]")


@pytest.mark.parametrize("name", sorted(set(FAMILY.values())))
def test_generation_blocks_hold_the_replies_as_the_official_text_writes_them(name):
    """Masks come from the same text: each marked span ends with the family's end of turn."""
    model = next(m for m, n in FAMILY.items() if n == name)
    tpl = get_template(name)
    eot = tokens_of(model)["eos_token"] if tpl.end_of_turn_is_eos else tpl.end_of_turn[0]
    for conv in ("single", "multi", "edges"):
        messages = CONVERSATIONS[conv]
        text, spans = render_source(tpl.source, messages, special_tokens=tokens_of(model), return_spans=True,
                                    template_kwargs=FIXED_DATE)
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert len(spans) == len(replies)
        for (start, end), reply in zip(spans, replies):
            block = text[start:end]
            assert block.endswith(eot) and block[: -len(eot)].strip() == reply.strip()


# What the official templates render (written out: the format is a fact), per family.
LITERAL = {
    ("mistral", "system_single", False):
        "<s> [INST] Sei un assistente che risponde sempre in italiano, in modo chiaro.\n\nPerché "
        "è così famosa la pizza napoletana? [/INST] Perché è semplice: pomodoro, mozzarella, "
        "basilico… e un forno a legna! 🍕</s>",
    ("mistral", "multi_prompt", True):
        "<s> [INST] Sei un assistente che risponde sempre in italiano, in modo chiaro.\n\nQuanti "
        "abitanti ha Milano? [/INST] Circa 1,4 milioni nel comune.</s> [INST]   E Bologna? "
        "  [/INST]",
    ("mistral-v3", "system_multi", False):
        "<s>[INST] Come si dice «thank you» in italiano?[/INST] Si dice «grazie».</s>[INST] "
        "E «you're welcome»? Usa {{ parentesi }} nel testo.[/INST] «Prego» — oppure {{ di "
        "nulla }}.</s>",
    ("mistral-v3", "multi_prompt", True):
        "<s>[INST] Quanti abitanti ha Milano?[/INST] Circa 1,4 milioni nel comune.</s>[INST] "
        "Sei un assistente che risponde sempre in italiano, in modo chiaro.\n\n  E Bologna? "
        " [/INST]",
    ("llama-2", "edges", False):
        "<s>[INST] <<SYS>>\n  Rispondi in modo conciso.\n\n<</SYS>>\n\n\n  Perché il cielo è blu? "
        "[/INST] Per la diffusione di Rayleigh: il blu è più diffuso. </s><s>[INST] E al tramonto? "
        "[/INST] Diventa rosso perché la luce attraversa più atmosfera. </s>",
    ("llama-2", "system_single", False):
        "<s>[INST] <<SYS>>\nSei un assistente che risponde sempre in italiano, in modo chiaro.\n"
        "<</SYS>>\n\nPerché è così famosa la pizza napoletana? [/INST] Perché è semplice: pomodoro, "
        "mozzarella, basilico… e un forno a legna! 🍕 </s>",
    ("llama-3", "system_single", False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSei un assistente che "
        "risponde sempre in italiano, in modo chiaro.<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nPerché è così famosa la pizza napoletana?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
        "\n\nPerché è semplice: pomodoro, mozzarella, basilico… e un forno a legna! 🍕<|eot_id|>",
    ("llama-3", "prompt", True):
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDammi un consiglio per "
        "l'esame di maturità.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ("llama-3.1", "single", False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 02 Dec 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nQual è la capitale d'Italia?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
        "\n\nRoma, città d'arte e di storia. 🇮🇹<|eot_id|>",
    ("llama-3.1", "system_prompt", True):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 02 Dec 2026\n\nSei un assistente che risponde sempre in italiano, "
        "in modo chiaro.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nChe tempo fa a "
        "Torino d'inverno? ❄️<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ("llama-3.2", "single", False):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 02 Dec 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nQual è la capitale d'Italia?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
        "\n\nRoma, città d'arte e di storia. 🇮🇹<|eot_id|>",
    ("llama-3.2", "system_prompt", True):
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 02 Dec 2026\n\nSei un assistente che risponde sempre in italiano, "
        "in modo chiaro.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nChe tempo fa a "
        "Torino d'inverno? ❄️<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ("gemma-2", "single", False):
        "<bos><start_of_turn>user\nQual è la capitale d'Italia?<end_of_turn>\n<start_of_turn>"
        "model\nRoma, città d'arte e di storia. 🇮🇹<end_of_turn>\n",
    ("gemma-2", "prompt", True):
        "<bos><start_of_turn>user\nDammi un consiglio per l'esame di maturità.<end_of_turn>"
        "\n<start_of_turn>model\n",
    ("gemma-3", "system_single", False):
        "<bos><start_of_turn>user\nSei un assistente che risponde sempre in italiano, in modo "
        "chiaro.\n\nPerché è così famosa la pizza napoletana?<end_of_turn>\n<start_of_turn>model\n"
        "Perché è semplice: pomodoro, mozzarella, basilico… e un forno a legna! 🍕<end_of_turn>"
        "\n",
    ("gemma-3", "edges", False):
        "<bos><start_of_turn>user\n  Rispondi in modo conciso.\n\n\nPerché il cielo è blu?<end_of_turn>"
        "\n<start_of_turn>model\nPer la diffusione di Rayleigh: il blu è più diffuso.<end_of_turn>"
        "\n<start_of_turn>user\nE al tramonto?<end_of_turn>\n<start_of_turn>model\nDiventa rosso "
        "perché la luce attraversa più atmosfera.<end_of_turn>\n",
    ("qwen2.5", "single", False):
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>"
        "\n<|im_start|>user\nQual è la capitale d'Italia?<|im_end|>\n<|im_start|>assistant\nRoma, "
        "città d'arte e di storia. 🇮🇹<|im_end|>\n",
    ("qwen2.5", "system_prompt", True):
        "<|im_start|>system\nSei un assistente che risponde sempre in italiano, in modo chiaro.<|im_end|>"
        "\n<|im_start|>user\nChe tempo fa a Torino d'inverno? ❄️<|im_end|>\n<|im_start|>assistant\n",
    ("smollm2", "prompt", True):
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nDammi un consiglio per l'esame di maturità.<|im_end|>"
        "\n<|im_start|>assistant\n",
    ("smollm2", "system_single", False):
        "<|im_start|>system\nSei un assistente che risponde sempre in italiano, in modo chiaro.<|im_end|>"
        "\n<|im_start|>user\nPerché è così famosa la pizza napoletana?<|im_end|>\n<|im_start|>"
        "assistant\nPerché è semplice: pomodoro, mozzarella, basilico… e un forno a legna! "
        "🍕<|im_end|>\n",
    ("zephyr", "system_single", False):
        "<|system|>\nSei un assistente che risponde sempre in italiano, in modo chiaro.</s>"
        "\n<|user|>\nPerché è così famosa la pizza napoletana?</s>\n<|assistant|>\nPerché è semplice: "
        "pomodoro, mozzarella, basilico… e un forno a legna! 🍕</s>\n",
    ("zephyr", "prompt", True):
        "<|user|>\nDammi un consiglio per l'esame di maturità.</s>\n<|assistant|>\n",
    ("qwen3", "multi", False):
        "<|im_start|>user\nCiao! 😊<|im_end|>\n<|im_start|>assistant\nCiao! Come posso aiutarti "
        "oggi?<|im_end|>\n<|im_start|>user\nScrivi una funzione Python che saluta per nome.<|im_end|>"
        "\n<|im_start|>assistant\n<think>\n\n</think>\n\n```python\ndef saluta(nome: str) -> str:\n"
        "    return f\"Ciao, {nome}! È un piacere.\"\n```<|im_end|>\n",
    ("qwen3", "system_prompt", True):
        "<|im_start|>system\nSei un assistente che risponde sempre in italiano, in modo chiaro.<|im_end|>"
        "\n<|im_start|>user\nChe tempo fa a Torino d'inverno? ❄️<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n\n</think>\n\n",
    ("smollm3", "system_single", False):
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 02 December "
        "2026\nReasoning Mode: /no_think\n\n## Custom Instructions\n\nSei un assistente che risponde "
        "sempre in italiano, in modo chiaro.\n\n<|im_start|>user\nPerché è così famosa la pizza "
        "napoletana?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\nPerché è semplice: "
        "pomodoro, mozzarella, basilico… e un forno a legna! 🍕<|im_end|>\n",
    ("smollm3", "prompt", True):
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 02 December "
        "2026\nReasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant "
        "named SmolLM, trained by Hugging Face.\n\n<|im_start|>user\nDammi un consiglio per l'esame "
        "di maturità.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
    ("phi-3.5", "system_single", False):
        "<|system|>\nSei un assistente che risponde sempre in italiano, in modo chiaro.<|end|>"
        "\n<|user|>\nPerché è così famosa la pizza napoletana?<|end|>\n<|assistant|>\nPerché è "
        "semplice: pomodoro, mozzarella, basilico… e un forno a legna! 🍕<|end|>\n<|endoftext|>",
    ("phi-3.5", "prompt", True):
        "<|user|>\nDammi un consiglio per l'esame di maturità.<|end|>\n<|assistant|>\n",
    ("phi-4", "system_single", False):
        "<|im_start|>system<|im_sep|>Sei un assistente che risponde sempre in italiano, in "
        "modo chiaro.<|im_end|><|im_start|>user<|im_sep|>Perché è così famosa la pizza napoletana?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>Perché è semplice: pomodoro, mozzarella, basilico… "
        "e un forno a legna! 🍕<|im_end|>",
    ("phi-4", "prompt", True):
        "<|im_start|>user<|im_sep|>Dammi un consiglio per l'esame di maturità.<|im_end|><|im_start|>"
        "assistant<|im_sep|>",
    ("mistral-nemo", "system_multi", False):
        "<s>[INST]Come si dice «thank you» in italiano?[/INST]Si dice «grazie».</s>[INST]E "
        "«you're welcome»? Usa {{ parentesi }} nel testo.[/INST]«Prego» — oppure {{ di nulla "
        "}}.</s>",
    ("mistral-nemo", "multi_prompt", True):
        "<s>[INST]Quanti abitanti ha Milano?[/INST]Circa 1,4 milioni nel comune.</s>[INST]Sei "
        "un assistente che risponde sempre in italiano, in modo chiaro.\n\n  E Bologna?  [/INST]",
    ("mistral-small-3.1", "system_single", False):
        "<s>[SYSTEM_PROMPT]Sei un assistente che risponde sempre in italiano, in modo chiaro."
        "[/SYSTEM_PROMPT][INST]Perché "
        "è così famosa la pizza napoletana?[/INST]Perché è semplice: pomodoro, mozzarella, "
        "basilico… e un forno a legna! 🍕</s>",
    ("mistral-small-3.1", "prompt", True):
        "<s>[SYSTEM_PROMPT]You are Mistral Small 3, a Large Language Model (LLM) created by "
        "Mistral AI, a French startup headquartered in Paris.\nYour knowledge base was last "
        "updated on 2023-10-01. The current date is 2026-12-02.\n\nWhen you're not sure about "
        "some information, you say that you don't have the information and don't make up anything.\n"
        "If the user's question is not clear, ambiguous, or does not provide enough context "
        "for you to accurately answer the question, you do not try to answer it right away "
        "and you rather ask the user to clarify their request (e.g. \"What are some good restaurants "
        "around me?\" => \"Where are you?\" or \"When is the next flight to Tokyo\" => \"Where do "
        "you travel from?\")[/SYSTEM_PROMPT][INST]Dammi un consiglio per l'esame di maturità.[/INST]",
}
LITERAL_MODEL = {name: model for model, name in reversed(list(FAMILY.items()))}


@pytest.mark.parametrize(("name", "conv", "gen"), sorted(LITERAL))
def test_literal_official_renderings(name, conv, gen):
    model = LITERAL_MODEL[name]
    messages = CONVERSATIONS[conv]
    assert render_official(model, messages, gen, **FIXED_DATE) == LITERAL[(name, conv, gen)]
    assert render_registry(name, model, messages, gen, **FIXED_DATE) == LITERAL[(name, conv, gen)]


def test_every_family_has_literal_renderings():
    assert {name for name, _, _ in LITERAL} == set(FAMILY.values())
