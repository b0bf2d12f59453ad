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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..utils import atomic
from ..errors import ConfigError, EvaluationError, ModelError
from ..rundir import RunDir, RunMetrics

DEFAULT_TASKS = ("bpb", "responses", "italian-rate")
ITALIAN_LM_EVAL_TASKS = {
    # task -> (Hub dataset, config) it downloads; the Open Italian LLM Leaderboard's tasks
    "arc_it": ("alexandrainst/m_arc", "it"),
    "hellaswag_it": ("alexandrainst/m_hellaswag", "it"),
    "m_mmlu_it": ("alexandrainst/m_mmlu", "it"),
}
LOWER_IS_BETTER = {"bits_per_byte", "response_loss"}


# ---------------------------------------------------------------------- answer quality
def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over ``texts`` (0 when there are none).

    >>> distinct_n(["il gatto dorme", "il gatto mangia"], 1)
    0.6666666666666666
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.lower().split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class ItalianRate:
    rate: float
    """Share of answers identified as Italian; answers too short to identify count as not Italian."""
    n_answers: int
    n_italian: int
    n_too_short: int
    languages: dict[str, int]


def italian_rate(answers: Sequence[str], *, min_chars: int = 20, min_italian_probability: float = 0.3) -> ItalianRate:
    """How many ``answers`` are in Italian (language of their prose, code removed)."""
    from ..data.language import identify

    if not answers:
        raise EvaluationError("italian-rate: no answers to check")
    languages: Counter = Counter()
    italian = too_short = 0
    for answer in answers:
        guess = identify(answer, min_chars=min_chars)
        verdict = guess.is_italian(min_italian_probability)
        languages[guess.language or "?"] += 1
        italian += verdict is True
        too_short += verdict is None
    return ItalianRate(italian / len(answers), len(answers), italian, too_short, dict(languages.most_common()))


def italian_prompts(limit: int | None = 16, source: str = "bundled-heldout") -> list[list[dict[str, str]]]:
    """Italian prompts: the conversations of ``source`` up to their first user turn (system kept)."""
    from ..data import load_conversations

    prompts = []
    for conv in load_conversations(source):
        first_user = next((i for i, m in enumerate(conv) if m["role"] == "user"), None)
        if first_user is not None:
            prompts.append([dict(m) for m in conv[: first_user + 1]])
    return prompts[:limit] if limit else prompts


def generate_answers(model, tokenizer, prompts: Sequence[Sequence[dict[str, str]] | str], *, max_new_tokens: int = 96,
                     do_sample: bool = False, temperature: float = 0.7, top_p: float = 0.95, seed: int = 0,
                     batch_size: int = 8, system_prompt: str | None = "default", progress: bool = True) -> list[str]:
    """The model's answers to ``prompts`` (texts or conversations), greedy or sampled, batched."""
    import torch
    from tqdm.auto import tqdm

    from ..templates import render
    from ..templates import with_system_prompt

    convs = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
    texts = [render(tokenizer, with_system_prompt(c, system_prompt), add_generation_prompt=True) for c in convs]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    answers: list[str] = []
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc="risposte / answers", disable=not progress, leave=False):
            batch = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[start : start + batch_size]]
            width = max(len(ids) for ids in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ids in enumerate(batch):  # left padding: every prompt ends where generation starts
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                attention[row, width - len(ids):] = 1
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad_id, "do_sample": do_sample}
            if do_sample:
                kwargs.update(temperature=temperature, top_p=top_p)
            with torch.no_grad():
                out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
            for row in range(len(batch)):
                answers.append(tokenizer.decode(out[row, width:], skip_special_tokens=True).strip())
    finally:
        model.train(was_training)
    return answers


@dataclass
class ResponseQuality:
    italian_rate: float
    distinct_1: float
    distinct_2: float
    n_answers: int
    mean_answer_chars: float
    languages: dict[str, int]
    samples: list[dict[str, str]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {"italian_rate": round(self.italian_rate, 4), "distinct_1": round(self.distinct_1, 4),
                "distinct_2": round(self.distinct_2, 4), "answer_chars_mean": round(self.mean_answer_chars, 1)}


def response_quality(model, tokenizer, prompts=None, *, n_samples: int = 3, **generate_kwargs) -> ResponseQuality:
    """Generate answers to Italian prompts and measure Italian-rate and distinct-1/2."""
    prompts = prompts if prompts is not None else italian_prompts()
    answers = generate_answers(model, tokenizer, prompts, **generate_kwargs)
    rate = italian_rate(answers)
    samples = [{"prompt": (p if isinstance(p, str) else p[-1]["content"]), "answer": a}
               for p, a in list(zip(prompts, answers))[:n_samples]]
    return ResponseQuality(rate.rate, distinct_n(answers, 1), distinct_n(answers, 2), len(answers),
                           sum(map(len, answers)) / len(answers), rate.languages, samples)


# ---------------------------------------------------------------------- lm-evaluation-harness bridge
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
        raise EvaluationError("lm-eval: no task given", hint=f"e.g. lm-eval:{next(iter(ITALIAN_LM_EVAL_TASKS))}")
    model_args = [f"pretrained={model_path}", f"dtype={dtype}"]
    if adapter:
        model_args.append(f"peft={adapter}")
    if trust_remote_code:
        model_args.append("trust_remote_code=True")
    if any("," in a.split("=", 1)[1] for a in model_args):
        raise EvaluationError(f"lm-eval: a model path contains a comma, which lm-eval's model_args cannot carry: {model_path}")
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
        raise EvaluationError(f"lm-eval: Python interpreter not found: {python}") from None
    except subprocess.TimeoutExpired:
        raise EvaluationError(f"lm-eval: checking the task data took more than {timeout:.0f} s (network?)") from None
    line = next((out for out in proc.stdout.splitlines() if out.startswith("HF_ITA_CHECK ")), None)
    if line is None:
        raise EvaluationError(f"lm-eval: the check in {python} failed: {proc.stderr.strip()[-300:]}")
    result = json.loads(line[len("HF_ITA_CHECK "):])
    if not result["lm_eval"]:
        raise EvaluationError(
            f"lm-eval: lm-evaluation-harness is not installed in {python} / lm-evaluation-harness non è installato",
            hint="pip install lm-eval  (or pass --lm-eval-python with an environment that has it)")
    if result["data"]:
        missing = "; ".join(f"{task} needs the dataset {ITALIAN_LM_EVAL_TASKS[task][0]} ({ITALIAN_LM_EVAL_TASKS[task][1]}): {err}"
                            for task, err in result["data"].items())
        raise EvaluationError(
            f"lm-eval: the task data is not available / i dati dei task non sono disponibili: {missing}",
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
        raise EvaluationError(f"lm-eval failed (exit {proc.returncode}) on {', '.join(tasks)}:\n{tail}",
                              hint=f"command: {' '.join(run.argv)}")
    return parse_lm_eval_results(out_dir, tasks)


def parse_lm_eval_results(output_path: str | os.PathLike, tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """Metrics of ``tasks`` from the newest ``results_*.json`` under lm-eval's ``--output_path``."""
    files = sorted(Path(output_path).rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise EvaluationError(f"lm-eval wrote no results_*.json under {output_path}")
    results = json.loads(files[-1].read_text(encoding="utf-8")).get("results", {})
    out: dict[str, dict[str, float]] = {}
    for task in tasks:
        if task not in results:
            raise EvaluationError(f"lm-eval results have no task {task!r} (found: {', '.join(results) or 'none'})")
        out[task] = {key.split(",")[0]: float(value) for key, value in results[task].items()
                     if isinstance(value, (int, float)) and "stderr" not in key and key != "alias"}
    return out


# ---------------------------------------------------------------------- whole runs
@dataclass
class EvalTarget:
    """What :func:`run_eval` evaluates: a base model, optionally a fine-tune adapter on it."""

    base_path: str
    base_id: str
    adapter_dir: Path | None = None
    output_dir: Path | None = None
    """A training OUTPUT_DIR (results go into its metrics.json)."""
    tokenizer_path: str | None = None
    system_prompt: str | None = "default"


def parse_tasks(spec: str | Sequence[str] | None) -> list[str]:
    """``"bpb,lm-eval:arc_it"`` -> ``["bpb", "lm-eval:arc_it"]``, each checked."""
    items = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else (spec or DEFAULT_TASKS)) if t.strip()]
    for item in items:
        if item not in DEFAULT_TASKS and not (item.startswith("lm-eval:") and len(item) > len("lm-eval:")):
            raise EvaluationError(f"unknown evaluation task {item!r}",
                                  hint=f"tasks: {', '.join(DEFAULT_TASKS)}, lm-eval:TASK (e.g. "
                                       + ", ".join(f"lm-eval:{t}" for t in ITALIAN_LM_EVAL_TASKS) + ")")
    if not items:
        raise EvaluationError("no evaluation task given", hint=f"e.g. --tasks {','.join(DEFAULT_TASKS)}")
    return items


def resolve_target(model_or_output_dir: str) -> EvalTarget:
    """Understand ``hf-ita eval``'s argument: a training OUTPUT_DIR, an adapter dir, ``embedded``, a model."""
    from ..models.embedded import EMBEDDED_HUB_ID, ensure_embedded_model

    def base_of(name: str | None, local: str | None = None) -> tuple[str, str]:
        if local and Path(local).is_dir():
            return local, name or local
        if name in (None, EMBEDDED_HUB_ID):
            return str(ensure_embedded_model(verbose=False)), EMBEDDED_HUB_ID
        return name, name

    if model_or_output_dir == "embedded":
        path, ident = base_of(None)
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
    raise EvaluationError(f"{model_or_output_dir}: not a training output directory, an adapter, a model directory or a Hub id",
                          hint="pass OUTPUT_DIR of hf-ita train, an adapter folder, 'embedded' or a model id")


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
        raise EvaluationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return data if isinstance(data, dict) else {}


def load_target(target: EvalTarget):
    """``(model, tokenizer)``: the base model (float32), wrapped with the adapter if there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path or target.base_path)
        model = AutoModelForCausalLM.from_pretrained(target.base_path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot load {target.base_path!r} for evaluation: {first}") from None
    if torch.cuda.is_available():
        model = model.to("cuda")
    if target.adapter_dir is not None:
        from peft import PeftModel

        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, str(target.adapter_dir))
    if not getattr(tokenizer, "chat_template", None):
        from ..templates import apply_template

        tokenizer = apply_template(tokenizer, "chatml")
    return model.eval(), tokenizer


def evaluate_model(model, tokenizer, tasks: Sequence[str], *, system_prompt: str | None = "default",
                   bpb_text: str | None = None, bpb_max_chars: int | None = None, max_length: int = 512,
                   prompts: int = 16, max_new_tokens: int = 96, do_sample: bool = False, progress: bool = True,
                   heldout_limit: int | None = None, label: str = "") -> tuple[dict[str, float], dict[str, Any]]:
    """Run the in-process tasks on one model; returns ``(metrics, details)``."""
    from .metrics import bits_per_byte, response_loss
    from ..training.recipe import load_bpb_text

    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    suffix = f" ({label})" if label else ""
    if "bpb" in tasks:
        text = load_bpb_text(bpb_text or "bundled", bpb_max_chars)
        bpb = bits_per_byte(model, tokenizer, text, max_length=max_length, progress=progress, desc=f"bits/byte{suffix}")
        metrics["bits_per_byte"] = round(bpb.bits_per_byte, 5)
        details["bits_per_byte"] = asdict(bpb)
    if "responses" in tasks:
        from ..data import load_conversations
        from ..templates import tokenize_conversation, with_system_prompt

        examples = [tokenize_conversation(tokenizer, with_system_prompt(c, system_prompt), max_length=max_length)
                    for c in load_conversations("bundled-heldout", limit=heldout_limit)]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        rl = response_loss(model, examples, pad_id=pad, progress=progress, desc=f"response loss{suffix}")
        metrics["response_loss"] = round(rl.loss, 5)
        details["response_loss"] = asdict(rl)
    if "italian-rate" in tasks:
        quality = response_quality(model, tokenizer, italian_prompts(prompts), system_prompt=system_prompt,
                                   max_new_tokens=max_new_tokens, do_sample=do_sample, progress=progress)
        metrics.update(quality.metrics())
        details["responses"] = {"languages": quality.languages, "samples": quality.samples, "n_answers": quality.n_answers}
    return metrics, details


def comparison_table(before: dict[str, float], after: dict[str, float]) -> str:
    """Markdown table base vs fine-tune, with the relative change and whether it is an improvement."""
    lines = ["| metrica / metric | base | fine-tune | Δ |", "| --- | ---: | ---: | ---: |"]
    for key in dict.fromkeys([*before, *after]):
        b, a = before.get(key), after.get(key)
        change = ""
        if isinstance(b, (int, float)) and isinstance(a, (int, float)) and b:
            rel = (a - b) / abs(b)
            better = (rel < 0) if key in LOWER_IS_BETTER else (rel > 0)
            change = f"{rel:+.1%} {'✓' if better and rel else ''}".strip()
        arrow = " ↓" if key in LOWER_IS_BETTER else " ↑"
        lines.append(f"| {key}{arrow} | {_fmt(b)} | {_fmt(a)} | {change} |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "—" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def _relative_change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    return {k: round((after[k] - before[k]) / before[k], 5) for k in after
            if isinstance(after[k], (int, float)) and isinstance(before.get(k), (int, float)) and before[k]}


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
        result.update({"before": before, "after": after, "change": _relative_change(before, after),
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
    section.change = _relative_change(section.before, section.after)
    section.extra["suite"] = {"tasks": result["tasks"], "details": result["details"]}
    run.write_metrics(metrics)
    atomic.write_text(run.eval_report_path, "# Valutazione / Evaluation: base vs fine-tune\n\n"
                      + comparison_table(section.before, section.after))


METRIC_DATASETS = {
    "bits_per_byte": ("Italian held-out prose (hf-ita-plugin bundled)", "hf-ita/prose_it"),
    "response_loss": ("Italian held-out conversations (hf-ita-plugin bundled)", "hf-ita/heldout"),
    "italian_rate": ("Italian prompts (hf-ita-plugin bundled)", "hf-ita/prompts_it"),
    "distinct_1": ("Italian prompts (hf-ita-plugin bundled)", "hf-ita/prompts_it"),
    "distinct_2": ("Italian prompts (hf-ita-plugin bundled)", "hf-ita/prompts_it"),
}


def model_index_results(after: dict[str, Any]) -> list[dict[str, Any]]:
    """The fine-tune's numbers as model-card ``model-index`` results (one entry per dataset).

    lm-eval metrics (``arc_it_acc``...) go under their task's Hub dataset; the others under the
    bundled held-out sets they are computed on.
    """
    by_dataset: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for key, value in after.items():
        if not isinstance(value, (int, float)):
            continue
        task = next((t for t in ITALIAN_LM_EVAL_TASKS if key.startswith(f"{t}_")), None)
        if task is not None:
            dataset = (task, ITALIAN_LM_EVAL_TASKS[task][0], ITALIAN_LM_EVAL_TASKS[task][1])
            metric = key[len(task) + 1:]
        elif key in METRIC_DATASETS:
            dataset = (*METRIC_DATASETS[key], None)
            metric = key
        else:
            continue
        by_dataset.setdefault(dataset, []).append({"type": metric, "value": value, "name": key})
    results = []
    for (name, ident, config), metrics in by_dataset.items():
        ds: dict[str, Any] = {"name": name, "type": ident}
        if config:
            ds["config"] = config
        results.append({"task": {"type": "text-generation"}, "dataset": ds, "metrics": metrics})
    return results
