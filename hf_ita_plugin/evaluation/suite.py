"""The Italian evaluation suite: what ``hf-ita eval`` measures, for one model or base vs fine-tune.

Tasks (``--tasks``, comma-separated):

- ``bpb``: held-out bits per byte on Italian prose (tokenizer-independent, see
  :func:`hf_ita_plugin.evaluation.metrics.bits_per_byte`);
- ``responses``: response loss on the held-out Italian conversations
  (:func:`hf_ita_plugin.evaluation.metrics.response_loss`);
- ``italian-rate``: the model answers Italian prompts; the share of answers identified as Italian
  (py3langid, code removed) and their distinct-1/distinct-2 (lexical diversity);
- ``lm-eval:TASK``: a task of lm-evaluation-harness (``arc_it``, ``hellaswag_it``, ``m_mmlu_it``
  are the Open Italian LLM Leaderboard's), run as a subprocess when lm-eval and the task's data
  are available, otherwise a clear :class:`~hf_ita_plugin.errors.EvaluationError` saying what is
  missing.

:func:`run_eval` on a training OUTPUT_DIR evaluates the base model (adapter disabled) and the
fine-tune (adapter enabled) with the same tokenizer, prompts and settings, updates the ``eval``
section of ``OUTPUT_DIR/metrics.json`` and writes the comparison table to ``OUTPUT_DIR/eval.md``.
This module orchestrates; the measurements live in :mod:`.metrics`, :mod:`.quality` and
:mod:`.lm_eval`, the comparison in :mod:`.compare`, the model loading in :mod:`.target`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ..utils import atomic
from ..errors import ConfigError, EvaluationError, bilingual
from ..rundir import RunDir, RunMetrics
from .compare import comparison_table, relative_change
from .lm_eval import ITALIAN_LM_EVAL_TASKS, check_lm_eval, run_lm_eval
from .metrics import heldout_metrics
from .quality import generate_answers, italian_prompts, response_quality
from .target import EvalTarget, load_target

__all__ = ["DEFAULT_TASKS", "EvalTarget", "evaluate_model", "generate_answers", "load_target", "parse_tasks",
           "resolve_target", "run_eval"]

DEFAULT_TASKS = ("bpb", "responses", "italian-rate")


def parse_tasks(spec: str | Sequence[str] | None) -> list[str]:
    """``"bpb,lm-eval:arc_it"`` -> ``["bpb", "lm-eval:arc_it"]``, each checked."""
    items = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else (spec or DEFAULT_TASKS)) if t.strip()]
    for item in items:
        if item not in DEFAULT_TASKS and not (item.startswith("lm-eval:") and len(item) > len("lm-eval:")):
            raise EvaluationError(bilingual(f"task di valutazione sconosciuto {item!r}", f"unknown evaluation task {item!r}"),
                                  hint=f"tasks: {', '.join(DEFAULT_TASKS)}, lm-eval:TASK (e.g. "
                                       + ", ".join(f"lm-eval:{t}" for t in ITALIAN_LM_EVAL_TASKS) + ")")
    if not items:
        raise EvaluationError(bilingual("nessun task di valutazione indicato", "no evaluation task given"), hint=f"e.g. --tasks {','.join(DEFAULT_TASKS)}")
    return items


def resolve_target(model_or_output_dir: str) -> EvalTarget:
    """Understand ``hf-ita eval``'s argument: a training OUTPUT_DIR, an adapter dir, ``embedded``, a model."""
    from ..models.embedded import EMBEDDED_HUB_ID, embedded_for_hub_id, embedded_model, ensure_embedded_model

    def base_of(name: str | None, local: str | None = None) -> tuple[str, str]:
        if local and Path(local).is_dir():
            return local, name or local
        embedded = embedded_for_hub_id(name or EMBEDDED_HUB_ID)
        if embedded is not None:
            return str(ensure_embedded_model(embedded.key, verbose=False)), embedded.hub_id
        return name, name

    if model_or_output_dir == "embedded" or model_or_output_dir.startswith("embedded:"):
        key = model_or_output_dir.partition(":")[2] or None
        path, ident = base_of(embedded_model(key).hub_id)
        return EvalTarget(path, ident)
    path = Path(model_or_output_dir).expanduser()
    run = RunDir(path)
    if run.has_adapter():
        metrics = _read_metrics(run)
        system_prompt = "default"
        name = metrics.base_model
        if run.config_path.is_file():
            cfg = _as_evaluation_error(run.read_config)
            name = name or (cfg.get("model") or {}).get("name_or_path")
            system_prompt = (cfg.get("data") or {}).get("system_prompt", "default")
        base_path, base_id = base_of(name, metrics.base_model_path)
        return EvalTarget(base_path, base_id, run.adapter_dir, path, str(run.adapter_dir), system_prompt)
    if (path / RunDir.ADAPTER_CONFIG).is_file():
        config = _read_json(path / RunDir.ADAPTER_CONFIG)
        base_path, base_id = base_of(config.get("base_model_name_or_path"))
        return EvalTarget(base_path, base_id, path, None, str(path))
    if path.is_dir():
        return EvalTarget(str(path), model_or_output_dir)
    looks_local = model_or_output_dir.startswith(("/", ".", "~")) or model_or_output_dir.count("/") != 1
    if not looks_local:  # a Hub id: org/name
        return EvalTarget(model_or_output_dir, model_or_output_dir)
    raise EvaluationError(bilingual("non è una cartella di output del training, un adapter, una cartella di modello o un id Hub",
                                    "not a training output directory, an adapter, a model directory or a Hub id",
                                    where=model_or_output_dir),
                          hint="pass OUTPUT_DIR of hf-ita train, an adapter folder, 'embedded' (or 'embedded:gemma-3-270m') "
                               "or a model id")


def _as_evaluation_error(read):
    """``read()``, with a malformed run file reported as an :class:`EvaluationError` (``hf-ita eval``'s error)."""
    try:
        return read()
    except ConfigError as exc:
        raise EvaluationError(exc.message, hint=exc.hint) from None


def _read_metrics(run: RunDir) -> RunMetrics:
    """The run's metrics (empty when it has no ``metrics.json``)."""
    return _as_evaluation_error(run.read_metrics) or RunMetrics.from_dict({})


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvaluationError(bilingual(f"JSON non valido alla riga {exc.lineno}", f"not valid JSON ({exc.msg} at line {exc.lineno})",
                                        where=path)) from None
    return data if isinstance(data, dict) else {}


def evaluate_model(model, tokenizer, tasks: Sequence[str], *, system_prompt: str | None = "default",
                   bpb_text: str | None = None, bpb_max_chars: int | None = None, max_length: int = 512,
                   prompts: int = 16, max_new_tokens: int = 96, do_sample: bool = False, progress: bool = True,
                   heldout_limit: int | None = None, label: str = "") -> tuple[dict[str, float], dict[str, Any]]:
    """Run the in-process tasks on one model; returns ``(metrics, details)``.

    ``bpb`` and ``responses`` go through :func:`~hf_ita_plugin.evaluation.metrics.heldout_metrics`,
    as the recipe's before/after evaluation does; ``responses`` scores the bundled held-out
    conversations (the first ``heldout_limit``) rendered with ``system_prompt``.
    """
    examples = None
    if "responses" in tasks:
        from ..data import load_conversations
        from ..templates import tokenize_conversation, with_system_prompt

        examples = [tokenize_conversation(tokenizer, with_system_prompt(c, system_prompt), max_length=max_length)
                    for c in load_conversations("bundled-heldout", limit=heldout_limit)]
    metrics, details = heldout_metrics(model, tokenizer, bpb_text=(bpb_text or "bundled") if "bpb" in tasks else None,
                                       bpb_max_chars=bpb_max_chars, examples=examples, max_length=max_length,
                                       progress=progress, label=label)
    if "italian-rate" in tasks:
        quality = response_quality(model, tokenizer, italian_prompts(prompts), system_prompt=system_prompt,
                                   max_new_tokens=max_new_tokens, do_sample=do_sample, progress=progress)
        metrics.update(quality.metrics())
        details["responses"] = {"languages": quality.languages, "samples": quality.samples, "n_answers": quality.n_answers}
    return metrics, details


def run_eval(model_or_output_dir: str, tasks: str | Sequence[str] | None = None, *, out: str | os.PathLike | None = None,
             lm_eval_options: dict[str, Any] | None = None, progress: bool = True, **eval_kwargs) -> dict[str, Any]:
    """Evaluate a model, or a training OUTPUT_DIR's base vs fine-tune, on ``tasks``.

    With an OUTPUT_DIR the ``eval`` section of its ``metrics.json`` gets the new numbers (before =
    base, after = fine-tune, change) and ``eval.md`` the comparison table. ``out`` writes the
    returned dict as JSON as well. ``eval_kwargs`` go to :func:`evaluate_model` (``prompts``,
    ``max_new_tokens``, ``bpb_max_chars``...); ``lm_eval_options`` to :func:`run_lm_eval`.
    """
    task_list = parse_tasks(tasks)
    target = resolve_target(model_or_output_dir)
    local = [t for t in task_list if not t.startswith("lm-eval:")]
    harness = [t.split(":", 1)[1] for t in task_list if t.startswith("lm-eval:")]
    if harness:  # fail fast, before loading any model
        check_lm_eval(harness, python=(lm_eval_options or {}).get("python"), env=(lm_eval_options or {}).get("env"))
    eval_kwargs.setdefault("system_prompt", target.system_prompt)
    result: dict[str, Any] = {"model": target.base_id, "tasks": task_list}
    model, tokenizer = load_target(target) if local else (None, None)
    compare = target.adapter_dir is not None
    if compare:
        if local:
            with model.disable_adapter():
                before, before_details = evaluate_model(model, tokenizer, local, progress=progress, label="base", **eval_kwargs)
            after, after_details = evaluate_model(model, tokenizer, local, progress=progress, label="fine-tune", **eval_kwargs)
        else:
            before, after, before_details, after_details = {}, {}, {}, {}
        for task in harness:
            opts = {**(lm_eval_options or {}), "check": False}
            for metrics, adapter in ((before, None), (after, str(target.adapter_dir))):
                scores = run_lm_eval(target.base_path, [task], adapter=adapter, **opts)[task]
                metrics.update({f"{task}_{k}": round(v, 5) for k, v in scores.items()})
        result.update({"before": before, "after": after, "change": relative_change(before, after),
                       "details": {"before": before_details, "after": after_details},
                       "table": comparison_table(before, after)})
    else:
        metrics, details = evaluate_model(model, tokenizer, local, progress=progress, **eval_kwargs) if local else ({}, {})
        for task in harness:
            scores = run_lm_eval(target.base_path, [task], **{**(lm_eval_options or {}), "check": False})[task]
            metrics.update({f"{task}_{k}": round(v, 5) for k, v in scores.items()})
        result.update({"metrics": metrics, "details": details})
    if target.output_dir is not None:
        _update_run_metrics(target.output_dir, result)
    if out:
        atomic.write_json(out, result)
    return result


def _update_run_metrics(output_dir: Path, result: dict[str, Any]) -> None:
    run = RunDir(output_dir)
    metrics = _read_metrics(run)
    section = metrics.eval
    section.before.update(result["before"])
    section.after.update(result["after"])
    section.change = relative_change(section.before, section.after)
    section.extra["suite"] = {"tasks": result["tasks"], "details": result["details"]}
    run.write_metrics(metrics)
    atomic.write_text(run.eval_report_path, "# Valutazione / Evaluation: base vs fine-tune\n\n"
                      + comparison_table(section.before, section.after))

