"""Benchmarks for the ItalianSFT recipe (issue 2). Not a test: prints a JSON line and a table.

1. ``throughput``: trained (non-pad) tokens per second of the recipe against a plain TRL
   SFTTrainer baseline that pads every batch to its longest sequence (TRL's defaults otherwise),
   plus the recipe's own trainer with padded batches to separate the padding-free gain from the
   CPU fixes (:mod:`hf_ita_plugin.training.patches.trl_compact_head`). Same model (embedded SmolLM2-135M, QLoRA NF4),
   same pre-tokenized data and masks, same LoRA, same steps and seed; each run in a fresh
   process, order alternating; medians compared.
2. ``quickstart``: `hf-ita quickstart` end to end (wall time on this machine) and its held-out
   figures: response loss on the 80 held-out conversations (target: -10% or better), bits per
   byte on the held-out prose (target: not worse), and what its greedy answers read like (the
   scores and the answers themselves, from the run's ``answers.json``). ``--model gemma-3-270m``
   runs the Gemma quickstart (``bench/results/recipe-quickstart-gemma-3-270m.json``).
   ``--cpu-path no-native-bf16`` runs it, on a CPU with AVX512-BF16/AMX, down the path a CPU without
   them takes: what ``auto`` picks there (fp32 compute, padded batches), torch's kernels capped
   at AVX2 (``ATEN_CPU_CAPABILITY``, oneDNN's ``ONEDNN_MAX_CPU_ISA``).

Usage::

    python bench/bench_recipe.py                 # both
    python bench/bench_recipe.py --only throughput --repeats 3 --steps 6
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_now, save_result  # noqa: E402


VARIANTS = {
    "recipe": "ItalianSFT with its defaults for this CPU (compute dtype and batching 'auto')",
    "recipe-fp32-padding-free": "ItalianSFT with fp32 compute and padding-free batches (the default on CPUs without native bf16)",
    "recipe-padded": "ItalianSFT with fp32 compute and padded batches (isolates the padding-free gain)",
    "recipe-bf16": "ItalianSFT with bf16 compute and padding-free batches, for CPUs with native bf16",
    "trl": "plain TRL SFTTrainer as a user writes it: padded batches, TRL's defaults",
}
_OVERRIDES = {  # variant -> (batching, compute dtype)
    "recipe": ("auto", "auto"),
    "recipe-fp32-padding-free": ("padding_free", "float32"),
    "recipe-padded": ("padded", "float32"),
    "recipe-bf16": ("padding_free", "bfloat16"),
    "trl": ("padded", "float32"),
}


def measure_variant(variant: str, steps: int, batch: int, seq: int) -> dict:
    """Train ``steps`` steps of one variant in this process and return its throughput and loss."""
    from hf_ita_plugin.config import RunConfig
    from hf_ita_plugin.training.patches import training_patches
    from hf_ita_plugin.training.recipe import ItalianSFT

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig.from_preset("smollm2-135m-cpu", [
            f"training.output_dir={tmp}/out", f"training.max_steps={steps}",
            f"training.per_device_batch_size={batch}", f"training.max_seq_length={seq}",
            f"training.batching={_OVERRIDES[variant][0]}",
            f"quantization.compute_dtype={_OVERRIDES[variant][1]}",
            "training.logging_steps=1", "training.save_steps=100000",
            "data.eval=null", f"data.max_train_examples={steps * batch}",
        ])
        recipe = ItalianSFT(cfg)
        tokenizer = recipe.load_tokenizer()
        data = recipe.prepare_data(tokenizer)
        model = recipe.load_model()
        if variant == "trl":
            trainer = plain_trl_trainer(cfg, model, tokenizer, data.train, Path(tmp) / "ckpt")
        else:
            trainer = recipe._build_trainer(model, tokenizer, data, Path(tmp) / "ckpt")
        with training_patches() if variant != "trl" else contextlib.nullcontext():
            out = trainer.train()
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    # trained tokens = real (non-pad) tokens, counted from the data, the same for every variant
    tokens = sum(len(e["input_ids"]) for e in data.train)
    runtime = out.metrics["train_runtime"]
    return {"variant": variant, "tokens": tokens, "runtime_s": round(runtime, 2),
            "tokens_per_s": round(tokens / runtime, 2), "mean_loss": round(out.training_loss, 5),
            "last_loss": losses[-1] if losses else None}


def plain_trl_trainer(cfg, model, tokenizer, rows, ckpt_dir):
    """SFTTrainer with the same data, LoRA model, steps and optimiser settings, otherwise TRL's defaults."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    t = cfg.training
    args = SFTConfig(output_dir=str(ckpt_dir), max_length=t.max_seq_length, per_device_train_batch_size=t.per_device_batch_size,
                     learning_rate=t.learning_rate, max_steps=t.max_steps, warmup_steps=t.warmup_ratio,
                     lr_scheduler_type=t.lr_scheduler, logging_steps=1, save_strategy="no", seed=t.seed,
                     data_seed=t.seed, report_to="none", bf16=False, gradient_checkpointing=False)
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)


def _resolved_defaults() -> dict:
    """What 'auto' resolves to on this machine (the "recipe" variant)."""
    from hf_ita_plugin.models.loader import resolve_compute_dtype
    from hf_ita_plugin.training.trainer import resolve_batching

    return {"batching": resolve_batching("auto"), "compute_dtype": str(resolve_compute_dtype("auto", training=True)).replace("torch.", "")}


def run_throughput(repeats: int, steps: int, batch: int, seq: int, cpu_path: dict | None = None) -> dict:
    """Each variant in a fresh process (the recipe's TRL fixes are process-wide), order alternating.

    ``cpu_path`` (a :data:`CPU_PATHS` entry): every process runs in its environment, and the recipe's
    defaults are the variant that matches the choices ``auto`` makes on that CPU kind."""
    from hf_ita_plugin.utils.hardware import has_native_bf16

    defaults = cpu_path["defaults_variant"] if cpu_path else "recipe"
    order = [v for v in VARIANTS if (v != "recipe-bf16" or (has_native_bf16() and not cpu_path))
             and (v != "recipe" or not cpu_path)]
    results: dict[str, list[dict]] = {v: [] for v in order}
    for rep in range(repeats):
        for variant in (order if rep % 2 == 0 else order[::-1]):
            cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(steps), "--batch", str(batch),
                   "--seq", str(seq)]
            done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **((cpu_path or {}).get("env") or {})})
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results[variant].append(row)
            print(f"[throughput] rep {rep} {variant:14s} {row['tokens_per_s']:.1f} tok/s "
                  f"({row['tokens']} tokens in {row['runtime_s']:.1f} s), mean loss {row['mean_loss']:.4f}",
                  file=sys.stderr)
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in results.items()}
    loss = {k: statistics.median(r["mean_loss"] for r in v) for k, v in results.items()}
    return {
        "steps": steps, "batch": batch, "max_seq_length": seq, "repeats": repeats,
        "variants": VARIANTS,
        **{f"{k}_tokens_per_s": round(v, 2) for k, v in med.items()},
        **{f"{k}_mean_loss": round(v, 4) for k, v in loss.items()},
        **({"recipe_tokens_per_s": round(med[defaults], 2), "recipe_mean_loss": round(loss[defaults], 4)} if cpu_path else {}),
        "speedup_vs_trl": round(med[defaults] / med["trl"], 3),
        "speedup_padding_free_only": round(med["recipe-fp32-padding-free"] / med["recipe-padded"], 3),
        "loss_rel_diff_vs_trl": round(abs(loss[defaults] - loss["trl"]) / loss["trl"], 4),
        **({"speedup_bf16_vs_fp32_compute": round(med["recipe-bf16"] / med["recipe-fp32-padding-free"], 3)}
           if "recipe-bf16" in med else {}),
        "recipe_defaults": _resolved_defaults() if not cpu_path else
        {"batching": _OVERRIDES[defaults][0], "compute_dtype": _OVERRIDES[defaults][1]},
        "runs": results,
    }


CPU_PATHS = {
    "no-native-bf16": {"env": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
                       "overrides": ["quantization.compute_dtype=float32", "training.batching=padded"],
                       "defaults_variant": "recipe-padded"},
}
"""Runs down another CPU kind's code path (``--cpu-path``): environment and the choices ``auto`` makes there."""


def run_quickstarts(extra: list[str], runs: int, model: str, env: dict | None = None) -> dict:
    """The quickstart of ``model`` ``runs`` times, each in a fresh process; medians and every run."""
    results = [run_quickstart(extra, model, env) for _ in range(runs)]
    summary = {key: statistics.median(r[key] for r in results)
               for key in ("wall_time_s", "response_loss_change", "bpb_change", "train_tokens_per_s")}
    return {**{k: v for k, v in results[0].items() if k != "answers"}, "model": model, **{f"median_{k}": round(v, 4) for k, v in summary.items()}, "runs": results,
            "targets_met_every_run": {k: all(r["targets_met"][k] for r in results) for k in results[0]["targets_met"]}}


def run_quickstart(extra: list[str], model: str, env: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quickstart"
        cmd = [sys.executable, "-m", "hf_ita_plugin.cli", "quickstart", "--model", model, "--output-dir", str(out)]
        for item in extra:
            cmd += ["--set", item]
        started = time.time()
        subprocess.run(cmd, check=True, env={**os.environ, **(env or {})})
        wall = time.time() - started
        from hf_ita_plugin.rundir import RunDir

        metrics = RunDir(out).read_metrics().to_dict()
        evaluation = RunDir(out).read_config().get("evaluation") or {}
        answers = json.loads(RunDir(out).answers_path.read_text()) if RunDir(out).answers_path.is_file() else None
    ev = metrics["eval"]
    return {
        "wall_time_s": round(wall, 1),
        "train_runtime_s": metrics["train"]["train_runtime_s"],
        "train_tokens_per_s": metrics["train"]["tokens_per_second"],
        "train_examples": metrics["data"]["train_examples"],
        "steps": metrics["train"]["steps"],
        "response_loss_before": ev["before"].get("response_loss"),
        "response_loss_after": ev["after"].get("response_loss"),
        "response_loss_change": ev["change"].get("response_loss"),
        "bpb_before": ev["before"].get("bits_per_byte"),
        "bpb_after": ev["after"].get("bits_per_byte"),
        "bpb_change": ev["change"].get("bits_per_byte"),
        "peak_rss_mb": metrics["train"]["peak_memory_mb"]["process_rss"],
        # what the answers read like (evaluation.answer_quality), with and without the system prompt
        "answer_quality": {stage: {k: v for k, v in ev[stage].items() if k.startswith(("italian_rate", "dictionary_rate",
                                                                                  "loop_rate", "echo_rate"))}
                           for stage in ("before", "after")},
        "answer_prompts": evaluation.get("answer_prompts"),
        "answers": answers,
        "base_model": metrics["base_model"],
        "targets_met": {
            "wall_under_15_min": wall < 900,
            "response_loss_drop_10pct": (ev["change"].get("response_loss") or 0) <= -0.10,
            "bpb_not_worse": (ev["change"].get("bits_per_byte") or 0) <= 0,
        },
    }


def print_table(report: dict) -> None:
    rows = []
    if "throughput" in report:
        t = report["throughput"]
        d = t.get("recipe_defaults", {})
        rows += [(f"throughput: recipe defaults ({d.get('compute_dtype')}, {d.get('batching')}) tok/s", t["recipe_tokens_per_s"]),
                 ("throughput: recipe fp32, padding-free tok/s", t["recipe-fp32-padding-free_tokens_per_s"]),
                 ("throughput: recipe fp32, padded tok/s", t["recipe-padded_tokens_per_s"]),
                 ("throughput: plain TRL SFTTrainer (padded) tok/s", t["trl_tokens_per_s"]),
                 ("speedup vs plain TRL (target >= 1.5x)", f"{t['speedup_vs_trl']}x"),
                 ("speedup from padding-free alone (fp32)", f"{t['speedup_padding_free_only']}x"),
                 *([("bf16 compute vs fp32 (native bf16 CPU)", f"{t['speedup_bf16_vs_fp32_compute']}x")]
                   if "speedup_bf16_vs_fp32_compute" in t else []),
                 ("mean train loss recipe / TRL", f"{t['recipe_mean_loss']} / {t['trl_mean_loss']}")]
    if "quickstart" in report:
        q = report["quickstart"]
        rows += [("quickstart runs (fresh processes)", len(q["runs"])),
                 ("median response loss change (target <= -10%)", f"{q['median_response_loss_change']:+.1%}"),
                 ("quickstart wall time (target < 900 s)", q["wall_time_s"]),
                 ("quickstart train tok/s", q["train_tokens_per_s"]),
                 ("held-out response loss before -> after", f"{q['response_loss_before']} -> {q['response_loss_after']} ({q['response_loss_change']:+.1%})"),
                 ("held-out prose bits/byte before -> after", f"{q['bpb_before']} -> {q['bpb_after']} ({q['bpb_change']:+.1%})")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["throughput", "quickstart"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--set", dest="quickstart_overrides", action="append", default=[])
    parser.add_argument("--quickstart-runs", type=int, default=2, help="fresh-process quickstart runs (reports each)")
    parser.add_argument("--model", default="smollm2-135m", help="the quickstart's embedded model (hf-ita quickstart --model)")
    parser.add_argument("--cpu-path", choices=sorted(CPU_PATHS), help="run the quickstart down another CPU kind's path")
    parser.add_argument("--result-name", help="bench/results/NAME.json (default: recipe, recipe-throughput or recipe-quickstart)")
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one measurement, JSON out
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure_variant(args.variant, args.steps, args.batch, args.seq)))
        return 0
    report: dict = {"bench": "recipe"}
    load_before = load_now()
    if args.only in (None, "throughput"):
        report["throughput"] = run_throughput(args.repeats, args.steps, args.batch, args.seq, CPU_PATHS.get(args.cpu_path))
        if args.cpu_path:
            report["throughput"]["cpu_path"] = {"name": args.cpu_path, **CPU_PATHS[args.cpu_path]}
    if args.only in (None, "quickstart"):
        path = CPU_PATHS.get(args.cpu_path, {})
        report["quickstart"] = run_quickstarts(args.quickstart_overrides + path.get("overrides", []), args.quickstart_runs,
                                               args.model, path.get("env"))
        if args.cpu_path:
            report["quickstart"]["cpu_path"] = {"name": args.cpu_path, **path}
    name = args.result_name or (f"recipe-{args.only}" if args.only else "recipe")
    if args.model != "smollm2-135m" and not args.result_name:
        name += f"-{args.model}"
    if args.cpu_path and not args.result_name:
        name += f"-{args.cpu_path}"
    path = save_result(name, report, load_before=load_before)
    print(f"results: {path}", file=sys.stderr)
    summary = {k: ({kk: vv for kk, vv in v.items() if kk not in ("runs", "answers")} if isinstance(v, dict) else v)
               for k, v in report.items()}
    print(json.dumps(summary))
    print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
