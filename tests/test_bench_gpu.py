"""bench/bench_gpu.py --toy: the GPU benchmark's whole pipeline at toy shapes on CPU (fresh process per variant)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bench_gpu.py"
VARIANTS = {"recipe", "recipe-padded", "trl", "trl-padding-free"}


@pytest.mark.slow
def test_toy_run_prints_a_json_line_and_writes_the_result(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(SCRIPT), "--toy", "--steps", "3", "--warmup", "1",
                           "--results-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[gpu] plan: 8 runs" in done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert "runs" not in summary and summary["bench"] == "gpu" and summary["steps"] == 3
    assert "recipe" in done.stdout.split(lines[0], 1)[1]  # the table follows the JSON line

    saved = json.loads((tmp_path / "gpu-toy.json").read_text(encoding="utf-8"))
    assert saved["environment"]["machine"] and "commit" in saved["environment"]
    assert saved["devices"] == ["cpu"]
    runs = saved["runs"]
    assert {(r["seq"], r["variant"]) for r in runs} == {(s, v) for s in (64, 128) for v in VARIANTS}
    for seq in (64, 128):
        at = [r for r in runs if r["seq"] == seq]
        assert all(r["steps"] == 3 and r["tokens_per_s"] > 0 and r["median_step_s"] > 0 for r in at), at
        # same data in the same order for every variant: same trained tokens, (nearly) the same loss
        assert len({r["trained_tokens_measured"] for r in at}) == 1
        losses = [r["mean_loss"] for r in at]
        assert max(losses) - min(losses) < 1e-2 * min(losses), losses
        assert all(r["peak_gpu_memory_mb"] is None for r in at)  # no GPU here: not measured, not invented
        entry = saved["summary"][str(seq)]
        assert entry["speedup_recipe_vs_trl"] == round(entry["recipe"]["tokens_per_s"] / entry["trl"]["tokens_per_s"], 3)
    assert not (ROOT / "bench" / "results" / "gpu-toy.json").exists()
