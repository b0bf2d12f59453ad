"""Card facts: what a model card says about a run, read from a training OUTPUT_DIR.

:func:`facts_from_output_dir` reads ``metrics.json``, ``run_config.yaml`` and ``adapter/`` (its
tokenizer renders the chat-template example) through :class:`~hf_ita_plugin.rundir.RunDir` into a
:class:`CardFacts`; files that do not parse, and ``metrics.json`` fields of the wrong type, raise
:class:`~hf_ita_plugin.errors.ConfigError` naming the file and the line or field. GGUF files published
alongside are described by :func:`collect_gguf_files`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..config import hyperparameters
from ..errors import ConfigError
from ..rundir import RunDir, RunMetrics
from ..rundir import read_json_object as read_json
from .licenses import BUNDLED_DATA, LicenseDecision, base_model_license, dataset_license, decide_license, is_hub_dataset
from .paths import is_local_path, public_model_id

CHAT_EXAMPLE = [
    {"role": "user", "content": "Qual è la capitale d'Italia?"},
    {"role": "assistant", "content": "La capitale d'Italia è Roma."},
]
"""The conversation a card renders with the model's chat template."""

_CARD_NAMES = {"r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout"}
"""Hyperparameters the card names differently from the config (``lora.r`` -> ``lora_r``)."""


@dataclass
class GgufFile:
    """A GGUF file published with the model (``path`` inside the repo)."""

    path: str
    quant: str
    size_bytes: int
    modelfile: str | None = None
    verified: bool | None = None


@dataclass
class CardFacts:
    """Everything a card says about a run; built from an OUTPUT_DIR or from a Trainer."""

    base_model: str
    repo_id: str | None = None
    title: str | None = None
    method: str = "QLoRA"
    quantization: str = "nf4"
    template_name: str | None = None
    chat_template: str | None = None
    chat_example: str | None = None
    datasets: list[str] = field(default_factory=list)  # Hub dataset ids only
    data: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    base_model_weights: str | None = None
    """Where the base weights came from when not the Hub model itself (the embedded model's GGUF)."""
    base_model_local: str | None = None
    """Name of the local folder the base model was loaded from when its Hub id is unknown (``base_model`` is then ``unknown``)."""
    eval_before: dict[str, float] = field(default_factory=dict)
    eval_after: dict[str, float] = field(default_factory=dict)
    eval_data: dict[str, str] = field(default_factory=dict)  # metric -> what it was measured on
    license: LicenseDecision = field(default_factory=lambda: LicenseDecision("other"))
    extra_tags: list[str] = field(default_factory=list)


def read_chat_template(model_dir: Path) -> str | None:
    """The chat template saved with a tokenizer (``chat_template.jinja`` or ``tokenizer_config.json``)."""
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        template = read_json(config).get("chat_template")
        if isinstance(template, str):
            return template
    return None


def render_chat_example(tokenizer) -> str | None:
    """The example conversation rendered with the tokenizer's own chat template."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    try:
        return tokenizer.apply_chat_template(CHAT_EXAMPLE, tokenize=False)
    except Exception:  # a template may reject the example (e.g. a mandatory system turn)
        return None


def _load_tokenizer(model_dir: Path):
    if not (model_dir / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def facts_from_output_dir(output_dir: str | os.PathLike, *, repo_id: str | None = None, base_model: str | None = None,
                          lookup: bool = True, endpoint: str | None = None, token: str | None = None,
                          allow_local_base: bool = False) -> CardFacts:
    """Collect the card facts of a training OUTPUT_DIR (``metrics.json``, ``run_config.yaml``, ``adapter/``).

    ``base_model`` overrides the Hub id of the base model (needed when the run used a local path,
    unless ``allow_local_base``: the card of the run itself then says the base is a local folder).
    With ``lookup`` the licenses of non-preset base models and of Hub datasets are read from their
    cards on the Hub (``endpoint``/``token`` as for downloads); failures leave them ``unknown``.
    """
    run = RunDir(output_dir)
    out = run.path
    if not out.is_dir():
        raise ConfigError(f"{out}: cartella di output inesistente / OUTPUT_DIR does not exist")
    read = run.read_metrics()
    metrics = read or RunMetrics()
    run_config = run.read_config()
    adapter_dir = run.adapter_dir
    adapter_config = read_json(run.adapter_config_path) if run.has_adapter() else {}
    if read is None and not adapter_config:
        raise ConfigError(
            f"{out}: né {run.METRICS} né {run.ADAPTER}/{run.ADAPTER_CONFIG} / neither {run.METRICS} nor "
            f"{run.ADAPTER}/{run.ADAPTER_CONFIG} found",
            hint="pass the OUTPUT_DIR of a finished `hf-ita train` run",
        )
    model_cfg = run_config.get("model") or {}
    base = public_model_id(base_model, metrics.base_model, model_cfg.get("name_or_path"),
                           adapter_config.get("base_model_name_or_path"))
    local_base = None
    if base is None and allow_local_base:
        local = metrics.base_model_path or model_cfg.get("name_or_path") or adapter_config.get("base_model_name_or_path")
        base, local_base = "unknown", Path(str(local or "base-model")).name
    if base is None:
        raise ConfigError(
            f"{out}: l'id Hub del modello base è sconosciuto (solo un percorso locale) / the base model's Hub id is unknown "
            "(the run only recorded a local path)",
            hint="pass --base-model ORG/NAME (the Hub id the local weights come from)",
        )
    quant = metrics.quantization or (run_config.get("quantization") or {}).get("mode") or "nf4"
    data_cfg = run_config.get("data") or {}
    m_data = metrics.data
    train_source = m_data.train_source or data_cfg.get("train")
    eval_source = m_data.eval_source or data_cfg.get("eval")

    hyper = {**hyperparameters(run_config), **metrics.hyperparameters}
    hyper = {_CARD_NAMES.get(k, k): v for k, v in hyper.items()}
    hyper["quantization"] = quant

    tokenizer_dir = next((d for d in (adapter_dir, run.merged_dir, out) if (d / "tokenizer_config.json").is_file()), out)
    tokenizer = _load_tokenizer(tokenizer_dir)
    train = metrics.train
    training = {
        "steps": train.steps, "epochs": train.epochs, "final_loss": train.final_loss,
        "train_runtime_s": train.train_runtime_s, "wall_time_s": metrics.wall_time_s,
        "tokens_per_second": train.tokens_per_second, "trained_tokens": train.trained_tokens,
        "peak_memory_mb": train.peak_memory_mb,
    }
    eval_cfg = run_config.get("evaluation") or {}
    bpb_source = eval_cfg.get("bpb_text", "bundled")
    eval_data = {
        "bits_per_byte": "prose_it.txt (bundled)" if bpb_source in (None, "bundled") else Path(str(bpb_source)).name,
        "response_loss": _source_label(eval_source),
    }
    datasets = [s for s in (train_source, eval_source) if is_hub_dataset(s)]
    facts = CardFacts(
        base_model=base,
        repo_id=repo_id,
        method="QLoRA" if quant in ("nf4", "fp4") else "LoRA",
        quantization=quant,
        template_name=metrics.template or model_cfg.get("template"),
        chat_template=read_chat_template(tokenizer_dir),
        chat_example=render_chat_example(tokenizer),
        datasets=list(dict.fromkeys(datasets)),
        data={
            "train_examples": m_data.train_examples, "eval_examples": m_data.eval_examples,
            "train_tokens": m_data.train_tokens, "dropped_truncated": m_data.dropped_truncated,
            "train_source": _source_label(train_source), "eval_source": _source_label(eval_source),
            "cleaning": _as_mapping(m_data.extra.get("cleaning") or m_data.extra.get("report")),
        },
        hyperparameters=hyper,
        training=training,
        hardware=metrics.hardware,
        base_model_weights=metrics.base_model_weights,
        base_model_local=local_base,
        eval_before={k: v for k, v in metrics.eval.before.items() if isinstance(v, (int, float))},
        eval_after={k: v for k, v in metrics.eval.after.items() if isinstance(v, (int, float))},
        eval_data=eval_data,
    )
    dataset_licenses = {}
    for source in dict.fromkeys(s for s in (train_source, eval_source) if s):
        dataset_licenses[_source_label(source)] = dataset_license(source, m_data.to_dict(), lookup, endpoint, token)
    facts.license = decide_license(base, dataset_licenses, model_license=base_model_license(base, lookup, endpoint, token))
    return facts


def _as_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if not isinstance(v, (dict, list))}
    return {}


def _source_label(source: Any) -> str | None:
    if source is None:
        return None
    source = str(source)
    if source in BUNDLED_DATA:
        return f"{source} (hf-ita-plugin, {BUNDLED_DATA[source]})"
    if is_local_path(source):
        return Path(source).name + " (file locale / local file)"
    return source


def collect_gguf_files(folder: Path, *, prefix: str = "", only: Iterable[str] | None = None) -> list[GgufFile]:
    """GGUF files in ``folder`` (``<name>-<TYPE>.gguf`` with optional ``.Modelfile``/``.verify.json``)."""
    if not folder.is_dir():
        return []
    wanted = {q.upper() for q in only} if only is not None else None
    files = []
    for path in sorted(folder.glob("*.gguf")):
        quant = path.stem.rsplit("-", 1)[-1].upper() if "-" in path.stem else "?"
        if wanted is not None and quant not in wanted:
            continue
        modelfile = path.with_name(path.stem + ".Modelfile")
        report = path.with_name(path.stem + ".verify.json")
        verified = None
        if report.is_file():
            try:
                verified = bool(json.loads(report.read_text(encoding="utf-8")).get("ok"))
            except (json.JSONDecodeError, AttributeError):
                verified = None
        files.append(GgufFile(path=prefix + path.name, quant=quant, size_bytes=path.stat().st_size,
                              modelfile=prefix + modelfile.name if modelfile.is_file() else None, verified=verified))
    return files
