"""Evaluation: one home, one code path per metric.

Map of the package:

- :mod:`.metrics`: held-out bits per byte and response loss (:func:`heldout_metrics` is the one
  function the recipe's before/after evaluation and ``hf-ita eval`` share), :func:`load_bpb_text`;
- :mod:`.quality`: answers to Italian prompts, Italian-rate, distinct-n (the ``italian-rate`` task);
- :mod:`.lm_eval`: the lm-evaluation-harness bridge (``lm-eval:TASK`` tasks, run as a subprocess);
- :mod:`.compare`: :func:`relative_change` (the one rule for base -> fine-tune changes, used by
  the recipe, the suite and the model card) and the comparison table;
- :mod:`.model_index`: the model card's ``model-index`` results (used by :mod:`hf_ita_plugin.hub.card`);
- :mod:`.target`: what is evaluated (base model, optional adapter) and loading it;
- :mod:`.suite`: task parsing and the orchestration behind ``hf-ita eval`` (:func:`run_eval`).

Public API::

    from hf_ita_plugin.evaluation import run_eval, heldout_metrics, relative_change

    result = run_eval("outputs/run1", "bpb,responses,italian-rate")   # base vs fine-tune
    print(result["table"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_getattr

_LAZY = {
    "BitsPerByte": ".metrics",
    "ResponseLoss": ".metrics",
    "bits_per_byte": ".metrics",
    "response_loss": ".metrics",
    "heldout_metrics": ".metrics",
    "load_bpb_text": ".metrics",
    "ItalianRate": ".quality",
    "ResponseQuality": ".quality",
    "distinct_n": ".quality",
    "generate_answers": ".quality",
    "italian_prompts": ".quality",
    "italian_rate": ".quality",
    "response_quality": ".quality",
    "ITALIAN_LM_EVAL_TASKS": ".lm_eval",
    "LmEvalRun": ".lm_eval",
    "check_lm_eval": ".lm_eval",
    "lm_eval_command": ".lm_eval",
    "parse_lm_eval_results": ".lm_eval",
    "run_lm_eval": ".lm_eval",
    "LOWER_IS_BETTER": ".compare",
    "comparison_table": ".compare",
    "relative_change": ".compare",
    "METRIC_DATASETS": ".model_index",
    "eval_results": ".model_index",
    "model_index_results": ".model_index",
    "EvalTarget": ".target",
    "load_target": ".target",
    "DEFAULT_TASKS": ".suite",
    "evaluate_model": ".suite",
    "parse_tasks": ".suite",
    "resolve_target": ".suite",
    "run_eval": ".suite",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .compare import LOWER_IS_BETTER, comparison_table, relative_change
    from .lm_eval import (ITALIAN_LM_EVAL_TASKS, LmEvalRun, check_lm_eval, lm_eval_command, parse_lm_eval_results,
                          run_lm_eval)
    from .metrics import BitsPerByte, ResponseLoss, bits_per_byte, heldout_metrics, load_bpb_text, response_loss
    from .model_index import METRIC_DATASETS, eval_results, model_index_results
    from .quality import (ItalianRate, ResponseQuality, distinct_n, generate_answers, italian_prompts, italian_rate,
                          response_quality)
    from .suite import DEFAULT_TASKS, evaluate_model, parse_tasks, resolve_target, run_eval
    from .target import EvalTarget, load_target


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
