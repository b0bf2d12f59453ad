"""Model cards: facts about a run -> Jinja template from ``model_cards/`` -> ``README.md``.

The facts come from a training OUTPUT_DIR (``metrics.json`` + ``run_config.yaml`` + ``adapter/``,
see :func:`facts_from_output_dir`) or from a live ``transformers.Trainer`` (see
:mod:`hf_ita_plugin.hub.callback`). The YAML metadata is built with huggingface_hub's
:class:`~huggingface_hub.ModelCardData` (``model-index`` from the run's evaluation, built by
:mod:`hf_ita_plugin.evaluation.model_index`), the body is
rendered from one of three templates (``adapter``, ``merged``, ``gguf``), Italian first then
English, and the result is parsed back with :class:`~huggingface_hub.ModelCard` before use.

Example::

    card = render_card(facts_from_output_dir("outputs/run1", repo_id="me/smollm2-ita"))
    write_card("outputs/run1", repo_id="me/smollm2-ita")      # outputs/run1/README.md
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError, bilingual
from .facts import CardFacts, GgufFile, collect_gguf_files, facts_from_output_dir

CARD_KINDS = ("adapter", "merged", "gguf")
PROJECT_TAG = "hf-ita-plugin"
"""Tag every card carries; :mod:`~hf_ita_plugin.hub.push` uses it to recognise its own repos."""

BASE_MODEL_RELATION = {"adapter": "adapter", "merged": "finetune", "gguf": "quantized"}
"""Hub ``base_model_relation`` per kind. A LoRA merged back into its one base is a fine-tune of it:
the Hub reserves ``merge`` for merges of several models. A GGUF repo names the fine-tune it was
quantized from (``quantized``); when that fine-tune is not on the Hub, it names the original base
with ``finetune`` (the GGUF holds the base with the adapter merged)."""

_METRIC_LABELS = {  # metric -> (Italian label, English label)
    "bits_per_byte": ("Bit per byte (prosa italiana held-out, più basso è meglio)",
                      "Bits per byte (held-out Italian prose, lower is better)"),
    "response_loss": ("Loss sulle risposte (nat/token, conversazioni held-out, più basso è meglio)",
                      "Response loss (nats/token, held-out conversations, lower is better)"),
    "eval_loss": ("Loss di valutazione del Trainer (più basso è meglio)", "Trainer evaluation loss (lower is better)"),
}

_DATA_KEYS = ("train_source", "eval_source", "train_examples", "eval_examples", "train_tokens", "dropped_truncated")
_TRAINING_KEYS = ("steps", "epochs", "final_loss", "train_runtime_s", "wall_time_s", "tokens_per_second", "peak_memory_mb")


# ---------------------------------------------------------------------- templates
def _template_source(name: str) -> str:
    """A card template from ``model_cards/``, packaged as ``hf_ita_plugin.model_cards`` (installed or editable)."""
    try:
        return (resources.files("hf_ita_plugin.model_cards") / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(bilingual(f"template della model card {name!r} non trovato (model_cards/ manca nell'installazione)",
                                    f"model card template {name!r} not found (model_cards/ missing from the installation)")) from exc


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["fmt"] = _fmt
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    return env


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "sì / yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.5g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------- rendering
def build_card_data(facts: CardFacts, kind: str = "adapter", *, base_model: str | None = None,
                    finetune_repo: str | None = None):
    """The YAML metadata as a :class:`huggingface_hub.ModelCardData` (with ``model-index``).

    ``finetune_repo`` (GGUF cards): the Hub repo of the fine-tune (adapter or merged model) the GGUF files
    were made from; it becomes ``base_model`` with relation ``quantized``."""
    from huggingface_hub import ModelCardData

    from ..evaluation.model_index import eval_results

    _check_kind(kind)
    method_tags = ["qlora", "4-bit", "bitsandbytes"] if facts.method == "QLoRA" else ["lora"]
    tags = ["italian", "sft", "trl", *method_tags, PROJECT_TAG]
    if kind == "adapter":
        tags += ["peft", "lora"]
    elif kind == "gguf":
        tags += ["gguf", "llama.cpp", "ollama"]
    tags += facts.extra_tags
    name = facts.repo_id or facts.title or f"{(facts.base_model_local or facts.base_model).split('/')[-1]}-ita"
    results = eval_results(facts.eval_after, datasets=facts.eval_data,
                           metric_names={metric: english for metric, (_, english) in _METRIC_LABELS.items()})
    languages = ["it", "en"]
    data = ModelCardData(
        language=languages,
        license=facts.license.license,
        license_name=facts.license.license_name if facts.license.license == "other" else None,
        base_model=(finetune_repo if kind == "gguf" and finetune_repo else
                    base_model or (facts.base_model if facts.base_model != "unknown" else None)),
        datasets=facts.datasets or None,
        library_name={"adapter": "peft", "merged": "transformers", "gguf": "gguf"}[kind],
        pipeline_tag="text-generation",
        tags=list(dict.fromkeys(tags)),
        model_name=name,
        eval_results=results or None,
        base_model_relation="finetune" if kind == "gguf" and not finetune_repo else BASE_MODEL_RELATION[kind],
    )
    return data


def _check_kind(kind: str) -> None:
    if kind not in CARD_KINDS:
        raise ConfigError(bilingual("tipo di card non valido", f"card kind must be one of {', '.join(CARD_KINDS)}; got {kind!r}"))


def _eval_rows(facts: CardFacts) -> list[dict[str, Any]]:
    from ..evaluation.compare import relative_change

    changes = {metric: f"{change:+.1%}" for metric, change in relative_change(facts.eval_before, facts.eval_after).items()}
    rows = []
    for metric in dict.fromkeys([*facts.eval_after, *facts.eval_before]):
        before, after = facts.eval_before.get(metric), facts.eval_after.get(metric)
        label_it, label_en = _METRIC_LABELS.get(metric, (metric, metric))
        change = changes.get(metric)
        rows.append({"metric": metric, "label_it": label_it, "label_en": label_en, "before": before, "after": after,
                     "change": change, "data": facts.eval_data.get(metric)})
    return rows


def render_card(facts: CardFacts, kind: str = "adapter", *, gguf_files: Iterable[GgufFile] = (),
                merged_path: str | None = None, base_model: str | None = None, finetune_repo: str | None = None):
    """Render the card of ``kind`` and return it parsed as a :class:`huggingface_hub.ModelCard`.

    ``merged_path``: where the merged model sits in the repo (``""`` = repo root, ``None`` = not
    published); ``gguf_files``: the GGUF files published (paths inside the repo); ``finetune_repo``: see
    :func:`build_card_data`.
    """
    from huggingface_hub import ModelCard

    _check_kind(kind)
    data = build_card_data(facts, kind, base_model=base_model, finetune_repo=finetune_repo)
    repo = facts.repo_id or "<utente>/<nome-repo>"
    context = {
        "card_data": data.to_yaml(),
        "kind": kind,
        "repo_id": repo,
        "repo_known": facts.repo_id is not None,
        "title": facts.title or repo.split("/")[-1],
        "base_model": f"{facts.base_model_local} (locale · local)" if facts.base_model_local else facts.base_model,
        "method": facts.method,
        "quantization": facts.quantization,
        "license": dataclasses.asdict(facts.license),
        "template_name": facts.template_name,
        "chat_template": facts.chat_template,
        "chat_example": facts.chat_example,
        "data": {**dict.fromkeys(_DATA_KEYS), "cleaning": {}, **facts.data},
        "datasets": facts.datasets,
        "hyperparameters": facts.hyperparameters,
        "training": {**dict.fromkeys(_TRAINING_KEYS), **facts.training},
        "hardware": facts.hardware,
        "base_model_weights": facts.base_model_weights,
        "eval_rows": _eval_rows(facts),
        "gguf_files": [dataclasses.asdict(g) for g in gguf_files],
        "merged_path": merged_path,
        "finetune_repo": finetune_repo if kind == "gguf" else None,
    }
    text = _environment().get_template(f"{kind}.md.jinja").render(**context)
    if facts.base_model_local:
        text = _local_base_text(text, context["base_model"], facts.base_model_local)
    text = re.sub(r"\n{3,}", "\n\n", text)
    card = ModelCard(text)
    return card


def _local_base_text(text: str, label: str, folder: str) -> str:
    """A base known only as a local folder: no Hub link to it, and a placeholder path to load it from."""
    link = f"`{folder}` (modello locale, id Hub sconosciuto · local model, Hub id unknown)"
    return (text.replace(f"[{label}](https://huggingface.co/{label})", link)
            .replace(f'from_pretrained("{label}"', f'from_pretrained("/path/to/{folder}"'))


def write_card(output_dir: str | os.PathLike, kind: str = "adapter", *, repo_id: str | None = None,
               base_model: str | None = None, lookup: bool = True, endpoint: str | None = None,
               token: str | None = None, target: str | os.PathLike | None = None,
               allow_local_base: bool = False) -> Path:
    """Render the card of a training OUTPUT_DIR and write it atomically (default ``OUTPUT_DIR/README.md``).

    ``allow_local_base``: a base model known only by a local path is named as such instead of refused
    (the card a run writes for itself; publishing still needs the Hub id, ``base_model``).
    """
    from ..utils.atomic import write_text

    facts = facts_from_output_dir(output_dir, repo_id=repo_id, base_model=base_model, lookup=lookup,
                                  endpoint=endpoint, token=token, allow_local_base=allow_local_base)
    from ..rundir import RunDir

    run = RunDir(output_dir)
    gguf = collect_gguf_files(run.gguf_dir, prefix=f"{run.GGUF}/")
    merged = run.MERGED if (run.merged_dir / "config.json").is_file() and kind == "adapter" else None
    card = render_card(facts, kind, gguf_files=gguf if kind != "merged" else (), merged_path=merged)
    return write_text(Path(target) if target else run.card_path, str(card))
