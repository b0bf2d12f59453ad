"""Faults of training runs and their weights (issue 19, second part): real truncated files, real
pickle folders, a real ``kill -9`` of a real ``hf-ita train`` while it saves a checkpoint.

Only whole weights are published, loaded or converted; a crash never leaves a run that cannot be
resumed or restarted; files the user put in an output folder are never replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hf_ita_plugin.errors import ModelError
from hf_ita_plugin.hub.pull import fetch_adapter, load_adapter
from hf_ita_plugin.hub.push import push
from hf_ita_plugin.models.weights import verify_safetensors
from hf_ita_plugin.rundir import RunDir
from test_hub_support import make_run, push_folder, tiny_base

REPO = Path(__file__).resolve().parents[1]
BASE_ID = "mario/tiny-llama"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def run_template(tmp_path_factory, base_dir):
    return make_run(tmp_path_factory.mktemp("run") / "out", base_dir, BASE_ID)


@pytest.fixture
def run(run_template, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run_template, out)
    return out


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --- 3. only whole weights are published, loaded, converted --------------------------------------

def test_verifier_names_file_and_tensor(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"a": torch.ones(64, 64), "b": torch.arange(10)}, str(good))
    assert verify_safetensors(good) == 2
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ModelError, match="truncated") as info:
        verify_safetensors(cut)
    assert str(cut) in info.value.message
    padded = tmp_path / "padded.safetensors"
    padded.write_bytes(good.read_bytes() + b"\0" * 16)
    with pytest.raises(ModelError, match="does not match the header"):
        verify_safetensors(padded)
    nan = tmp_path / "nan.safetensors"
    save_file({"ok": torch.ones(3), "bad": torch.tensor([1.0, float("nan")])}, str(nan))
    with pytest.raises(ModelError, match="non-finite") as info:
        verify_safetensors(nan)
    assert "'bad'" in info.value.message


def test_truncated_adapter_is_neither_pushed_nor_loaded_nor_converted(hub_server, base_dir, run, tmp_path, monkeypatch):
    token = hub_server.add_token("mario")
    push_folder(hub_server, token, BASE_ID, base_dir)
    monkeypatch.setenv("HF_TOKEN", token)
    weights = RunDir(run).adapter_dir / "adapter_model.safetensors"
    _truncate(weights)
    with pytest.raises(ModelError, match="adapter_model.safetensors") as info:
        push(run, "mario/cut", retry_wait=0.01)
    assert "truncated" in info.value.message
    assert ("model", "mario/cut") not in hub_server.repos  # refused before anything reached the Hub
    with pytest.raises(ModelError, match="truncated"):
        load_adapter(str(RunDir(run).adapter_dir))
    from hf_ita_plugin.gguf.adapter import export_adapter

    with pytest.raises(ModelError, match="truncated"):
        export_adapter(RunDir(run).adapter_dir, tmp_path / "a.gguf", base_dir=base_dir, progress=False)
    assert not (tmp_path / "a.gguf").exists()
    proc = _run_cli("gguf", "convert", str(run), "--quant", "Q8_0")
    assert proc.returncode == 2 and "truncated" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


# --- 8. pickle is refused for local folders too ---------------------------------------------------

def test_local_pickle_adapter_is_refused_unless_allowed(base_dir, tmp_path):
    run = make_run(tmp_path / "run", base_dir, BASE_ID, bin_weights=True)
    adapter = RunDir(run).adapter_dir
    assert (adapter / "adapter_model.bin").is_file()
    with pytest.raises(ModelError, match="pickle") as info:
        fetch_adapter(str(adapter))
    assert "--allow-pickle" in info.value.hint
    from hf_ita_plugin.models.loader import attach_adapter, load_base

    base = load_base(base_dir)
    with pytest.raises(ModelError, match="pickle"):
        attach_adapter(base, adapter)
    model = attach_adapter(base, adapter, allow_pickle=True)
    assert getattr(model, "peft_config", None)


def _run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", *args], capture_output=True, text=True,
                          env=env, **kw)
