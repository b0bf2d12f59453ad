"""No lost runs (issue 14, item 6): checkpoints pushed while training, resume from the Hub, a job
timeout capped by the token's life. The real huggingface_hub client against the local Hub
(``hub_server``); the slow test trains the embedded model and sends it a real SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hf_ita_plugin.cli.main import main as cli_main
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError, HubError
from hf_ita_plugin.hub.checkpoint_pull import pull_checkpoint, pushed_checkpoint
from hf_ita_plugin.hub.checkpoint_push import CHECKPOINT_BRANCH, TERMINATED_EXIT, CheckpointUploader
from hf_ita_plugin.jobs.spec import build_job_spec, decode_job_config, forward_sigterm
from hf_ita_plugin.jobs.token_life import TOKEN_MARGIN_S, cap_timeout, local_token_expiry
from hf_ita_plugin.rundir import RunDir
from jobs_server import hub_endpoint, jobs_hub  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
OUT = "mario/smol-run"


def _checkpoint(folder: Path, step: int, *, truncate: bool = False) -> Path:
    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    weights = ckpt / "adapter_model.safetensors"
    save_file({"lora_A": torch.full((8, 8), float(step)), "lora_B": torch.ones(8, 8)}, str(weights))
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")
    (ckpt / "optimizer.pt").write_bytes(os.urandom(2048))
    if truncate:
        weights.write_bytes(weights.read_bytes()[:-64])
    return ckpt


@pytest.fixture
def mario(hub_server, monkeypatch):
    token = hub_server.add_token("mario", role="write")
    monkeypatch.setenv("HF_TOKEN", token)
    return token


def _branch_files(hub_server, repo: str = OUT) -> dict[str, bytes]:
    try:
        return hub_server.files(repo, CHECKPOINT_BRANCH)
    except KeyError:
        return {}


# ---------------------------------------------------------------------------------- push & pull
def test_each_push_is_one_commit_holding_one_whole_checkpoint_and_main_stays_untouched(hub_server, mario, tmp_path, capsys):
    uploader = CheckpointUploader(OUT, config_yaml="preset: smollm2-135m-cpu\n", private=True)
    (tmp_path / "eval_before.json").write_text('{"response_loss": 2.5}', encoding="utf-8")
    uploader.upload(_checkpoint(tmp_path, 2), 2, eval_before=tmp_path / "eval_before.json")
    uploader.upload(_checkpoint(tmp_path, 4), 4, eval_before=tmp_path / "eval_before.json")
    files = _branch_files(hub_server)
    assert sorted(f for f in files if f != ".gitattributes") == [
        "checkpoints/checkpoint-4/adapter_model.safetensors", "checkpoints/checkpoint-4/optimizer.pt",
        "checkpoints/checkpoint-4/trainer_state.json", "checkpoints/eval_before.json", "run_config.yaml"]
    assert files["checkpoints/checkpoint-4/optimizer.pt"] == (tmp_path / "checkpoint-4" / "optimizer.pt").read_bytes()
    assert set(hub_server.files(OUT, "main")) == {".gitattributes"}  # hf-ita push still finds a repo of its own
    assert hub_server.repos[("model", OUT)].private
    commits = len(hub_server.commit_log(OUT, CHECKPOINT_BRANCH))

    # a half-written checkpoint (weights cut short) is never pushed: no commit at all
    with pytest.raises(HubError, match="incomplete checkpoint"):
        uploader.upload(_checkpoint(tmp_path, 6, truncate=True), 6)
    assert len(hub_server.commit_log(OUT, CHECKPOINT_BRANCH)) == commits
    assert "checkpoints/checkpoint-4/trainer_state.json" in _branch_files(hub_server)
    assert mario not in capsys.readouterr().out


def test_pull_puts_the_pushed_checkpoint_in_a_new_run_folder(hub_server, mario, tmp_path):
    from huggingface_hub import HfApi

    with pytest.raises(HubError, match="repo not found"):
        pushed_checkpoint(OUT)
    HfApi(endpoint=hub_server.url).create_repo(OUT)
    with pytest.raises(HubError, match="nothing to resume"):
        pushed_checkpoint(OUT)
    CheckpointUploader(OUT, config_yaml="preset: smollm2-135m-cpu\n").upload(_checkpoint(tmp_path / "src", 4), 4)
    pushed = pushed_checkpoint(OUT)
    assert pushed.step == 4 and pushed.config_yaml == "preset: smollm2-135m-cpu\n"
    got = pull_checkpoint(OUT, tmp_path / "run")
    assert got == RunDir(tmp_path / "run").latest_checkpoint() and got.name == "checkpoint-4"
    for name in ("adapter_model.safetensors", "optimizer.pt", "trainer_state.json"):
        assert (got / name).read_bytes() == (tmp_path / "src" / "checkpoint-4" / name).read_bytes()
    assert RunDir(tmp_path / "run").is_ours()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch folder left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty"):
        pull_checkpoint(OUT, tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.md"]


def _callback_run(tmp_path: Path, every: int | None = 2):
    """A CheckpointPushCallback driven by transformers' own TrainerState/TrainerControl, as the Trainer drives it."""
    from transformers import TrainerControl, TrainerState

    from hf_ita_plugin.hub.checkpoint_push import CheckpointPushCallback

    config = RunConfig.from_preset("smollm2-135m-cpu", [f"training.output_dir={tmp_path / 'run'}", "training.save_steps=50",
                                                        "training.max_steps=10"]
                                   + ([f"training.push_checkpoint_steps={every}"] if every else []))
    callback = CheckpointPushCallback(OUT, config)
    state, control = TrainerState(max_steps=10), TrainerControl()
    callback.on_train_begin(None, state, control)
    return callback, state, control, RunDir(config.training.output_dir).checkpoints_dir


def _step(callback, state, control, ckpt_dir: Path, step: int):
    state.global_step = step
    control = callback.on_step_end(None, state, control)
    if control.should_save:  # what the Trainer does: write the checkpoint, then tell the callbacks
        _checkpoint(ckpt_dir, step)
        callback.on_save(None, state, control)
    return control


def test_a_failed_push_never_stops_training_and_the_next_one_is_tried(hub_server, mario, tmp_path, capsys):
    callback, state, control, ckpt_dir = _callback_run(tmp_path)
    hub_server.inject_fault("commit", 403)
    assert not _step(callback, state, control, ckpt_dir, 1).should_save
    assert _step(callback, state, control, ckpt_dir, 2).should_save  # a save forced every 2 steps (save_steps is 50)
    callback._worker.drain()
    assert callback.pushed == [] and "checkpoint-2 non inviato / not pushed" in capsys.readouterr().out
    control = _step(callback, state, control, ckpt_dir, 3)
    _step(callback, state, control, ckpt_dir, 4)
    callback.on_train_end(None, state, control)
    assert callback.pushed == [4] and pushed_checkpoint(OUT).step == 4
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored at the end
    assert mario not in capsys.readouterr().out


def test_sigterm_saves_pushes_and_exits_at_the_end_of_the_step(hub_server, mario, tmp_path, capsys):
    callback, state, control, ckpt_dir = _callback_run(tmp_path, every=None)  # pushes only with save_steps (50)
    _step(callback, state, control, ckpt_dir, 1)
    os.kill(os.getpid(), signal.SIGTERM)  # mid-step: the handler only takes note
    assert not any(ckpt_dir.glob("checkpoint-*"))
    with pytest.raises(SystemExit) as exited:
        control = _step(callback, state, control, ckpt_dir, 2)
    assert exited.value.code == TERMINATED_EXIT and control.should_training_stop
    assert callback.pushed == [2] and pushed_checkpoint(OUT).step == 2
    assert "stopped at step 2, checkpoint on the Hub" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not [p for p in ckpt_dir.iterdir() if p.name.startswith(".")]  # the snapshot is gone


# ---------------------------------------------------------------------------------- the job
def test_job_trains_with_checkpoint_pushes_and_resume_pulls_first():
    config = RunConfig.from_preset("smollm2-135m-cpu")
    script = build_job_spec(config, flavor="t4-small", output_repo=OUT, package="hf-ita-plugin").command[-1]
    assert "--push-checkpoints-to mario/smol-run --push-private" in script and "--resume-from-hub" not in script
    assert "trap 'kill -TERM \"$child\"" in script and script.index("hf-ita train") < script.index("hf-ita push")
    resumed = build_job_spec(config, flavor="t4-small", output_repo=OUT, package="hf-ita-plugin", private=False,
                             resume=True).command[-1]
    assert "--push-checkpoints-to mario/smol-run --resume-from-hub mario/smol-run" in resumed


def test_job_shell_forwards_sigterm_and_waits_for_the_last_push(tmp_path):
    """The container's PID 1 is the job's bash, which forwards no signal by itself."""
    child = ("import signal, sys, time\n"
             "def stop(*_):\n    time.sleep(1.0); print('pushed', flush=True); sys.exit(143)\n"
             "signal.signal(signal.SIGTERM, stop)\nprint('training', flush=True)\ntime.sleep(60)\n")
    (tmp_path / "child.py").write_text(child, encoding="utf-8")
    script = "\n".join(["set -euo pipefail", *forward_sigterm(f"{sys.executable} {tmp_path / 'child.py'}"), "echo after"])
    proc = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "training\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143 and out == "pushed\n"  # waited for the child; `hf-ita push` never ran


# ---------------------------------------------------------------------------------- token life
def test_timeout_is_capped_by_the_tokens_life_and_says_so():
    now = 1_800_000_000.0
    assert cap_timeout(None, None, now=now).timeout == "8h"  # expiry unknown: nothing capped
    assert not cap_timeout("8h", now + 9 * 3600, now=now).capped
    choice = cap_timeout(None, now + 8 * 3600, now=now)  # the Space's 8 h sign-in, the 8 h default timeout
    assert choice.capped and choice.seconds == 8 * 3600 - TOKEN_MARGIN_S and choice.timeout == "465m"
    assert "timeout ridotto a 7 h 45 min" in choice.note and "timeout capped to 7 h 45 min" in choice.note
    assert "token" in choice.note
    with pytest.raises(ConfigError, match="too soon"):
        cap_timeout("1h", now + 20 * 60, now=now)


def test_cli_reads_the_expiry_of_a_browser_login_only(hub_server, monkeypatch, tmp_path):
    from huggingface_hub import constants
    from huggingface_hub.utils._auth import _save_token  # what `hf auth login` writes

    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"))
    _save_token("hf_oauth_abc", "oauth-mario", refresh_token="r", expires_at=1_800_000_000)
    _save_token("hf_classic", "classic")
    assert local_token_expiry("hf_oauth_abc") == 1_800_000_000
    assert local_token_expiry("hf_classic") is None
    monkeypatch.setenv("HF_TOKEN", "hf_oauth_abc")  # from the environment: the expiry is not known
    assert local_token_expiry() is None


# ---------------------------------------------------------------------------------- CLI launch --resume
def test_cli_launch_resume_uses_the_pushed_config(jobs_hub, hub_endpoint, monkeypatch, tmp_path, capsys):
    token = hub_endpoint.server.add_token("mario", role="write")
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_ITA_PACKAGE_SPEC", "hf-ita-plugin")
    from huggingface_hub import HfApi

    HfApi(endpoint=hub_endpoint.server.url).create_repo(OUT, private=True)
    assert cli_main(["launch", "--resume", "--repo", OUT, "--flavor", "t4-small"]) == 2
    assert "nothing to resume" in capsys.readouterr().err and not jobs_hub.jobs  # nothing launched
    config = RunConfig.from_preset("smollm2-135m-cpu", ["training.max_steps=9"])
    CheckpointUploader(OUT, config_yaml=config.to_yaml(), private=True).upload(_checkpoint(tmp_path, 4), 4)
    assert cli_main(["launch", "--resume", str(tmp_path / "x.yaml"), "--repo", OUT]) == 2
    assert "--resume uses the config pushed" in capsys.readouterr().err
    assert cli_main(["launch", "--resume", "--repo", OUT, "--flavor", "t4-small", "--dry-run"]) == 0
    captured = capsys.readouterr()
    spec = json.loads(captured.out)
    assert "checkpoint-4" in captured.err and spec["private"] is True
    assert f"--resume-from-hub {OUT}" in spec["command"][-1]
    assert cli_main(["launch", "--resume", "--repo", OUT, "--flavor", "t4-small"]) == 0
    (job,) = jobs_hub.jobs.values()
    assert decode_job_config(job.spec["environment"]).training.max_steps == 9  # the run's own config


# ---------------------------------------------------------------------------------- a real run, a real SIGTERM
TINY = ["data.max_train_examples=8", "data.max_eval_examples=3", "training.max_seq_length=256",
        "training.per_device_batch_size=4", "training.eval_steps=100", "training.logging_steps=1",
        "training.warmup_ratio=0.0", "evaluation.bpb_max_chars=600", "evaluation.max_length=256",
        "evaluation.answer_quality=false", "training.save_steps=100", "training.push_checkpoint_steps=2",
        "training.max_steps=6"]


def _train_args(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hf_ita_plugin.cli", "train", str(cfg), "--output-dir", str(out),
            "--push-checkpoints-to", OUT, *extra, *[a for item in TINY for a in ("--set", item)]]


def _no_token_in(token: str, texts: list[str], folders: list[Path]) -> None:
    assert not [t for t in texts if token in t]
    leaks = [p for folder in folders for p in folder.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert not leaks, leaks


@pytest.mark.slow
def test_sigterm_mid_run_leaves_the_last_checkpoint_on_the_hub_and_resume_finishes(hub_server, mario, tmp_path):
    import shlex

    cfg = tmp_path / "run.yaml"
    cfg.write_text(RunConfig.from_preset("smollm2-135m-cpu").to_yaml(), encoding="utf-8")
    out, resumed = tmp_path / "run", tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # the job's own shell lines: SIGTERM goes to bash (the container's PID 1), as HF Jobs send it
    script = "\n".join(["set -euo pipefail", *forward_sigterm(shlex.join(_train_args(cfg, out)))])
    log = tmp_path / "job.log"
    with open(log, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(["bash", "-c", script], env=env, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.time() + 900
        while proc.poll() is None and time.time() < deadline:
            if "checkpoints/checkpoint-2/trainer_state.json" in _branch_files(hub_server):
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.2)
        rc = proc.wait(timeout=900)
    text = log.read_text(encoding="utf-8")
    assert rc == TERMINATED_EXIT, text[-3000:]
    assert "SIGTERM" in text and "Traceback" not in text
    step = pushed_checkpoint(OUT).step
    assert 2 < step < 6, text[-3000:]  # the checkpoint of the step SIGTERM interrupted, pushed before exiting
    assert [p for p in _branch_files(hub_server) if p.startswith("checkpoints/checkpoint-")] and all(
        p.startswith(f"checkpoints/checkpoint-{step}/") for p in _branch_files(hub_server) if "/checkpoint-" in p)
    assert not RunDir(out).is_finished()  # interrupted, not finished: `hf-ita push` would not run
    state = json.loads(_branch_files(hub_server)[f"checkpoints/checkpoint-{step}/trainer_state.json"])
    before = [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]
    assert [s for s, _ in before] == list(range(1, step + 1))

    proc = subprocess.run(_train_args(cfg, resumed, "--resume-from-hub", OUT), env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"hf-ita: resuming from checkpoint-{step}" in proc.stdout
    metrics = json.loads(RunDir(resumed).metrics_path.read_text(encoding="utf-8"))
    assert metrics["train"]["steps"] == 6 and metrics["train"]["resumed"]
    history = [(h["step"], h["loss"]) for h in metrics["loss_history"] if "loss" in h]
    assert history[:step] == before and [s for s, _ in history] == list(range(1, 7))  # continued, not restarted
    assert pushed_checkpoint(OUT).step == 6
    _no_token_in(mario, [text, proc.stdout, proc.stderr], [out, resumed])


def test_cli_launch_caps_the_timeout_of_a_browser_login(jobs_hub, hub_endpoint, monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants
    from huggingface_hub.utils._auth import _save_token

    token = "hf_oauth_mario_expiring"
    hub_endpoint.server.add_named_token(token, "mario")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_ITA_PACKAGE_SPEC", "hf-ita-plugin")
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    (tmp_path / "token").write_text(token, encoding="utf-8")
    _save_token(token, "oauth-mario", expires_at=int(time.time()) + 2 * 3600)  # `hf auth login` in a browser
    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: smollm2-135m-cpu\n", encoding="utf-8")
    assert cli_main(["launch", str(cfg), "--repo", OUT, "--flavor", "t4-small", "--dry-run"]) == 0
    captured = capsys.readouterr()
    spec = json.loads(captured.out)
    assert spec["timeout"] in ("104m", "105m") and "timeout capped to 1 h 4" in captured.err
    assert "timeout ridotto a 1 h 4" in captured.err and token not in captured.out + captured.err
