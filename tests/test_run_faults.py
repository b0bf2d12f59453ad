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


# --- 2. files the user put in --output-dir are never replaced -------------------------------------

def test_training_refuses_a_folder_holding_the_users_files(tmp_path, capsys):
    from hf_ita_plugin.cli.main import main

    out = tmp_path / "mine"
    out.mkdir()
    mine = {"README.md": "# my notes\n", "metrics.json": '{"mine": 1}\n', "run_config.yaml": "mine: true\n"}
    for name, text in mine.items():
        (out / name).write_text(text, encoding="utf-8")
    rc = main(["train", str(_config(tmp_path)), "--output-dir", str(out), *_tiny(4)])
    err = capsys.readouterr().err
    assert rc == 2 and "did not write" in err and "README.md" in err and "Traceback" not in err
    assert {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()} == mine  # nothing replaced, nothing added


# --- 1, 5, 12: a real kill -9 while a checkpoint is written, resume, finished runs ----------------

TINY = ["data.max_train_examples=8", "data.max_eval_examples=3", "training.max_seq_length=256",
        "training.per_device_batch_size=4", "training.eval_steps=100", "training.logging_steps=1",
        "training.warmup_ratio=0.0", "evaluation.bpb_max_chars=600", "evaluation.max_length=256",
        "evaluation.answer_quality=false", "training.save_steps=2"]


def _tiny(max_steps: int, *extra: str) -> list[str]:
    return [arg for item in [*TINY, f"training.max_steps={max_steps}", *extra] for arg in ("--set", item)]


def _config(tmp_path: Path) -> Path:
    from hf_ita_plugin.config import RunConfig

    cfg = tmp_path / "run.yaml"
    cfg.write_text(RunConfig.from_preset("smollm2-135m-cpu").to_yaml(), encoding="utf-8")
    return cfg


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _kill_while_saving(args: list[str], ckpt_dir: Path, step: int, timeout: float = 600) -> None:
    """Start ``hf-ita train ARGS`` and ``kill -9`` it as soon as it starts writing ``checkpoint-STEP``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "hf_ita_plugin.cli", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if ckpt_dir.is_dir() and any(p.name.startswith(f".checkpoint-{step}.") for p in ckpt_dir.iterdir()):
                os.kill(proc.pid, 9)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and time.time() >= deadline:
            proc.kill()
        proc.wait()
    assert proc.returncode == -9, f"hf-ita train ended with {proc.returncode} before checkpoint-{step} was written"


@pytest.mark.slow
def test_kill_during_the_first_checkpoint_then_rerun_from_a_local_model(tmp_path):
    from hf_ita_plugin.models.embedded import ensure_embedded_model

    local = tmp_path / "my-base"  # a local model folder: no Hub id anywhere
    shutil.copytree(ensure_embedded_model(), local, copy_function=_link_or_copy)
    cfg, out = _config(tmp_path), tmp_path / "r"
    args = [str(cfg), "--output-dir", str(out), *_tiny(4, f"model.name_or_path={local}")]
    _kill_while_saving(args, RunDir(out).checkpoints_dir, 2)
    assert not (RunDir(out).checkpoints_dir / "checkpoint-2").exists()  # never visible half-written
    assert RunDir(out).latest_checkpoint() is None

    proc = _run_cli("train", *args, "--resume")  # the dead end: now from step 0, saying so
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no complete checkpoint" in proc.stdout and "removed an incomplete checkpoint" in proc.stdout
    metrics = json.loads(RunDir(out).metrics_path.read_text(encoding="utf-8"))
    assert metrics["train"]["steps"] == 4
    verify_safetensors(RunDir(out).adapter_dir / "adapter_model.safetensors")
    card = RunDir(out).card_path.read_text(encoding="utf-8")
    assert "`my-base` (modello locale" in card and "huggingface.co/unknown" not in card

    # 5. a finished run is not resumed: nothing in it is rewritten
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    proc = _run_cli("train", *args, "--resume")
    assert proc.returncode == 2 and "finished run" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before

    # 12. only push asks for the Hub id
    from hf_ita_plugin.errors import ConfigError
    from hf_ita_plugin.hub.facts import facts_from_output_dir

    with pytest.raises(ConfigError, match="--base-model"):
        facts_from_output_dir(out, lookup=False)


@pytest.mark.slow
def test_kill_during_a_later_checkpoint_resumes_from_the_newest_complete_one(tmp_path):
    cfg, out = _config(tmp_path), tmp_path / "r"
    args = [str(cfg), "--output-dir", str(out), *_tiny(4)]
    run = RunDir(out)
    _kill_while_saving(args, run.checkpoints_dir, 4)
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2"]
    proc = _run_cli("train", *args)  # an interrupted run is not restarted by mistake
    assert proc.returncode == 2 and "--resume" in proc.stderr and "checkpoint-2" in proc.stderr
    # a later checkpoint whose weights were cut short (real truncated file) is passed over and removed
    fake = run.checkpoints_dir / "checkpoint-3"
    shutil.copytree(run.checkpoints_dir / "checkpoint-2", fake)
    _truncate(fake / "adapter_model.safetensors", 0.6)

    proc = _run_cli("train", *args, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hf-ita: resuming from checkpoint-2" in proc.stdout and "Traceback" not in proc.stderr
    assert not fake.exists() and not any(p.name.startswith(".") for p in run.checkpoints_dir.iterdir())
    metrics = json.loads(run.metrics_path.read_text(encoding="utf-8"))
    assert metrics["train"]["steps"] == 4 and metrics["train"]["resumed"]
    assert json.loads((out / ".hf-ita-manifest.json").read_text())["kind"] == "training-run"


def test_truncated_checkpoint_is_not_converted(base_dir, tmp_path):
    from hf_ita_plugin.gguf.checkpoint import Checkpoint

    model = tmp_path / "model"
    shutil.copytree(base_dir, model)
    weights = next(model.glob("*.safetensors"))
    _truncate(weights, 0.9)
    with pytest.raises(ModelError, match="truncated") as info:
        Checkpoint(model)
    assert weights.name in info.value.message


def test_crash_leftovers_do_not_block_a_run_folder_but_added_files_do(tmp_path):
    from hf_ita_plugin.errors import ConfigError
    from hf_ita_plugin.training.recipe import _check_output_dir

    run = RunDir(tmp_path / "r")
    run.record(run.CHECKPOINTS)
    run.checkpoints_dir.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a writer that is gone (killed while writing the adapter)
    (run.path / f".adapter.hf-ita-{pid}-x1.tmp").mkdir()
    (run.checkpoints_dir / f".checkpoint-2.hf-ita-{pid}-x2.tmp").mkdir()
    assert _check_output_dir(run, resume=True) is None  # resumable: from step 0
    assert _check_output_dir(run, resume=False) is None
    assert [p.name for p in run.remove_incomplete_checkpoints()] == [f".checkpoint-2.hf-ita-{pid}-x2.tmp"]
    (run.path / "notes.md").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="notes.md"):
        _check_output_dir(run, resume=True)
    assert (run.path / "notes.md").read_text(encoding="utf-8") == "mine"
