"""Benchmarks for the ItalianSFT recipe (issue 2). Not a test: prints a JSON line and a table.

1. ``throughput``: trained (non-pad) tokens per second of the recipe's padding-free batches
   against a plain TRL SFTTrainer baseline that pads every batch to its longest sequence. Same
   model (embedded SmolLM2-135M, QLoRA NF4), same pre-tokenized data and masks, same LoRA, same
   steps and seed; runs alternate and the medians are compared.
2. ``quickstart``: `hf-ita quickstart` end to end (wall time on this machine) and its held-out
   figures: response loss on the 80 held-out conversations (target: -10% or better) and bits per
   byte on the held-out prose (target: not worse).

Usage::

    python bench/bench_recipe.py                 # both
    python bench/bench_recipe.py --only throughput --repeats 3 --steps 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def run_throughput(repeats: int, steps: int, batch: int, seq: int) -> dict:
    import torch

    from hf_ita_plugin.config import RunConfig
    from hf_ita_plugin.recipe import ItalianSFT

    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, list[dict]] = {"recipe": [], "baseline": []}
    for rep in range(repeats):
        for variant in ("baseline", "recipe") if rep % 2 else ("recipe", "baseline"):
            with tempfile.TemporaryDirectory() as tmp:
                batching = "padding_free" if variant == "recipe" else "padded"
                cfg = RunConfig.from_preset("smollm2-135m-cpu", [
                    f"training.output_dir={tmp}/out", f"training.max_steps={steps}",
                    f"training.per_device_batch_size={batch}", f"training.max_seq_length={seq}",
                    f"training.batching={batching}", "training.logging_steps=1", "training.save_steps=100000",
                    "data.eval=null", f"data.max_train_examples={steps * batch}",
                ])
                recipe = ItalianSFT(cfg)
                tokenizer = recipe.load_tokenizer()
                data = recipe.prepare_data(tokenizer)
                model = recipe.load_model()
                trainer = recipe._build_trainer(model, tokenizer, data, Path(tmp) / "ckpt")
                out = trainer.train()
                hist = trainer.state.log_history
                tokens = max(h.get("num_tokens", 0) for h in hist)
                losses = [h["loss"] for h in hist if "loss" in h]
                runtime = out.metrics["train_runtime"]
                row = {"tokens": tokens, "runtime_s": runtime, "tokens_per_s": tokens / runtime,
                       "mean_loss": out.training_loss, "last_loss": losses[-1] if losses else None}
                results[variant].append(row)
                print(f"[throughput] rep {rep} {variant:8s} {row['tokens_per_s']:.1f} tok/s "
                      f"({tokens} tokens in {runtime:.1f} s), mean loss {row['mean_loss']:.4f}", file=sys.stderr)
                del trainer, model
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in results.items()}
    loss = {k: statistics.median(r["mean_loss"] for r in v) for k, v in results.items()}
    return {
        "steps": steps, "batch": batch, "max_seq_length": seq, "repeats": repeats,
        "recipe_tokens_per_s": round(med["recipe"], 2), "baseline_tokens_per_s": round(med["baseline"], 2),
        "speedup": round(med["recipe"] / med["baseline"], 3),
        "recipe_mean_loss": round(loss["recipe"], 4), "baseline_mean_loss": round(loss["baseline"], 4),
        "loss_rel_diff": round(abs(loss["recipe"] - loss["baseline"]) / loss["baseline"], 4),
        "runs": results,
    }


def run_quickstart(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quickstart"
        cmd = [sys.executable, "-m", "hf_ita_plugin.cli", "quickstart", "--output-dir", str(out)]
        for item in extra:
            cmd += ["--set", item]
        started = time.time()
        subprocess.run(cmd, check=True)
        wall = time.time() - started
        metrics = json.loads((out / "metrics.json").read_text())
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
        rows += [("throughput: recipe (padding-free) tok/s", t["recipe_tokens_per_s"]),
                 ("throughput: TRL padded baseline tok/s", t["baseline_tokens_per_s"]),
                 ("throughput: speedup (target >= 1.5x)", f"{t['speedup']}x"),
                 ("mean train loss recipe / baseline", f"{t['recipe_mean_loss']} / {t['baseline_mean_loss']}")]
    if "quickstart" in report:
        q = report["quickstart"]
        rows += [("quickstart wall time (target < 900 s)", q["wall_time_s"]),
                 ("quickstart train tok/s", q["train_tokens_per_s"]),
                 ("held-out response loss before -> after", f"{q['response_loss_before']} -> {q['response_loss_after']} ({q['response_loss_change']:+.1%})"),
                 ("held-out prose bits/byte before -> after", f"{q['bpb_before']} -> {q['bpb_after']} ({q['bpb_change']:+.1%})")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["throughput", "quickstart"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=384)
    parser.add_argument("--set", dest="quickstart_overrides", action="append", default=[])
    args = parser.parse_args()
    report: dict = {"bench": "recipe"}
    if args.only in (None, "throughput"):
        report["throughput"] = run_throughput(args.repeats, args.steps, args.batch, args.seq)
    if args.only in (None, "quickstart"):
        report["quickstart"] = run_quickstart(args.quickstart_overrides)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"recipe-{args.only}.json" if args.only else "recipe.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: ({kk: vv for kk, vv in v.items() if kk != "runs"} if isinstance(v, dict) else v) for k, v in report.items()}
    print(json.dumps(summary))
    print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
