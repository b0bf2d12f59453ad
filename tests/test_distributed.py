"""Multi-process training: the plan checks, the launch, and a real 2-process run on CPU (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from hf_ita_plugin.cli.main import main as cli_main
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError
from hf_ita_plugin.training import distributed

REPO = Path(__file__).resolve().parents[1]


# --- checks that need no second process ------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (["distributed.strategy=fsdp", "quantization.quant_storage=uint8"], "quant_storage equal to the compute dtype"),
    (["distributed.strategy=fsdp", "quantization.compute_dtype=bfloat16", "quantization.quant_storage=float16"],
     "quant_storage equal to the compute dtype"),
    (["distributed.activation_checkpointing=true"], "applies to strategy fsdp only"),
    (["distributed.strategy=fsdp", "distributed.activation_checkpointing=true", "training.gradient_checkpointing=true"],
     "not both"),
    (["distributed.strategy=zero3"], "distributed.strategy must be one of ddp, fsdp"),
])
def test_config_refuses_combinations_that_cannot_work(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        RunConfig.from_preset("mistral-7b", overrides)
    assert "--set" in str(err.value)  # blames the override that caused it


def test_fsdp_qlora_config_is_accepted_with_storage_auto():
    cfg = RunConfig.from_preset("mistral-7b", ["distributed.strategy=fsdp", "quantization.compute_dtype=bfloat16"])
    assert distributed.quant_storage(cfg) == "bfloat16"
    assert distributed.quant_storage(RunConfig.from_preset("mistral-7b")) is None  # ddp: bitsandbytes' uint8


@pytest.mark.parametrize("overrides, processes, gpus, message", [
    (["distributed.strategy=fsdp", "evaluation.before_after=false"], 2, 0, "fsdp needs GPUs"),
    ([], 4, 2, "4 processes but this machine has 2 GPU"),
    ([], 0, 0, "at least 1"),
    ([], (os.cpu_count() or 1) + 1, 0, "CPU cores"),
    (["distributed.strategy=fsdp", "quantization.compute_dtype=bfloat16"], 2, 2, "before/after evaluation"),
])
def test_plan_checks_against_the_machine(overrides, processes, gpus, message):
    cfg = RunConfig.from_preset("smollm2-135m-cpu", overrides)
    with pytest.raises(ConfigError, match=message):
        distributed.check_plan(cfg, processes, gpus=gpus)


def test_plans_that_work():
    distributed.check_plan(RunConfig.from_preset("smollm2-135m-cpu"), 2, gpus=0)
    distributed.check_plan(RunConfig.from_preset("mistral-7b", [
        "distributed.strategy=fsdp", "evaluation.before_after=false", "quantization.compute_dtype=bfloat16"]), 4, gpus=8)


def test_global_batch_and_trainer_arguments(monkeypatch, tmp_path):
    cfg = RunConfig.from_preset("mistral-7b", ["training.per_device_batch_size=3", "training.gradient_accumulation_steps=5",
                                               "distributed.strategy=fsdp", "distributed.fsdp_sharding=shard_grad_op"])
    assert distributed.global_batch(cfg, 4) == 60
    assert "global batch 60 sequences = 3 per device x 4 process(es) x 5 gradient accumulation (fsdp)" in \
        distributed.batch_line(cfg, 4)
    assert distributed.trainer_arguments(cfg) == {}  # one process: nothing changes
    monkeypatch.setenv("WORLD_SIZE", "4")
    args = distributed.trainer_arguments(cfg)
    assert args["fsdp"] is True and args["ddp_find_unused_parameters"] is False
    fsdp = args["fsdp_config"]
    assert fsdp["version"] == 1 and fsdp["reshard_after_forward"] == "shard_grad_op"
    assert fsdp["use_orig_params"] is False and fsdp["cpu_ram_efficient_loading"] is True
    # transformers takes these arguments as they are (its own validation, CPU arguments here)
    from trl import SFTConfig

    monkeypatch.delenv("WORLD_SIZE")
    args.pop("use_cpu")
    built = SFTConfig(output_dir=str(tmp_path), bf16=False, use_cpu=True, **args)
    assert built.fsdp_config["use_orig_params"] is False and built.fsdp_config["reshard_after_forward"] == "shard_grad_op"


def test_launch_command_reruns_the_same_cli_under_accelerate():
    cmd, env = distributed.launch_command(["train", "run.yaml", "--set", "training.max_steps=3"], 2)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-6:] == ["-m", "hf_ita_plugin.cli", "train", "run.yaml", "--set", "training.max_steps=3"]
    assert env["ACCELERATE_USE_CPU"] == "true"  # this machine has no GPU: gloo


def test_cli_refuses_a_plan_before_starting_processes(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RunConfig.from_preset("smollm2-135m-cpu").to_yaml(), encoding="utf-8")
    assert cli_main(["train", str(cfg), "--num-processes", "2", "--output-dir", str(tmp_path / "out"),
                     "--set", "distributed.strategy=fsdp"]) == 2
    assert "fsdp needs GPUs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- a real 2-process run on CPU ------------------------------------------------------------------------------
TINY = ["data.max_train_examples=8", "data.max_eval_examples=3", "data.system_prompt=none",
        "training.max_seq_length=256", "evaluation.max_length=256", "training.max_steps=3", "training.save_steps=2",
        "training.logging_steps=1", "training.warmup_ratio=0.0", "evaluation.bpb_max_chars=600",
        "evaluation.answer_quality=false"]
STEP1_RTOL = 2e-3
"""Step 1 sees the same rows and the same weights: only the order of float reductions differs."""
CURVE_RTOL = 1e-2
"""Later steps start from weights that already differ by that noise (bf16 on CPUs with native bf16); measured
at most 3e-4 on an AVX512-BF16/AMX CPU. The rows (8) fill every global batch of 4: a short last batch would be
padded with repeated rows on one process (accelerate's ``even_batches``) and differ for real."""


def _sets(items):
    return [arg for item in items for arg in ("--set", item)]


def _losses(metrics: dict) -> list[float]:
    return [h["loss"] for h in metrics["loss_history"] if "loss" in h]


@pytest.fixture(scope="module")
def two_and_one(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    cfg = root / "run.yaml"
    cfg.write_text(RunConfig.from_preset("smollm2-135m-cpu").to_yaml(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    two = subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", "train", str(cfg), "--num-processes", "2",
                          "--output-dir", str(root / "two"), *_sets([*TINY, "training.per_device_batch_size=2"])],
                         env=env, capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", "train", str(cfg), "--output-dir", str(root / "one"),
                          *_sets([*TINY, "training.per_device_batch_size=4", "evaluation.before_after=false"])],
                         env=env, capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    return two.stdout, root / "two", root / "one", cfg


@pytest.mark.slow
def test_two_processes_train_and_only_the_main_one_writes(two_and_one):
    out, two, _, _ = two_and_one
    assert "global batch 4 sequences = 2 per device x 2 process(es) x 1 gradient accumulation (ddp)" in out
    assert out.count("=== hf-ita: run summary ===") == 1 and out.count("LoRA trains") == 1
    adapters = [p.parent for p in two.rglob("adapter_config.json") if "checkpoints" not in p.parts]
    assert adapters == [two / "adapter"]
    assert not [p for p in two.rglob("*") if ".hf-ita-" in p.name and p.name.endswith(".tmp")]  # no staging left
    metrics = json.loads((two / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["hardware"]["processes"] == 2 and metrics["train"]["steps"] == 3
    assert metrics["eval"]["after"]["response_loss"] < metrics["eval"]["before"]["response_loss"]  # it learned
    # each checkpoint is one folder holding every process's RNG state, so --resume restores both
    for ckpt in (two / "checkpoints").glob("checkpoint-*"):
        assert {"rng_state_0.pth", "rng_state_1.pth", "adapter_model.safetensors"} <= {p.name for p in ckpt.iterdir()}


@pytest.mark.slow
def test_adapter_has_the_format_of_a_single_process_run(two_and_one):
    _, two, one, _ = two_and_one
    assert sorted(p.name for p in (two / "adapter").iterdir()) == sorted(p.name for p in (one / "adapter").iterdir())
    configs = [json.loads((run / "adapter" / "adapter_config.json").read_text(encoding="utf-8")) for run in (two, one)]
    for config in configs:  # peft writes a set: its order follows each process's string hashing
        config["target_modules"] = sorted(config["target_modules"])
    assert configs[0] == configs[1]
    shapes = []
    for run in (two, one):
        with safe_open(str(run / "adapter" / "adapter_model.safetensors"), "pt") as f:
            shapes.append({k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()})
    assert shapes[0] == shapes[1] and shapes[0]


@pytest.mark.slow
def test_same_global_batch_gives_the_same_loss_as_one_process(two_and_one):
    _, two, one, _ = two_and_one
    m2, m1 = (json.loads((run / "metrics.json").read_text(encoding="utf-8")) for run in (two, one))
    l2, l1 = _losses(m2), _losses(m1)
    assert len(l2) == len(l1) == 3
    assert l2[0] == pytest.approx(l1[0], rel=STEP1_RTOL)
    assert l2 == pytest.approx(l1, rel=CURVE_RTOL)


@pytest.mark.slow
def test_resume_with_two_processes_continues_like_the_uninterrupted_run(two_and_one, tmp_path):
    _, two, _, cfg = two_and_one
    resumed = tmp_path / "resumed"  # an interrupted run: its last complete checkpoint only
    shutil.copytree(two / "checkpoints" / "checkpoint-2", resumed / "checkpoints" / "checkpoint-2")
    done = subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", "train", str(cfg), "--num-processes", "2",
                           "--resume", "--output-dir", str(resumed),
                           *_sets([*TINY, "training.per_device_batch_size=2", "evaluation.before_after=false"])],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("resuming from checkpoint-2") == 1
    after, uninterrupted = (json.loads((run / "metrics.json").read_text(encoding="utf-8")) for run in (resumed, two))
    assert after["train"]["steps"] == 3 and after["train"]["resumed"] is True
    assert _losses(after)[-1] == pytest.approx(_losses(uninterrupted)[-1], rel=STEP1_RTOL)


@pytest.mark.slow
def test_bench_runs_at_a_tiny_setting(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_distributed.py"), "--steps", "1", "--batch", "1",
                           "--seq", "128", "--repeats", "1", "--results-dir", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("{")]
    summary = json.loads(line)["summary"]
    assert summary["one_process"]["tokens_per_s"] > 0 and summary["two_processes"]["tokens_per_s"] > 0
    assert summary["ratio_tokens_per_s"] == round(summary["two_processes"]["tokens_per_s"]
                                                  / summary["one_process"]["tokens_per_s"], 3)
    assert "ratio tokens/s (2 / 1)" in done.stdout
    saved = json.loads((tmp_path / "distributed.json").read_text(encoding="utf-8"))
    assert [r["processes"] for r in saved["runs"]] == [1, 2] and saved["environment"]["machine"]
    assert {r["global_batch"] for r in saved["runs"]} == {2}
