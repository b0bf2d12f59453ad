"""What every benchmark result carries, and where it is written.

``save_result(name, result)`` writes ``bench/results/NAME.json`` (committed: every README figure is
traced to one of these files) with the commit it measured, whether the tree had uncommitted
changes, the machine (CPU model and flags, cores, torch) and the load average before and after.
``bench/readme_table.py`` turns the files into the README's table.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def environment(load_before: list[float] | None = None) -> dict:
    """Commit, dirty flag, machine description and load averages (``load_before`` from :func:`load_now`)."""
    from hf_ita_plugin.utils.hardware import describe

    machine = describe()
    return {"commit": _git("rev-parse", "HEAD") or None, "dirty": bool(_git("status", "--porcelain", "--", "hf_ita_plugin", "bench")),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine,
            "load_before": load_before, "load_after": machine.get("load_average")}


def load_now() -> list[float] | None:
    """The 1/5/15-minute load averages now (record them before a measurement starts)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def save_result(name: str, result: dict, *, load_before: list[float] | None = None) -> Path:
    """Write ``bench/results/NAME.json`` with :func:`environment` added under ``"environment"``."""
    from hf_ita_plugin.utils.atomic import write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**result, "environment": environment(load_before)}
    return write_json(RESULTS / f"{name}.json", payload)


def publish(name: str, report: dict, print_table, *, load_before: list[float] | None = None,
            results_dir: str | None = None) -> Path:
    """Save ``report`` as ``NAME.json`` (in ``results_dir`` when given), then print its JSON line (without
    the per-run details) and its table (``print_table(report)``); returns the path written."""
    import sys

    global RESULTS
    if results_dir:
        RESULTS = Path(results_dir)
    path = save_result(name, report, load_before=load_before)
    print(f"results: {path}", file=sys.stderr)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}))
    print_table(report)
    return path


def read_results() -> dict[str, dict]:
    """Every committed result by name."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS.glob("*.json"))}
