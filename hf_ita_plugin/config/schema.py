"""The run configuration: one typed schema shared by YAML files, the CLI and the Python API.

A config is a tree of dataclasses (:class:`RunConfig` with ``model``, ``quantization``, ``lora``,
``data``, ``training``, ``evaluation`` and ``distributed`` sections). YAML files mirror that tree; a YAML file may
start from a packaged preset with ``preset: NAME``; ``--set section.key=value`` overrides any leaf.
Every problem is reported as a :class:`~hf_ita_plugin.errors.ConfigError` naming the key, the file
and the allowed values.

Example::

    cfg = RunConfig.from_yaml("examples/smollm2-135m-cpu.yaml", overrides=["training.max_steps=5"])
    cfg.training.learning_rate
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from ..errors import ConfigError, bilingual, describe_yaml_error
from ..utils.text import read_text

QuantMode = Literal["nf4", "fp4", "none"]
EmbeddedName = Literal["smollm2-135m", "gemma-3-270m"]  # the keys of models.embedded.EMBEDDED_MODELS
ComputeDtype = Literal["auto", "bfloat16", "float16", "float32"]
Scheduler = Literal["cosine", "linear", "constant_with_warmup"]


@dataclass
class ModelConfig:
    """Which base model to fine-tune and which chat template to train it with."""

    name_or_path: str | None = None
    """Hub id or local directory. ``None`` means the embedded model ``embedded`` names."""
    embedded: EmbeddedName = "smollm2-135m"
    """Which embedded model trains when ``name_or_path`` is ``None``: ``smollm2-135m`` (SmolLM2-135M-Instruct,
    Apache 2.0) or ``gemma-3-270m`` (the Gemma-3-270M base model; extra ``gemma``; Gemma Terms of Use)."""
    revision: str | None = None
    template: str | None = "auto"
    """``auto`` (or ``None``): the template the model ships (the registry entry with exact masks when it is
    an official template the registry renders byte for byte); or a registry name (``chatml``, ``llama-3``...),
    a ``.jinja`` file or Jinja text."""
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    gpu_memory_gb: float | None = None
    """GPU memory (GB, one GPU) the run needs; picks the default HF Jobs flavor. ``None``: not declared."""


@dataclass
class QuantizationConfig:
    """4-bit loading (QLoRA) through bitsandbytes; ``mode: none`` trains plain LoRA."""

    mode: QuantMode = "nf4"
    double_quant: bool = True
    compute_dtype: ComputeDtype = "auto"
    """``auto``: bfloat16 where the hardware supports it, float32 on CPU."""
    quant_storage: Literal["auto", "uint8", "bfloat16", "float16", "float32"] = "auto"
    """dtype the packed 4-bit weights are stored in: ``auto`` is ``uint8``, or the compute dtype under FSDP
    (which shards only float tensors of one dtype)."""


@dataclass
class LoraConfig:
    """LoRA adapter shape; ``target_modules: all-linear`` adapts every linear layer."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class DataConfig:
    """Where the conversations come from and how they are prepared."""

    train: str = "bundled"
    """``bundled`` (the packaged Italian set), a local json/jsonl/csv/parquet file, or a Hub dataset id."""
    eval: str | None = "bundled-heldout"
    format: Literal["auto", "messages", "alpaca", "sharegpt", "prompt-completion"] = "auto"
    system_prompt: str | None = "default"
    """``default`` (the Italian default), ``none`` (no system prompt added), or the text itself."""
    max_train_examples: int | None = None
    """Train on a seeded random sample of this many conversations (spread over the whole file)."""
    max_eval_examples: int | None = None
    split: str = "train"
    curriculum: Literal["none", "lab", "lab-two-phase"] = "none"
    """``lab``: knowledge, then foundational skills, then compositional skills (LAB method), phases
    trained in sequence; ``lab-two-phase``: knowledge then skills; ``none``: shuffled."""
    curriculum_short_to_long: bool = False
    """Inside each curriculum phase, short conversations first."""
    encoding: str = "utf-8"
    """Text encoding of local json/jsonl/csv/yaml data files (e.g. ``latin-1``)."""


@dataclass
class TrainingConfig:
    """SFTTrainer settings."""

    output_dir: str = "outputs/run"
    max_seq_length: int = 512
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    num_epochs: float = 1.0
    max_steps: int = -1
    warmup_ratio: float = 0.05
    lr_scheduler: Scheduler = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = True
    batching: Literal["auto", "padding_free", "packed", "padded"] = "auto"
    """``auto``: padded batches on a CPU (padding-free did not win there), padding-free on a GPU
    (:func:`hf_ita_plugin.training.trainer.resolve_batching`)."""
    """``padding_free``: sequences concatenated per batch with position ids, no pad tokens;
    ``packed``: fixed-length blocks (BFD packing); ``padded``: classic right padding."""
    eval_steps: int = 50
    save_steps: int = 50
    save_total_limit: int = 2
    push_checkpoint_steps: int | None = None
    """With ``hf-ita train --push-checkpoints-to`` (every HF Job): push a checkpoint every this many steps
    (a save is forced there); ``null``: every saved checkpoint (``save_steps``)."""
    logging_steps: int = 5
    seed: int = 42
    report_to: str = "none"


@dataclass
class EvaluationConfig:
    """Held-out measurements taken before and after training."""

    before_after: bool = True
    bpb_text: str | None = "bundled"
    """``bundled`` (packaged Italian prose), a path to a UTF-8 text file, or ``None`` to skip."""
    bpb_max_chars: int | None = None
    response_loss: bool = True
    max_length: int = 512
    answer_quality: bool = False
    """Also score greedy answers to held-out prompts (Italian-rate, dictionary words, loops), with and without
    the system prompt (:func:`hf_ita_plugin.evaluation.quality.answer_quality`)."""
    answer_prompts: int = 12
    """How many held-out prompts, spread over their categories (the bundled held-out set has 12)."""
    answer_max_new_tokens: int = 64


@dataclass
class DistributedConfig:
    """How ``hf-ita train --num-processes N`` (or ``accelerate launch``) spreads a run over processes."""

    strategy: Literal["ddp", "fsdp"] = "ddp"
    """``ddp``: every process holds the whole (4-bit) model; ``fsdp``: weights sharded across GPUs
    (FSDP-QLoRA; GPU only)."""
    fsdp_sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard", "no_shard"] = "full_shard"
    activation_checkpointing: bool = False
    """FSDP only: recompute activations per wrapped block (FSDP's own, instead of ``training.gradient_checkpointing``)."""


@dataclass
class RunConfig:
    """A whole fine-tuning run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, source: str = "<config>") -> "RunConfig":
        """Build and validate a config from a nested mapping (e.g. parsed YAML)."""
        data = dict(data or {})
        preset = data.pop("preset", None)
        base: dict[str, Any] = {}
        if preset is not None:
            if not isinstance(preset, str):
                raise ConfigError(bilingual("la chiave 'preset' deve essere il nome di un preset",
                                            f"key 'preset' must be a preset name, got {preset!r}", where=_blame(source, "preset")),
                                  hint=f"available presets: {', '.join(list_presets())}")
            base = load_preset_dict(preset)
        merged = _deep_merge(base, data)
        return _build(cls, merged, path="", source=source)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> "RunConfig":
        """Load a YAML config file, apply ``key=value`` overrides, validate."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(bilingual(f"file di configurazione non trovato: {path}", f"config file not found: {path}"),
                              hint="pass a YAML file, e.g. examples/smollm2-135m-cpu.yaml")
        try:
            raw = yaml.safe_load(read_text(path, error=ConfigError, option=None))
        except yaml.YAMLError as exc:
            raise ConfigError(describe_yaml_error(path, exc)) from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(bilingual("il livello principale deve essere una mappa di sezioni",
                                        f"the top level must be a mapping of sections, got {type(raw).__name__}",
                                        where=path))
        raw = apply_overrides(raw, overrides or [])
        return cls.from_dict(raw, source=_Where(str(path), overrides))

    @classmethod
    def from_preset(cls, name: str, overrides: list[str] | None = None) -> "RunConfig":
        """A packaged preset (see :func:`list_presets`) with optional overrides."""
        raw = apply_overrides({"preset": name}, overrides or [])
        return cls.from_dict(raw, source=_Where(f"preset {name}", overrides))

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """A copy with ``section.key=value`` overrides applied and validated."""
        return RunConfig.from_dict(apply_overrides(self.to_dict(), overrides), source=_Where("--set", overrides))

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


HYPERPARAMETERS = (
    "lora.r", "lora.alpha", "lora.dropout", "lora.target_modules",
    "training.max_seq_length", "training.per_device_batch_size", "training.gradient_accumulation_steps",
    "training.learning_rate", "training.num_epochs", "training.max_steps", "training.warmup_ratio",
    "training.lr_scheduler", "training.weight_decay", "training.batching", "training.seed",
    "quantization.compute_dtype", "quantization.double_quant",
)
"""The config leaves a run records as its hyperparameters (``metrics.json`` and the model card),
keyed by leaf name. Adding a hyperparameter: add its field above and its path here."""


def hyperparameters(config: "RunConfig | dict[str, Any]") -> dict[str, Any]:
    """``{leaf name: value}`` for :data:`HYPERPARAMETERS`, from a :class:`RunConfig` or its YAML mapping
    (leaves missing from a mapping are left out)."""
    raw = config.to_dict() if isinstance(config, RunConfig) else config
    out: dict[str, Any] = {}
    for path in HYPERPARAMETERS:
        section, name = path.split(".")
        values = raw.get(section)
        if isinstance(values, dict) and name in values:
            out[name] = values[name]
    return out


# ---------------------------------------------------------------------- presets
def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("hf_ita_plugin.config") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset_dict(name: str) -> dict[str, Any]:
    names = list_presets()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        raise ConfigError(bilingual(f"preset sconosciuto {name!r}", f"unknown preset {name!r}"), hint=(f"did you mean {close[0]!r}? " if close else "") + f"available: {', '.join(names)}")
    text = (resources.files("hf_ita_plugin.config") / "presets" / f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


# ---------------------------------------------------------------------- overrides
def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars) to a nested mapping."""
    out = _deep_merge({}, raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(bilingual("atteso sezione.chiave=valore",
                                        "expected section.key=value, e.g. training.learning_rate=1e-4",
                                        where=f"--set {item!r}"))
        key, _, value_text = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(bilingual("chiave vuota", "empty key", where=f"--set {item!r}"))
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else None
        except yaml.YAMLError:
            value = value_text
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: (_deep_merge({}, v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = _deep_merge({}, value) if isinstance(value, dict) else value
    return out


class _Where(str):
    """A config's source name that also knows which keys ``--set`` overrides, so errors blame the right one."""

    def __new__(cls, name: str, overrides: list[str] | None = None):
        obj = super().__new__(cls, name)
        obj.overridden = {}
        for item in overrides or []:
            key = ".".join(p for p in item.partition("=")[0].strip().split(".") if p)
            obj.overridden[key] = item
        return obj


def _blame(source: str, *keys: str) -> str:
    """``--set KEY=VALUE`` when ``--set`` gave one of ``keys`` (or a section above it), else ``source``."""
    overridden = getattr(source, "overridden", {})
    for key in keys:
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            item = overridden.get(".".join(parts[:end]))
            if item is not None:
                return f"--set {item}"
    return str(source)


# ---------------------------------------------------------------------- validation
def _build(cls: type, data: Any, *, path: str, source: str) -> Any:
    where, where_it = (path, path) if path else ("top level", "il livello principale")
    if not isinstance(data, dict):
        raise ConfigError(bilingual(f"{where_it} deve essere una mappa", f"{where} must be a mapping, got {_describe(data)}",
                                    where=_blame(source, path)))
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=1)
        full = f"{path}.{key}" if path else str(key)
        raise ConfigError(
            bilingual(f"chiave sconosciuta {full!r}", f"unknown key {full!r}", where=_blame(source, full)),
            hint=(f"did you mean {close[0]!r}? " if close else "") + f"allowed keys{(' in ' + path) if path else ''}: {', '.join(names)}",
        )
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        full = f"{path}.{name}" if path else name
        kwargs[name] = _coerce(hints[name], data[name], key=full, source=source)
    obj = cls(**kwargs)
    _check_ranges(obj, path=path, source=source)
    return obj


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def _coerce(tp: Any, value: Any, *, key: str, source: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, path=key, source=source)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key=key, source=source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(bilingual(f"{key} deve essere uno tra {', '.join(map(str, allowed))}",
                                        f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}",
                                        where=_blame(source, key)))
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(bilingual(f"{key} deve essere una lista", f"{key} must be a list, got {_describe(value)}",
                                        where=_blame(source, key)))
        return [_coerce(item_tp, v, key=f"{key}[{i}]", source=source) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(bilingual(f"{key} deve essere true o false", f"{key} must be true or false, got {_describe(value)}",
                                    where=_blame(source, key)))
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(bilingual(f"{key} deve essere un intero", f"{key} must be an integer, got {_describe(value)}",
                                    where=_blame(source, key)))
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)  # YAML 1.1 reads "2e-4" as a string
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
        if number is not None:
            raise ConfigError(bilingual(f"{key} deve essere un numero finito", f"{key} must be a finite number, "
                                        f"got {value!r}", where=_blame(source, key)))
        raise ConfigError(bilingual(f"{key} deve essere un numero", f"{key} must be a number, got {_describe(value)}",
                                    where=_blame(source, key)))
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(bilingual(f"{key} deve essere una stringa", f"{key} must be a string, got {_describe(value)}",
                                    where=_blame(source, key)))
    return value


_RANGES: dict[str, tuple[float | None, float | None]] = {
    "lora.r": (1, 1024),
    "lora.alpha": (1, None),
    "lora.dropout": (0.0, 0.9),
    "training.max_seq_length": (16, 131072),
    "training.per_device_batch_size": (1, 4096),
    "training.gradient_accumulation_steps": (1, 4096),
    "training.learning_rate": (1e-8, 1.0),
    "training.num_epochs": (0.001, 1000),
    "training.warmup_ratio": (0.0, 0.9),
    "training.eval_steps": (1, None),
    "training.save_steps": (1, None),
    "training.logging_steps": (1, None),
    "training.save_total_limit": (1, None),
    "training.push_checkpoint_steps": (1, None),
    "evaluation.max_length": (16, 131072),
    "evaluation.answer_prompts": (1, 80),
    "evaluation.answer_max_new_tokens": (8, 1024),
    "model.gpu_memory_gb": (1, 1024),
    "data.max_train_examples": (1, None),
    "data.max_eval_examples": (1, None),
    "training.seed": (0, 2**32 - 1),
    "training.weight_decay": (0.0, None),
    "training.max_grad_norm": (0.0, None),
    "evaluation.bpb_max_chars": (1, None),
}

REPORT_TO = ("none", "all", "azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "flyte", "mlflow",
             "neptune", "swanlab", "tensorboard", "trackio", "wandb")
"""Values of ``training.report_to`` (comma-separated for several): the integrations transformers knows."""


def _check_ranges(obj: Any, *, path: str, source: str) -> None:
    for f in dataclasses.fields(obj):
        key = f"{path}.{f.name}" if path else f.name
        if key not in _RANGES:
            continue
        value = getattr(obj, f.name)
        if value is None:
            continue
        low, high = _RANGES[key]
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            bounds_it = f"tra {low} e {high}" if high is not None else f">= {low}"
            raise ConfigError(bilingual(f"{key} deve essere {bounds_it}", f"{key} must be {bounds}, got {value!r}",
                                        where=_blame(source, key)))
    if path == "" and obj.data.curriculum != "none" and obj.training.batching == "packed":
        raise ConfigError(bilingual(f"data.curriculum {obj.data.curriculum!r} richiede training.batching "
                                    "padding_free o padded",
                                    f"data.curriculum {obj.data.curriculum!r} needs training.batching padding_free "
                                    "or padded", where=_blame(source, "data.curriculum", "training.batching")), hint="packing regroups sequences across the whole dataset and loses the phase order")
    if path == "":
        _check_distributed(obj, source)
    if path == "training" and (obj.max_steps == 0 or obj.max_steps < -1):
        raise ConfigError(bilingual("training.max_steps deve essere -1 (usa num_epochs) o un numero positivo di passi",
                                    "training.max_steps must be -1 (use num_epochs) or a positive number of steps, "
                                    f"got {obj.max_steps}", where=_blame(source, "training.max_steps")))
    if path == "training":
        _check_training(obj, source)
    if path == "data":
        from ..utils.text import check_encoding

        check_encoding(obj.encoding, error=ConfigError, where=_blame(source, "data.encoding"))


def _check_training(obj: "TrainingConfig", source: str) -> None:
    names = [n.strip() for n in obj.report_to.split(",")]
    unknown = [n for n in names if n not in REPORT_TO]
    if unknown:
        raise ConfigError(bilingual(f"training.report_to: integrazione sconosciuta {unknown[0]!r}",
                                    f"training.report_to: unknown integration {unknown[0]!r}",
                                    where=_blame(source, "training.report_to")),
                          hint=f"one of (comma-separated for several): {', '.join(REPORT_TO)}")
    out = Path(obj.output_dir).expanduser()
    if not obj.output_dir.strip() or (out.exists() and not out.is_dir()):
        raise ConfigError(bilingual(f"training.output_dir {obj.output_dir!r} non è una cartella",
                                    f"training.output_dir {obj.output_dir!r} is not a directory (a file has that name)"
                                    if obj.output_dir.strip() else "training.output_dir is empty",
                                    where=_blame(source, "training.output_dir")),
                          hint="choose a new folder path for --output-dir / training.output_dir")


def _check_distributed(obj: "RunConfig", source: str) -> None:
    """Combinations of ``distributed`` with other sections that cannot work, whatever the hardware."""
    d, q = obj.distributed, obj.quantization
    if d.strategy != "fsdp":
        if d.activation_checkpointing:
            raise ConfigError(bilingual("distributed.activation_checkpointing vale solo con strategy fsdp",
                                        "distributed.activation_checkpointing applies to strategy fsdp only",
                                        where=_blame(source, "distributed.activation_checkpointing")),
                              hint="with ddp use training.gradient_checkpointing")
        return
    wrong_storage = q.quant_storage == "uint8" or (q.compute_dtype != "auto" and q.quant_storage not in ("auto", q.compute_dtype))
    if q.mode != "none" and wrong_storage:
        raise ConfigError(bilingual(f"FSDP con pesi a 4 bit richiede quantization.quant_storage uguale al compute dtype "
                                    f"({q.compute_dtype}), non {q.quant_storage}",
                                    f"FSDP with 4-bit weights needs quantization.quant_storage equal to the compute dtype "
                                    f"({q.compute_dtype}), got {q.quant_storage}",
                                    where=_blame(source, "quantization.quant_storage", "distributed.strategy")),
                          hint="set quantization.quant_storage: auto (FSDP shards only float tensors of one dtype)")
    if d.activation_checkpointing and obj.training.gradient_checkpointing:
        raise ConfigError(bilingual("FSDP: scegli distributed.activation_checkpointing oppure "
                                    "training.gradient_checkpointing, non entrambi",
                                    "FSDP: use distributed.activation_checkpointing or training.gradient_checkpointing, "
                                    "not both (the blocks would be recomputed twice)",
                                    where=_blame(source, "distributed.activation_checkpointing",
                                                 "training.gradient_checkpointing")),
                          hint="set training.gradient_checkpointing: false")
