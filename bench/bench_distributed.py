"""Benchmark: 2 training processes (accelerate, gloo) against 1 on CPU, same global batch (issue 15).

Not a test: prints a JSON line and a table, and writes ``bench/results/distributed.json``
(:func:`common.save_result`). Both sides run ``hf-ita train`` in fresh processes on the embedded
SmolLM2-135M (QLoRA NF4), same rows in the same order, same global batch: 1 process x B*2 against
2 processes (``--num-processes 2``) x B; order alternating over ``--repeats``; medians compared.
Measured: trained tokens per second (the trainer's own count over its train runtime), wall time of
the whole command (launch, load, train, write), final train loss and the per-step loss difference.
On 2 cores expect about 1x: the point is a correct figure, not a speedup.

Usage::

    python bench/bench_distributed.py                       # 8 steps, global batch 8 x 256 tokens, 2 repeats
    python bench/bench_distributed.py --steps 2 --batch 1 --seq 128 --repeats 1 --results-dir /tmp/r   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def measure(processes: int, steps: int, batch: int, seq: int) -> dict:
    """One fresh ``hf-ita train`` with ``processes`` processes x ``batch`` per device (global batch = 2 x ``batch``)."""
    per_device = batch * 2 // processes
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "run.yaml"
        cfg.write_text("preset: smollm2-135m-cpu\n", encoding="utf-8")
        sets = [f"training.max_steps={steps}", f"training.per_device_batch_size={per_device}",
                f"training.max_seq_length={seq}", f"data.max_train_examples={steps * batch * 2}",
                "data.eval=null", "data.system_prompt=none", "evaluation.before_after=false",
                "evaluation.bpb_text=null", "training.save_steps=100000", "training.logging_steps=1",
                "training.warmup_ratio=0.0"]
        cmd = [sys.executable, "-m", "hf_ita_plugin.cli", "train", str(cfg), "--output-dir", f"{tmp}/out",
               *[a for s in sets for a in ("--set", s)], *(["--num-processes", str(processes)] if processes > 1 else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"[distributed] {processes} process(es) failed:\n{done.stderr[-3000:]}")
        metrics = json.loads((Path(tmp) / "out" / "metrics.json").read_text(encoding="utf-8"))
    train = metrics["train"]
    return {"processes": processes, "per_device_batch": per_device, "global_batch": batch * 2, "steps": train["steps"],
            "trained_tokens": train["trained_tokens"], "tokens_per_s": train["tokens_per_second"],
            "train_runtime_s": train["train_runtime_s"], "wall_s": round(wall, 2), "final_loss": train["final_loss"],
            "losses": [h["loss"] for h in metrics["loss_history"] if "loss" in h]}


def summarize(runs: list[dict]) -> dict:
    def median(processes: int, key: str) -> float:
        return round(statistics.median(r[key] for r in runs if r["processes"] == processes), 3)

    one = {k: median(1, k) for k in ("tokens_per_s", "train_runtime_s", "wall_s", "final_loss")}
    two = {k: median(2, k) for k in ("tokens_per_s", "train_runtime_s", "wall_s", "final_loss")}
    pairs = [(a, b) for a in runs if a["processes"] == 1 for b in runs if b["processes"] == 2][:1]
    step_diff = max((abs(x - y) / abs(x) for a, b in pairs for x, y in zip(a["losses"], b["losses"])), default=None)
    return {"one_process": one, "two_processes": two,
            "ratio_tokens_per_s": round(two["tokens_per_s"] / one["tokens_per_s"], 3),
            "ratio_wall": round(two["wall_s"] / one["wall_s"], 3),
            "max_step_loss_rel_diff": None if step_diff is None else round(step_diff, 5)}


def print_table(report: dict) -> None:
    s = report["summary"]
    rows = [("global batch (sequences x tokens)", f"{report['global_batch']} x {report['seq']}"),
            ("steps / repeats", f"{report['steps']} / {report['repeats']}"),
            ("tokens/s 1 process -> 2 processes", f"{s['one_process']['tokens_per_s']} -> {s['two_processes']['tokens_per_s']}"),
            ("ratio tokens/s (2 / 1)", f"{s['ratio_tokens_per_s']}x"),
            ("wall s 1 process -> 2 processes", f"{s['one_process']['wall_s']} -> {s['two_processes']['wall_s']}"),
            ("ratio wall (2 / 1)", f"{s['ratio_wall']}x"),
            ("final loss 1 process / 2 processes", f"{s['one_process']['final_loss']} / {s['two_processes']['final_loss']}"),
            ("max per-step loss difference", s["max_step_loss_rel_diff"])]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4, help="per-device batch of the 2-process run (global: 2x)")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results-dir", help="write the result here instead of bench/results")
    args = parser.parse_args()
    load_before = common.load_now()
    runs = []
    for i in range(args.repeats):
        for processes in ((1, 2) if i % 2 == 0 else (2, 1)):
            print(f"[distributed] repeat {i + 1}/{args.repeats}: {processes} process(es)", file=sys.stderr, flush=True)
            runs.append(measure(processes, args.steps, args.batch, args.seq))
    report = {"bench": "distributed", "steps": args.steps, "global_batch": args.batch * 2, "seq": args.seq,
              "repeats": args.repeats, "summary": summarize(runs), "runs": runs}
    common.publish("distributed", report, print_table, load_before=load_before, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
