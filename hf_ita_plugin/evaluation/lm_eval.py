"""The lm-evaluation-harness bridge: ``lm-eval:TASK`` tasks run as a subprocess.

lm-eval pins its own dependencies and may live in another environment (``python=``):
:func:`check_lm_eval` says clearly what is missing (the package, a task's data) before any model
is loaded, :func:`lm_eval_command` builds the ``lm_eval run`` command line, :func:`run_lm_eval`
runs it and :func:`parse_lm_eval_results` reads the scores it wrote. ``arc_it``,
``hellaswag_it`` and ``m_mmlu_it`` (:data:`ITALIAN_LM_EVAL_TASKS`) are the Open Italian LLM
Leaderboard's tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import EvaluationError, bilingual

ITALIAN_LM_EVAL_TASKS = {
    # task -> (Hub dataset, config) it downloads; the Open Italian LLM Leaderboard's tasks
    "arc_it": ("alexandrainst/m_arc", "it"),
    "hellaswag_it": ("alexandrainst/m_hellaswag", "it"),
    "m_mmlu_it": ("alexandrainst/m_mmlu", "it"),
}


@dataclass
class LmEvalRun:
    """An lm-evaluation-harness invocation."""

    argv: list[str]
    output_path: Path
    tasks: list[str]
    env: dict[str, str] = field(default_factory=dict)


def lm_eval_command(model_path: str, tasks: Sequence[str], output_path: str | os.PathLike, *, adapter: str | None = None,
                    python: str | None = None, device: str = "cpu", dtype: str = "float32", batch_size: str | int = 1,
                    limit: float | None = None, num_fewshot: int | None = None, apply_chat_template: bool = False,
                    include_path: str | None = None, trust_remote_code: bool = False) -> LmEvalRun:
    """Build the ``lm_eval run`` command line for ``model_path`` (+ a peft ``adapter``) on ``tasks``."""
    tasks = [t.strip() for t in tasks if t and t.strip()]
    if not tasks:
        raise EvaluationError(bilingual("nessun task indicato", "no task given", where="lm-eval"), hint=f"e.g. lm-eval:{next(iter(ITALIAN_LM_EVAL_TASKS))}")
    model_args = [f"pretrained={model_path}", f"dtype={dtype}"]
    if adapter:
        model_args.append(f"peft={adapter}")
    if trust_remote_code:
        model_args.append("trust_remote_code=True")
    if any("," in a.split("=", 1)[1] for a in model_args):
        raise EvaluationError(bilingual(f"il percorso del modello {model_path} contiene una virgola, che model_args di lm-eval non può contenere",
                                        f"a model path contains a comma, which lm-eval's model_args cannot carry: {model_path}",
                                        where="lm-eval"))
    argv = [python or sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", ",".join(model_args),
            "--tasks", ",".join(tasks), "--device", device, "--batch_size", str(batch_size),
            "--output_path", str(output_path)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    if num_fewshot is not None:
        argv += ["--num_fewshot", str(num_fewshot)]
    if apply_chat_template:
        argv.append("--apply_chat_template")
    if include_path:
        argv += ["--include_path", str(include_path)]
    return LmEvalRun(argv, Path(output_path), tasks)


_CHECK_SCRIPT = r"""
import importlib.util, json, sys
need = json.loads(sys.argv[1])
out = {"lm_eval": importlib.util.find_spec("lm_eval") is not None, "data": {}}
if out["lm_eval"] and need:
    import datasets
    for task, (path, name) in need.items():
        try:
            datasets.load_dataset_builder(path, name)
        except Exception as exc:
            out["data"][task] = f"{type(exc).__name__}: {str(exc)[:300]}"
print("HF_ITA_CHECK " + json.dumps(out))
"""


def check_lm_eval(tasks: Sequence[str], *, python: str | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300) -> None:
    """Raise :class:`EvaluationError` saying what is missing: the lm-eval package or a task's data.

    The check runs in the interpreter that will run lm-eval (``python``, default this one): lm-eval
    pins its own dependencies and may live in another environment.
    """
    python = python or sys.executable
    need = {t: ITALIAN_LM_EVAL_TASKS[t] for t in tasks if t in ITALIAN_LM_EVAL_TASKS}
    try:
        proc = subprocess.run([python, "-c", _CHECK_SCRIPT, json.dumps(need)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
    except FileNotFoundError:
        raise EvaluationError(bilingual(f"interprete Python non trovato: {python}", f"Python interpreter not found: {python}",
                                        where="lm-eval")) from None
    except subprocess.TimeoutExpired:
        raise EvaluationError(bilingual(f"la verifica dei dati dei task ha superato {timeout:.0f} s (rete?)",
                                        f"checking the task data took more than {timeout:.0f} s (network?)", where="lm-eval")) from None
    line = next((out for out in proc.stdout.splitlines() if out.startswith("HF_ITA_CHECK ")), None)
    if line is None:
        raise EvaluationError(bilingual(f"la verifica in {python} è fallita",
                                        f"the check in {python} failed: {proc.stderr.strip()[-300:]}", where="lm-eval"))
    result = json.loads(line[len("HF_ITA_CHECK "):])
    if not result["lm_eval"]:
        raise EvaluationError(
            bilingual(f"lm-evaluation-harness non è installato in {python}",
                      f"lm-evaluation-harness is not installed in {python}", where="lm-eval"),
            hint="pip install lm-eval  (or pass --lm-eval-python with an environment that has it)")
    if result["data"]:
        missing = "; ".join(f"{task} needs the dataset {ITALIAN_LM_EVAL_TASKS[task][0]} ({ITALIAN_LM_EVAL_TASKS[task][1]}): {err}"
                            for task, err in result["data"].items())
        raise EvaluationError(
            bilingual("i dati dei task non sono disponibili", f"the task data is not available: {missing}", where="lm-eval"),
            hint="lm-eval downloads it from the Hugging Face Hub: run where the Hub is reachable, "
                 "or fill HF_DATASETS_CACHE on a machine that is and copy it here")


def run_lm_eval(model_path: str, tasks: Sequence[str], *, adapter: str | None = None, output_dir: str | os.PathLike | None = None,
                python: str | None = None, check: bool = True, env: dict[str, str] | None = None,
                timeout: float | None = None, **command_kwargs) -> dict[str, dict[str, float]]:
    """Run lm-eval on ``tasks`` and return ``{task: {metric: value}}`` (e.g. ``{"arc_it": {"acc": 0.31}}``)."""
    tasks = list(tasks)
    if check:
        check_lm_eval(tasks, python=python, env=env)
    out_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="hf-ita-lm-eval-"))
    run = lm_eval_command(model_path, tasks, out_dir, adapter=adapter, python=python, **command_kwargs)
    proc = subprocess.run(run.argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise EvaluationError(bilingual(f"lm-eval è fallito (uscita {proc.returncode}) su {', '.join(tasks)}",
                                        f"lm-eval failed (exit {proc.returncode}) on {', '.join(tasks)}:\n{tail}"),
                              hint=f"command: {' '.join(run.argv)}")
    return parse_lm_eval_results(out_dir, tasks)


def parse_lm_eval_results(output_path: str | os.PathLike, tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """Metrics of ``tasks`` from the newest ``results_*.json`` under lm-eval's ``--output_path``."""
    files = sorted(Path(output_path).rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise EvaluationError(bilingual("lm-eval non ha scritto alcun results_*.json", "lm-eval wrote no results_*.json",
                                        where=output_path))
    results = json.loads(files[-1].read_text(encoding="utf-8")).get("results", {})
    out: dict[str, dict[str, float]] = {}
    for task in tasks:
        if task not in results:
            raise EvaluationError(bilingual(f"i risultati di lm-eval non contengono il task {task!r}",
                                            f"lm-eval results have no task {task!r} (found: {', '.join(results) or 'none'})"))
        out[task] = {key.split(",")[0]: float(value) for key, value in results[task].items()
                     if isinstance(value, (int, float)) and "stderr" not in key and key != "alias"}
    return out
