"""The model card's ``model-index``: evaluation numbers as huggingface_hub ``EvalResult`` objects.

:func:`eval_results` is the one builder; :mod:`hf_ita_plugin.hub.card` puts its output in the
card metadata (``ModelCardData(eval_results=...)``) and :func:`model_index_results` shows the same
results in the YAML form the Hub reads. Each metric is filed under the dataset it was measured on:

- lm-eval metrics (``arc_it_acc``...) under their task's Hub dataset and config;
- the others under the label the caller gives (``datasets``, e.g. ``prose_it.txt (bundled)``), or
  else the bundled held-out set of :data:`METRIC_DATASETS`;
- a metric with no known dataset (``answer_chars_mean``) or a non-numeric value is left out.
"""

from __future__ import annotations

from typing import Any, Mapping

from .lm_eval import ITALIAN_LM_EVAL_TASKS

TASK_TYPE = "text-generation"
TASK_NAME = "Italian language modeling"
METRIC_DATASETS = {
    "bits_per_byte": ("Italian held-out prose (hf-ita-plugin bundled)", "hf-ita/prose_it"),
    "response_loss": ("Italian held-out conversations (hf-ita-plugin bundled)", "hf-ita/heldout"),
    "italian_rate": ("Italian prompts (hf-ita-plugin bundled)", "hf-ita/prompts_it"),
    "distinct_1": ("Italian prompts (hf-ita-plugin bundled)", "hf-ita/prompts_it"),
    "distinct_2": ("Italian prompts (hf-ita-plugin bundled)", "hf-ita/prompts_it"),
}
"""metric -> (dataset name, dataset id) of the bundled held-out set it is computed on."""


def eval_results(after: Mapping[str, Any], *, datasets: Mapping[str, str] | None = None,
                 metric_names: Mapping[str, str] | None = None) -> list:
    """The fine-tune's numbers ``after`` as :class:`huggingface_hub.EvalResult` objects.

    ``datasets``: metric -> a label of what it was measured on (its first word becomes the
    dataset type); ``metric_names``: metric -> a readable name (default: the metric itself).
    """
    from huggingface_hub import EvalResult

    datasets, metric_names = datasets or {}, metric_names or {}
    results = []
    for key, value in after.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        task = next((t for t in ITALIAN_LM_EVAL_TASKS if key.startswith(f"{t}_")), None)
        if task is not None:
            hub_id, config = ITALIAN_LM_EVAL_TASKS[task]
            dataset = {"dataset_type": hub_id, "dataset_name": task, "dataset_config": config}
            metric = key[len(task) + 1:]
        elif datasets.get(key):
            dataset = {"dataset_type": datasets[key].split(" ")[0], "dataset_name": datasets[key],
                       "dataset_split": "held-out"}
            metric = key
        elif key in METRIC_DATASETS:
            name, ident = METRIC_DATASETS[key]
            dataset = {"dataset_type": ident, "dataset_name": name, "dataset_split": "held-out"}
            metric = key
        else:
            continue
        results.append(EvalResult(task_type=TASK_TYPE, task_name=TASK_NAME, metric_type=metric,
                                  metric_name=metric_names.get(key, key), metric_value=value, **dataset))
    return results


def model_index_results(after: Mapping[str, Any], **kwargs) -> list[dict[str, Any]]:
    """The ``results`` of the card's ``model-index`` for ``after`` (one entry per task and dataset)."""
    from huggingface_hub.repocard_data import eval_results_to_model_index

    results = eval_results(after, **kwargs)
    return eval_results_to_model_index("model", results)[0]["results"] if results else []
