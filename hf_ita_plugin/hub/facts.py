"""Card facts: what a model card says about a run, read from a training OUTPUT_DIR.

:func:`facts_from_output_dir` reads ``metrics.json``, ``run_config.yaml`` and ``adapter/`` (its
tokenizer renders the chat-template example) into a :class:`CardFacts`; files that do not parse
raise :class:`~hf_ita_plugin.errors.ConfigError` naming the file and line. GGUF files published
alongside are described by :func:`collect_gguf_files`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import ConfigError
from .licenses import BUNDLED_DATA, LicenseDecision, base_model_license, dataset_license, decide_license, is_hub_dataset
from .paths import is_local_path, public_model_id

CHAT_EXAMPLE = [
    {"role": "user", "content": "Qual è la capitale d'Italia?"},
    {"role": "assistant", "content": "La capitale d'Italia è Roma."},
]
"""The conversation a card renders with the model's chat template."""


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
    eval_before: dict[str, float] = field(default_factory=dict)
    eval_after: dict[str, float] = field(default_factory=dict)
    eval_data: dict[str, str] = field(default_factory=dict)  # metric -> what it was measured on
    license: LicenseDecision = field(default_factory=lambda: LicenseDecision("other"))
    extra_tags: list[str] = field(default_factory=list)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: JSON non valido / invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: atteso un oggetto JSON / expected a JSON object at the top level")
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: YAML non valido / malformed YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: atteso un mapping / expected a mapping at the top level")
    return data


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
                          lookup: bool = True, endpoint: str | None = None, token: str | None = None) -> CardFacts:
    """Collect the card facts of a training OUTPUT_DIR (``metrics.json``, ``run_config.yaml``, ``adapter/``).

    ``base_model`` overrides the Hub id of the base model (needed when the run used a local path).
    With ``lookup`` the licenses of non-preset base models and of Hub datasets are read from their
    cards on the Hub (``endpoint``/``token`` as for downloads); failures leave them ``unknown``.
    """
    out = Path(output_dir)
    if not out.is_dir():
        raise ConfigError(f"{out}: cartella di output inesistente / OUTPUT_DIR does not exist")
    metrics = read_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}
    run_config = read_yaml(out / "run_config.yaml") if (out / "run_config.yaml").is_file() else {}
    adapter_dir = out / "adapter"
    adapter_config = read_json(adapter_dir / "adapter_config.json") if (adapter_dir / "adapter_config.json").is_file() else {}
    if not metrics and not adapter_config:
        raise ConfigError(
            f"{out}: né metrics.json né adapter/adapter_config.json / neither metrics.json nor adapter/adapter_config.json found",
            hint="pass the OUTPUT_DIR of a finished `hf-ita train` run",
        )
    model_cfg = run_config.get("model") or {}
    base = public_model_id(base_model, metrics.get("base_model"), model_cfg.get("name_or_path"),
                           adapter_config.get("base_model_name_or_path"))
    if base is None:
        raise ConfigError(
            f"{out}: l'id Hub del modello base è sconosciuto (solo un percorso locale) / the base model's Hub id is unknown "
            "(the run only recorded a local path)",
            hint="pass --base-model ORG/NAME (the Hub id the local weights come from)",
        )
    quant = metrics.get("quantization") or (run_config.get("quantization") or {}).get("mode") or "nf4"
    training_cfg = run_config.get("training") or {}
    lora_cfg = run_config.get("lora") or {}
    data_cfg = run_config.get("data") or {}
    m_data = metrics.get("data") or {}
    train_source = m_data.get("train_source") or data_cfg.get("train")
    eval_source = m_data.get("eval_source") or data_cfg.get("eval")

    hyper: dict[str, Any] = {}
    hyper.update({f"lora_{k}" if k in ("r", "alpha", "dropout") else k: v for k, v in lora_cfg.items()})
    for key in ("max_seq_length", "per_device_batch_size", "gradient_accumulation_steps", "learning_rate", "num_epochs",
                "max_steps", "warmup_ratio", "lr_scheduler", "weight_decay", "batching", "seed"):
        if key in training_cfg:
            hyper[key] = training_cfg[key]
    for key, value in (metrics.get("hyperparameters") or {}).items():
        hyper[f"lora_{key}" if key in ("r", "alpha", "dropout") else key] = value
    hyper["quantization"] = quant

    tokenizer_dir = next((d for d in (adapter_dir, out / "merged", out) if (d / "tokenizer_config.json").is_file()), out)
    tokenizer = _load_tokenizer(tokenizer_dir)
    train = metrics.get("train") or {}
    training = {
        "steps": train.get("steps"), "epochs": train.get("epochs"), "final_loss": train.get("final_loss"),
        "train_runtime_s": train.get("train_runtime_s"), "wall_time_s": metrics.get("wall_time_s"),
        "tokens_per_second": train.get("tokens_per_second"), "trained_tokens": train.get("trained_tokens"),
        "peak_memory_mb": train.get("peak_memory_mb"),
    }
    evaluation = metrics.get("eval") or {}
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
        template_name=metrics.get("template") or model_cfg.get("template"),
        chat_template=read_chat_template(tokenizer_dir),
        chat_example=render_chat_example(tokenizer),
        datasets=list(dict.fromkeys(datasets)),
        data={
            "train_examples": m_data.get("train_examples"), "eval_examples": m_data.get("eval_examples"),
            "train_tokens": m_data.get("train_tokens"), "dropped_truncated": m_data.get("dropped_truncated"),
            "train_source": _source_label(train_source), "eval_source": _source_label(eval_source),
            "cleaning": _as_mapping(m_data.get("cleaning") or m_data.get("report")),
        },
        hyperparameters=hyper,
        training=training,
        hardware=metrics.get("hardware") or {},
        eval_before={k: v for k, v in (evaluation.get("before") or {}).items() if isinstance(v, (int, float))},
        eval_after={k: v for k, v in (evaluation.get("after") or {}).items() if isinstance(v, (int, float))},
        eval_data=eval_data,
    )
    dataset_licenses = {}
    for source in dict.fromkeys(s for s in (train_source, eval_source) if s):
        dataset_licenses[_source_label(source)] = dataset_license(source, m_data, lookup, endpoint, token)
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
