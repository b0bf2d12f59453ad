"""Model cards: metadata round-trips through huggingface_hub's ModelCard, Italian first, no local paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID
from hf_ita_plugin.errors import ConfigError
from hf_ita_plugin.hub.card import render_card, write_card
from hf_ita_plugin.hub.facts import collect_gguf_files, facts_from_output_dir
from hf_ita_plugin.hub.licenses import LicenseConflictWarning
from hf_ita_plugin.rundir import RunDir
from test_hub_support import make_run, push_folder, tiny_base


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, base_dir):
    return make_run(tmp_path_factory.mktemp("run") / "out", base_dir, EMBEDDED_HUB_ID)


def _body_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.splitlines()[0]: p for p in parts[1:]}


def test_card_metadata_round_trips_through_modelcard(run_dir, tmp_path):
    path = write_card(run_dir, repo_id="mario/smollm2-ita", lookup=False, target=tmp_path / "README.md")
    card = ModelCard.load(path)
    data = card.data
    assert data.language == ["it", "en"]
    assert data.license == "apache-2.0"
    assert data.base_model == EMBEDDED_HUB_ID
    assert data.to_dict()["base_model_relation"] == "adapter"
    assert data.library_name == "peft"
    assert data.pipeline_tag == "text-generation"
    assert {"italian", "sft", "qlora", "hf-ita-plugin"} <= set(data.tags)
    metrics = json.loads(RunDir(run_dir).metrics_path.read_text())
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == metrics["eval"]["after"]
    assert all(r.task_type == "text-generation" for r in data.eval_results)
    # the same text parses again identically (what the Hub stores is what we wrote)
    assert ModelCard(str(card)).data.to_dict() == data.to_dict()


def test_card_body_italian_first_with_tables_and_usage(run_dir, tmp_path):
    card = ModelCard.load(write_card(run_dir, repo_id="mario/smollm2-ita", lookup=False, target=tmp_path / "c.md"))
    text = card.text
    sections = _body_sections(text)
    assert list(sections)[:6] == ["Dati · Data", "Iperparametri · Hyperparameters", "Hardware e tempi · Hardware and time",
                                  "Valutazione · Evaluation", "Template di chat · Chat template", "Uso · Usage"]
    for italian, english in [("Addestrato su conversazioni", "Trained on Italian"), ("Misure sugli stessi", "Measured on the same"),
                             ("Il modello può produrre", "The model can state"), ("Adattatore LoRA", "A LoRA adapter")]:
        assert text.index(italian) < text.index(english)
    # hyperparameters from run_config.yaml / metrics.json, eval before -> after with the change
    assert "| `learning_rate` | 0.00031 |" in text
    assert "| `lora_r` | 4 |" in text
    assert re.search(r"\| 1\.4321 \| 1\.2345 \| -13\.8% \|", text)
    assert "2100.5" in text and "Linux-test" in text
    # the chat template and an example rendered with it
    assert "<|im_start|>user\nQual è la capitale d'Italia?<|im_end|>" in text
    # usage snippets name the repo and the base model
    assert 'PeftModel.from_pretrained(base, "mario/smollm2-ita")' in text
    assert f'AutoModelForCausalLM.from_pretrained("{EMBEDDED_HUB_ID}", quantization_config=bnb' in text
    assert 'AutoPeftModelForCausalLM.from_pretrained("mario/smollm2-ita")' in text


def test_card_never_holds_local_paths(run_dir, tmp_path):
    text = (write_card(run_dir, repo_id="mario/x", lookup=False, target=tmp_path / "c.md")).read_text()
    assert str(run_dir) not in text and str(Path.home()) not in text and "/tmp/" not in text


def test_merged_and_gguf_cards(run_dir, tmp_path):
    gguf_dir = tmp_path / "gguf"
    gguf_dir.mkdir()
    (gguf_dir / "smollm2-ita-Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(2048))
    (gguf_dir / "smollm2-ita-Q4_K_M.Modelfile").write_text("FROM ./smollm2-ita-Q4_K_M.gguf\n")
    (gguf_dir / "smollm2-ita-Q4_K_M.verify.json").write_text(json.dumps({"ok": True}))
    facts = facts_from_output_dir(run_dir, repo_id="mario/smollm2-ita-GGUF", lookup=False)
    files = collect_gguf_files(gguf_dir)
    assert [(f.path, f.quant, f.verified) for f in files] == [("smollm2-ita-Q4_K_M.gguf", "Q4_K_M", True)]
    gguf = ModelCard(str(render_card(facts, "gguf", gguf_files=files, finetune_repo="mario/smollm2-ita")))
    assert (gguf.data.base_model, gguf.data.to_dict()["base_model_relation"]) == ("mario/smollm2-ita", "quantized")
    unpublished = ModelCard(str(render_card(facts, "gguf", gguf_files=files))).data
    assert (unpublished.base_model, unpublished.to_dict()["base_model_relation"]) == (facts.base_model, "finetune")
    assert "gguf" in gguf.data.tags
    assert "ollama create smollm2-ita-gguf -f smollm2-ita-Q4_K_M.Modelfile" in gguf.text
    assert 'hf_hub_download("mario/smollm2-ita-GGUF", "smollm2-ita-Q4_K_M.gguf")' in gguf.text
    merged = ModelCard(str(render_card(facts, "merged", merged_path="")))
    assert merged.data.library_name == "transformers"
    assert merged.data.to_dict()["base_model_relation"] == "finetune"
    assert 'AutoModelForCausalLM.from_pretrained("mario/smollm2-ita-GGUF")' in merged.text


def test_license_conflict_with_a_hub_dataset_is_flagged(hub_server, base_dir, tmp_path):
    token = hub_server.add_token("acme")
    data_dir = tmp_path / "dataset"
    data_dir.mkdir()
    (data_dir / "README.md").write_text("---\nlicense: cc-by-nc-4.0\nlanguage: [it]\n---\n# Dialoghi\n")
    (data_dir / "train.jsonl").write_text('{"messages": []}\n')
    push_folder(hub_server, token, "acme/dialoghi-nc", data_dir, repo_type="dataset")
    run = make_run(tmp_path / "run", base_dir, EMBEDDED_HUB_ID,
                   metrics_extra={"data": {"train_examples": 10, "eval_examples": 2, "train_source": "acme/dialoghi-nc",
                                           "eval_source": "bundled-heldout"}})
    with pytest.warns(LicenseConflictWarning, match="cc-by-nc-4.0"):
        facts = facts_from_output_dir(run, repo_id="acme/ita", token=token)
    assert facts.license.conflict
    card = ModelCard(str(render_card(facts)))
    assert card.data.license == "other"
    assert "cc-by-nc-4.0" in card.data.license_name
    assert card.data.datasets == ["acme/dialoghi-nc"]
    assert "Attenzione:" in card.text and "| dataset acme/dialoghi-nc | cc-by-nc-4.0 |" in card.text


def test_unknown_base_license_is_looked_up_on_the_hub(hub_server, base_dir, tmp_path):
    token = hub_server.add_token("acme")
    model_dir = tmp_path / "base-card"
    model_dir.mkdir()
    (model_dir / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    push_folder(hub_server, token, "acme/tiny-llama", model_dir)
    run = make_run(tmp_path / "run", base_dir, "acme/tiny-llama")
    facts = facts_from_output_dir(run, token=token)
    assert facts.license.license == "mit" and not facts.license.conflict


def test_card_cli_writes_readme_and_reports_bad_metrics(run_dir, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run_dir, out)
    assert main(["card", str(out), "--repo", "mario/cli-card", "--offline"]) == 0
    assert ModelCard.load(RunDir(out).card_path).data.model_name == "mario/cli-card"
    RunDir(out).metrics_path.write_text('{"base_model": "x",\n  "eval": [1, }\n')
    assert main(["card", str(out), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "metrics.json" in err and "line 2" in err


def test_local_base_path_without_hub_id_is_refused(base_dir, tmp_path):
    run = make_run(tmp_path / "run", base_dir, None)  # only a local path was recorded
    with pytest.raises(ConfigError, match="base model's Hub id is unknown"):
        facts_from_output_dir(run, lookup=False)
    facts = facts_from_output_dir(run, base_model="acme/tiny-llama", lookup=False)
    assert facts.base_model == "acme/tiny-llama"


def test_trainer_callback_writes_card_at_train_end(base_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from hf_ita_plugin.hub.callback import ModelCardCallback

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                           LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    texts = ["Roma è la capitale d'Italia.", "Il Po è il fiume più lungo d'Italia.", "Buongiorno, come va?"] * 3
    rows = [tokenizer(t) for t in texts]
    ds = Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["input_ids"]} for r in rows])
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=1, per_device_eval_batch_size=1, max_steps=3,
                             eval_strategy="steps", eval_steps=1, logging_steps=1, report_to=[], save_strategy="no",
                             learning_rate=1e-3, use_cpu=True, disable_tqdm=True)
    callback = ModelCardCallback(base_model="acme/tiny-llama", repo_id="acme/tiny-ita", dataset_licenses={"mine": "mit"})
    Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ds.select(range(2)), processing_class=tokenizer,
            callbacks=[callback]).train()
    assert callback.card_path == tmp_path / "trainer" / "README.md"
    card = ModelCard.load(callback.card_path)
    assert card.data.base_model == "acme/tiny-llama"
    assert card.data.library_name == "peft"
    assert [r.metric_type for r in card.data.eval_results] == ["eval_loss"]
    assert "| `lora_r` | 2 |" in card.text and "| `learning_rate` | 0.001 |" in card.text
    assert str(tmp_path) not in str(card)
