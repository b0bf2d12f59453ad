"""Loading adapters back from the (local) Hub: pickle refusal, clear errors, and the card's snippets run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from huggingface_hub import HfApi

from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID, ensure_embedded_model
from hf_ita_plugin.errors import HubError, ModelError
from hf_ita_plugin.hub.pull import load_adapter
from hf_ita_plugin.hub.push import push
from hf_ita_plugin.rundir import RunDir
from test_hub_support import adapter_logits, make_run, push_folder, reference_model, tiny_base

BASE_ID = "mario/tiny-llama"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture
def hub(hub_server, base_dir, monkeypatch):
    token = hub_server.add_token("mario")
    hub_server.token = token
    push_folder(hub_server, token, BASE_ID, base_dir)
    monkeypatch.setenv("HF_TOKEN", token)
    return hub_server


def test_pickle_adapter_is_refused_unless_allowed(hub, base_dir, tmp_path):
    run = make_run(tmp_path / "run", base_dir, BASE_ID, bin_weights=True)
    adapter = RunDir(run).adapter_dir
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = BASE_ID
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    assert (adapter / "adapter_model.bin").is_file() and not (adapter / "adapter_model.safetensors").exists()
    push_folder(hub, hub.token, "mario/pickled", adapter)  # someone else's repo, published without hf-ita
    downloads = hub.count("resolve", "GET", repo_id="mario/pickled")
    with pytest.raises(ModelError, match="pickle") as info:
        load_adapter("mario/pickled", cache_dir=str(tmp_path / "c"))
    assert "allow_pickle=True" in str(info.value)
    assert hub.count("resolve", "GET", repo_id="mario/pickled") == downloads  # refused before downloading anything
    model, tokenizer = load_adapter("mario/pickled", allow_pickle=True, cache_dir=str(tmp_path / "c"))
    reference = reference_model(base_dir, adapter)
    torch.testing.assert_close(adapter_logits(model, tokenizer), adapter_logits(reference, tokenizer), rtol=0, atol=1e-6)


def test_pickle_only_base_model_is_refused(hub, base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    pickled_base = tmp_path / "pickled-base"
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    model.config.save_pretrained(pickled_base)  # transformers 5 writes only safetensors: the pickle is made by hand
    torch.save(model.state_dict(), pickled_base / "pytorch_model.bin")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(base_dir / name, pickled_base / name)
    assert not list(pickled_base.glob("*.safetensors"))
    push_folder(hub, hub.token, "mario/pickled-base", pickled_base)
    run = make_run(tmp_path / "run", base_dir, "mario/pickled-base")
    push(run, "mario/on-pickled-base", retry_wait=0.01)
    with pytest.raises(ModelError, match="mario/pickled-base.*pickle"):
        load_adapter("mario/on-pickled-base", cache_dir=str(tmp_path / "c"))


def test_clear_errors_for_missing_repo_revision_and_non_adapter(hub, base_dir, tmp_path, monkeypatch):
    with pytest.raises(HubError, match="repo not found or private"):
        load_adapter("mario/does-not-exist")
    with pytest.raises(HubError, match="not a peft adapter"):
        load_adapter(BASE_ID)
    run = make_run(tmp_path / "run", base_dir, BASE_ID)
    push(run, "mario/tiny-ita", retry_wait=0.01, private=True)
    with pytest.raises(HubError, match="revision not found"):
        load_adapter("mario/tiny-ita", revision="v7")
    with pytest.raises(HubError, match="malformed repo id"):
        load_adapter("mario/../etc")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="repo not found or private"):
        load_adapter("mario/tiny-ita", revision="v1")
    model, _ = load_adapter("mario/tiny-ita", revision="v1", token=hub.token, cache_dir=str(tmp_path / "c"))
    assert model.peft_config["default"].base_model_name_or_path == BASE_ID


@pytest.mark.slow
def test_embedded_smollm2_round_trip(hub, tmp_path):
    """The default model: the pushed adapter names the Hub id, load_adapter finds the embedded base again.

    (4-bit loading is covered on the tiny model in test_hub_push.py: on 2 CPU cores NF4-quantizing
    135M parameters twice costs more than this whole file.)"""
    embedded = ensure_embedded_model(verbose=False)
    run = make_run(tmp_path / "run", embedded, EMBEDDED_HUB_ID, r=2)
    assert json.loads((RunDir(run).adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(embedded)
    push(run, "mario/smollm2-ita", retry_wait=0.01)
    pushed = json.loads(hub.files("mario/smollm2-ita")["adapter_config.json"])
    assert pushed["base_model_name_or_path"] == EMBEDDED_HUB_ID
    model, tokenizer = load_adapter("mario/smollm2-ita", revision="v1", cache_dir=str(tmp_path / "c"))
    reference = reference_model(embedded, RunDir(run).adapter_dir)
    torch.testing.assert_close(adapter_logits(model, tokenizer), adapter_logits(reference, tokenizer), rtol=0, atol=1e-5)


def _python_blocks(card_text: str) -> dict[str, str]:
    """The card's ```python blocks, keyed by the heading above each."""
    blocks, heading = {}, ""
    for part in re.split(r"(^#{2,4} .*$|^\*\*.*\*\*$)", card_text, flags=re.M):
        if part.startswith("#") or part.startswith("**"):
            heading = part.strip("#* ").strip()
            continue
        for code in re.findall(r"```python\n(.*?)```", part, flags=re.S):
            blocks[heading] = code
    return blocks


@pytest.mark.slow
def test_card_snippets_work_as_written(hub, base_dir, tmp_path):
    """Run the card's transformers / peft / merged-model snippets verbatim against the local Hub."""
    run = make_run(tmp_path / "run", base_dir, BASE_ID)
    push(run, "mario/tiny-ita", merged=True, retry_wait=0.01)  # merges through hf_ita_plugin.gguf
    assert (RunDir(run).merged_dir / "config.json").is_file()
    card = hub.files("mario/tiny-ita")["README.md"].decode()
    blocks = _python_blocks(card)
    wanted = [k for k in blocks if k.startswith(("transformers + peft", "AutoPeftModelForCausalLM", "Modello unito"))]
    assert len(wanted) == 3, list(blocks)
    script = tmp_path / "snippets.py"
    script.write_text("\n".join(f"print('--- {k}')\n{blocks[k]}" for k in wanted), encoding="utf-8")
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home"), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("--- ") == 3
    api = HfApi(endpoint=hub.url, token=hub.token)
    assert "merged/model.safetensors" in api.list_repo_files("mario/tiny-ita")


@pytest.mark.slow
def test_gguf_snippet_runs_with_llama_cpp(hub, tmp_path):
    """The llama-cpp-python snippet of the card, on a real GGUF (the embedded SmolLM2 Q4_1) pushed via LFS."""
    pytest.importorskip("llama_cpp")
    from hf_ita_plugin.models.embedded import embedded_gguf_path

    embedded = ensure_embedded_model(verbose=False)
    run = make_run(tmp_path / "run", embedded, EMBEDDED_HUB_ID, r=2)
    RunDir(run).gguf_dir.mkdir()
    shutil.copyfile(embedded_gguf_path(), RunDir(run).gguf_dir / "smollm2-ita-Q4_1.gguf")
    push(run, "mario/smollm2-ita", retry_wait=0.01)
    card = hub.files("mario/smollm2-ita")["README.md"].decode()
    code = _python_blocks(card)["llama-cpp-python"]
    assert '"gguf/smollm2-ita-Q4_1.gguf"' in code
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()
