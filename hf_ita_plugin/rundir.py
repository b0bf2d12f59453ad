"""A training run folder (OUTPUT_DIR): its layout and its ``metrics.json`` schema, in one place.

Everything that reads or writes a run folder goes through :class:`RunDir` (where each artifact
lives) and :class:`RunMetrics` (what ``metrics.json`` holds)::

    OUTPUT_DIR/
      adapter/            the LoRA adapter + tokenizer (peft ``save_pretrained``)
      checkpoints/        trainer checkpoints, and eval_before.json (the "before" numbers, for --resume)
      metrics.json        RunMetrics (schema_version, base model, data, train, eval, hyperparameters...)
      run_config.yaml     the resolved RunConfig
      loss_curve.png      training / eval loss
      answers.json        the greedy answers the answer-quality check scored, before and after training
      README.md           the model card
      eval.md             the base-vs-fine-tune table of ``hf-ita eval``
      merged/, gguf/      the merged model and GGUF files, when produced

Example::

    run = RunDir("outputs/run")
    metrics = run.read_metrics()          # None when the run has no metrics.json yet
    print(metrics.base_model, metrics.eval.after)

``metrics.json`` files written before the schema was versioned (no ``schema_version``) are read
as version 1. Keys this module does not know are kept (``extra``) and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError, HfItaError, bilingual, describe_yaml_error
from .utils import atomic

SCHEMA_VERSION = 1
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
"""Version of the ``metrics.json`` layout this module writes (files without ``schema_version`` are version 1)."""


# ---------------------------------------------------------------------- reading files
def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file whose top level is an object; :class:`ConfigError` naming the file and line otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(bilingual(f"JSON non valido alla riga {exc.lineno}, colonna {exc.colno}",
                                    f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: atteso un oggetto JSON / expected a JSON object at the top level")
    return data


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (``{}`` when empty); :class:`ConfigError` naming file and line otherwise."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(describe_yaml_error(path, exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: atteso un mapping / expected a mapping at the top level")
    return data


# ---------------------------------------------------------------------- metrics.json schema
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "number": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "dict": ((dict,), "an object"),
    "list": ((list,), "a list"),
}


def _field(kind: str | type, default: Any = None, **kwargs) -> Any:
    """A schema field: ``kind`` is a key of ``_KINDS``, ``"any"`` or a nested :class:`_Record`."""
    if isinstance(kind, type):
        return field(default_factory=kind, metadata={"kind": kind})
    if kind in ("dict", "list") and default is None and "default_factory" not in kwargs:
        kwargs["default_factory"] = dict if kind == "dict" else list
        return field(metadata={"kind": kind}, **kwargs)
    return field(default=default, metadata={"kind": kind}, **kwargs)


def _malformed(source: str, key: str, expected: str, value: Any) -> ConfigError:
    shown = type(value).__name__ if isinstance(value, (dict, list)) else f"{type(value).__name__} {value!r}"
    return ConfigError(f"{source}: campo {key!r} non valido / malformed field {key!r}: expected {expected}, got {shown}",
                       hint="fix or remove the field (the file is written by `hf-ita train` and `hf-ita eval`)")


@dataclass
class _Record:
    """Typed fields with ``from_dict``/``to_dict``; unknown keys live in ``extra``, absent keys stay absent."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    """Keys this schema does not name (written by other tools or later versions), kept as they are."""
    _absent: frozenset = field(default=frozenset(), repr=False, compare=False, kw_only=True)

    @classmethod
    def _schema(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "kind" in f.metadata]

    @classmethod
    def _parse(cls, data: Any, *, source: str, where: str):
        if not isinstance(data, dict):
            raise _malformed(source, where or "top level", "an object", data)
        kwargs: dict[str, Any] = {}
        for f in cls._schema():
            if f.name not in data:
                continue
            value, kind, key = data[f.name], f.metadata["kind"], f"{where}.{f.name}" if where else f.name
            if isinstance(kind, type):
                kwargs[f.name] = kind._parse(value, source=source, where=key)
                continue
            if value is not None and kind != "any":
                types, expected = _KINDS[kind]
                if not isinstance(value, types) or (isinstance(value, bool) and kind in ("int", "number")):
                    raise _malformed(source, key, expected, value)
            kwargs[f.name] = value
        names = {f.name for f in cls._schema()}
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in names},
                   _absent=frozenset(names - set(data)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (fields in schema order, then ``extra``); fields absent when read stay absent."""
        out: dict[str, Any] = {}
        for f in self._schema():
            value = getattr(self, f.name)
            if f.name in self._absent and value == (f.default_factory() if f.default is dataclasses.MISSING else f.default):
                continue
            out[f.name] = value.to_dict() if isinstance(value, _Record) else value
        out.update(self.extra)
        return out


@dataclass
class DataSummary(_Record):
    """``metrics.json`` ``data``: what the run trained and was evaluated on."""

    train_examples: int | None = _field("int")
    eval_examples: int | None = _field("int")
    train_tokens: int | None = _field("int")
    dropped_truncated: int | None = _field("int")
    train_source: str | None = _field("str")
    eval_source: str | None = _field("str")
    curriculum: list[dict[str, Any]] = _field("list")
    """Curriculum phases in training order: ``{"phase": name, "examples": n}``."""


@dataclass
class TrainSummary(_Record):
    """``metrics.json`` ``train``: how training went."""

    steps: int | None = _field("int")
    epochs: float | None = _field("number")
    final_loss: float | None = _field("number")
    mean_loss: float | None = _field("number")
    eval_loss: float | None = _field("number")
    trained_tokens: float | None = _field("number")
    tokens_per_second: float | None = _field("number")
    train_runtime_s: float | None = _field("number")
    peak_memory_mb: dict[str, float] | None = _field("any")
    resumed: bool | None = _field("bool")


@dataclass
class EvalSummary(_Record):
    """``metrics.json`` ``eval``: held-out numbers before and after training, and their relative change."""

    before: dict[str, Any] = _field("dict")
    after: dict[str, Any] = _field("dict")
    change: dict[str, float] = _field("dict")


@dataclass
class RunMetrics(_Record):
    """The contents of ``metrics.json``. ``to_dict``/``from_dict`` map it to and from JSON."""

    schema_version: int = _field("int", SCHEMA_VERSION)
    base_model: str | None = _field("str")
    """Public Hub id of the base model (never a machine path)."""
    base_model_path: str | None = _field("str")
    """Where the base model was loaded from on this machine (dropped when published)."""
    base_model_weights: str | None = _field("str")
    """Where the weights came from when not the Hub model itself (the embedded model's GGUF)."""
    template: str | None = _field("str")
    quantization: str | None = _field("str")
    data: DataSummary = _field(DataSummary)
    train: TrainSummary = _field(TrainSummary)
    eval: EvalSummary = _field(EvalSummary)
    hyperparameters: dict[str, Any] = _field("dict")
    """See :func:`metrics_hyperparameters`: the config's hyperparameters as they were used."""
    hardware: dict[str, Any] = _field("dict")
    loss_history: list[dict[str, Any]] = _field("list")
    wall_time_s: float | None = _field("number")

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "metrics.json") -> "RunMetrics":
        """Parse and check a ``metrics.json`` object; :class:`ConfigError` naming ``source`` and the field."""
        metrics = cls._parse(data, source=source, where="")
        if not isinstance(metrics.schema_version, int):
            raise _malformed(source, "schema_version", "an integer", metrics.schema_version)
        if metrics.schema_version > SCHEMA_VERSION or metrics.schema_version < 1:
            raise ConfigError(bilingual(f"schema_version {metrics.schema_version} non supportata (questo hf-ita legge "
                                        f"le versioni da 1 a {SCHEMA_VERSION})",
                                        f"schema_version {metrics.schema_version} not supported (this hf-ita reads "
                                        f"versions 1 to {SCHEMA_VERSION})", where=source), hint="upgrade hf-ita-plugin")
        metrics._absent = metrics._absent - {"schema_version"}  # a file read is written back with its version
        return metrics


def metrics_hyperparameters(config) -> dict[str, Any]:
    """``metrics.json`` ``hyperparameters`` of a run: the config's hyperparameters
    (:func:`~hf_ita_plugin.config.schema.hyperparameters`), ``auto`` compute dtype and batching resolved to
    what was used."""
    from .config import hyperparameters

    values = hyperparameters(config)
    if "compute_dtype" in values:
        from .models.loader import resolve_compute_dtype

        values["compute_dtype"] = str(resolve_compute_dtype(values["compute_dtype"], training=True)).replace("torch.", "")
    if "batching" in values:
        from .training.trainer import resolve_batching

        values["batching"] = resolve_batching(values["batching"])
    return values


# ---------------------------------------------------------------------- the folder
class RunDir:
    """The layout of a training OUTPUT_DIR: one property per artifact, and the readers/writers of its files."""

    ADAPTER: ClassVar[str] = "adapter"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    METRICS: ClassVar[str] = "metrics.json"
    CONFIG: ClassVar[str] = "run_config.yaml"
    LOSS_CURVE: ClassVar[str] = "loss_curve.png"
    CARD: ClassVar[str] = "README.md"
    EVAL_BEFORE: ClassVar[str] = "eval_before.json"
    EVAL_REPORT: ClassVar[str] = "eval.md"
    ANSWERS: ClassVar[str] = "answers.json"
    PUBLICATIONS: ClassVar[str] = "publications.json"
    """Where ``hf-ita push`` recorded what it published from this run (repo, kind, revision)."""
    MERGED: ClassVar[str] = "merged"
    GGUF: ClassVar[str] = "gguf"
    ADAPTER_CONFIG: ClassVar[str] = "adapter_config.json"
    """peft's adapter config file, inside :attr:`adapter_dir`."""
    KIND: ClassVar[str] = "training-run"
    """The ``kind`` of the manifest (:mod:`hf_ita_plugin.utils.manifest`) that marks a folder as a run of ours."""
    TRAINER_STATE: ClassVar[str] = "trainer_state.json"
    """Written last into a checkpoint by transformers' Trainer."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @classmethod
    def of_adapter(cls, adapter_dir: str | os.PathLike) -> "RunDir":
        """The run folder an adapter directory sits in (its parent)."""
        return cls(Path(adapter_dir).parent)

    # ------------------------------------------------------------------ layout
    @property
    def adapter_dir(self) -> Path:
        return self.path / self.ADAPTER

    @property
    def adapter_config_path(self) -> Path:
        return self.adapter_dir / self.ADAPTER_CONFIG

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def config_path(self) -> Path:
        """The resolved run configuration (``run_config.yaml``)."""
        return self.path / self.CONFIG

    @property
    def loss_curve_path(self) -> Path:
        return self.path / self.LOSS_CURVE

    @property
    def card_path(self) -> Path:
        """The model card (``README.md``)."""
        return self.path / self.CARD

    @property
    def eval_before_path(self) -> Path:
        """The "before" evaluation cached for ``--resume`` (inside :attr:`checkpoints_dir`)."""
        return self.checkpoints_dir / self.EVAL_BEFORE

    @property
    def answers_path(self) -> Path:
        """The answers the answer-quality check scored (``answers.json``: stage -> setting -> prompt/answer)."""
        return self.path / self.ANSWERS

    @property
    def eval_report_path(self) -> Path:
        return self.path / self.EVAL_REPORT

    @property
    def merged_dir(self) -> Path:
        return self.path / self.MERGED

    @property
    def gguf_dir(self) -> Path:
        return self.path / self.GGUF

    # ------------------------------------------------------------------ state
    def has_adapter(self) -> bool:
        """Whether ``adapter/`` holds a peft adapter (``adapter_config.json``)."""
        return self.adapter_config_path.is_file()

    def is_finished(self) -> bool:
        """Whether a run wrote its adapter here (``adapter/`` exists)."""
        return self.adapter_dir.exists()

    def has_checkpoint(self) -> bool:
        """Whether ``checkpoints/`` holds a trainer checkpoint to resume."""
        folder = self.checkpoints_dir
        return folder.is_dir() and any(p.name.startswith("checkpoint-") for p in folder.iterdir())

    def checkpoints(self) -> list[Path]:
        """The ``checkpoints/checkpoint-N`` folders, oldest (lowest N) first, complete or not."""
        folder = self.checkpoints_dir
        if not folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir()]
        return [p for _, p in sorted(found)]

    @classmethod
    def is_complete_checkpoint(cls, path: str | os.PathLike) -> bool:
        """Whether a checkpoint folder holds its trainer state and whole (not truncated) safetensors weights."""
        from .models.weights import verify_weights_dir

        path = Path(path)
        if not (path / cls.TRAINER_STATE).is_file() or not list(path.glob("*.safetensors")):
            return False
        try:
            verify_weights_dir(path, values=False)
        except HfItaError:
            return False
        return True

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (see :meth:`is_complete_checkpoint`), or ``None``."""
        return next((p for p in reversed(self.checkpoints()) if self.is_complete_checkpoint(p)), None)

    def incomplete_leftovers(self) -> list[Path]:
        """What a crash left in ``checkpoints/``: incomplete ``checkpoint-N`` folders and temporary folders."""
        from .utils.atomic import stale_temps

        return [p for p in self.checkpoints() if not self.is_complete_checkpoint(p)] + stale_temps(self.checkpoints_dir)

    def remove_incomplete_checkpoints(self) -> list[Path]:
        """Delete :meth:`incomplete_leftovers` (all of them written by hf-ita); returns what was removed."""
        leftovers = self.incomplete_leftovers()
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return leftovers

    def foreign_entries(self) -> list[str]:
        """Entries of the folder that its manifest does not list (all of them when it has none).

        Temporary files of hf-ita writers that are no longer running (a crash) are not counted.
        """
        from .utils.atomic import stale_temps
        from .utils.manifest import MANIFEST_NAME, read_manifest

        if not self.path.is_dir():
            return []
        listed = set(read_manifest(self.path) or []) | {p.name for p in stale_temps(self.path)}
        return sorted(p.name for p in self.path.iterdir() if p.name != MANIFEST_NAME and p.name not in listed)

    def is_ours(self) -> bool:
        """Whether the folder is marked as a training run by its manifest."""
        from .utils.manifest import manifest_kind

        return manifest_kind(self.path) == self.KIND

    def record(self, *names: str) -> None:
        """List ``names`` in the run's manifest (call it before writing them)."""
        from .utils.manifest import record_in_manifest

        self.path.mkdir(parents=True, exist_ok=True)
        record_in_manifest(self.path, names, kind=self.KIND)

    # ------------------------------------------------------------------ files
    def read_metrics(self) -> RunMetrics | None:
        """``metrics.json`` parsed and checked; ``None`` when the run has none. Errors name the file and field."""
        path = self.metrics_path
        if not path.is_file():
            return None
        return RunMetrics.from_dict(read_json_object(path), source=str(path))

    def write_metrics(self, metrics: RunMetrics) -> Path:
        """Write ``metrics.json`` atomically."""
        return atomic.write_json(self.metrics_path, metrics.to_dict())

    def read_config(self) -> dict[str, Any]:
        """``run_config.yaml`` as a mapping (``{}`` when absent); errors name the file and line."""
        return read_yaml_mapping(self.config_path) if self.config_path.is_file() else {}

    def write_config(self, config) -> Path:
        """Write the resolved :class:`~hf_ita_plugin.config.RunConfig` atomically."""
        return atomic.write_text(self.config_path, config.to_yaml())

    def read_eval_before(self) -> dict[str, Any] | None:
        """The cached "before" evaluation, or ``None``."""
        return read_json_object(self.eval_before_path) if self.eval_before_path.is_file() else None

    def write_eval_before(self, values: dict[str, Any]) -> Path:
        return atomic.write_json(self.eval_before_path, values)

    def write_answers(self, stage: str, answers: dict[str, Any]) -> Path:
        """Add one stage's answers (``before``/``after``) to ``answers.json`` atomically, keeping the other's."""
        current = read_json_object(self.answers_path) if self.answers_path.is_file() else {}
        self.record(self.ANSWERS)
        return atomic.write_json(self.answers_path, {**current, stage: answers})

    @property
    def publications_path(self) -> Path:
        return self.path / self.PUBLICATIONS

    def read_publications(self) -> list[dict[str, str]]:
        """What was published from this run, oldest first (``[]`` when nothing was)."""
        if not self.publications_path.is_file():
            return []
        entries = read_json_object(self.publications_path).get("publications", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("repo_id"), str)
                                                    and isinstance(e.get("kind"), str) for e in entries):
            raise ConfigError(f"{self.publications_path}: 'publications' deve essere una lista di oggetti con repo_id e kind / "
                              "must be a list of objects with repo_id and kind")
        return entries

    def record_publication(self, repo_id: str, kind: str, revision: str | None) -> Path:
        """Append a publication to :attr:`publications_path` (atomically; the file is listed in the manifest)."""
        entries = self.read_publications()
        entries.append({"repo_id": repo_id, "kind": kind, "revision": revision or ""})
        self.record(self.PUBLICATIONS)
        return atomic.write_json(self.publications_path, {"publications": entries})

    def published_finetune(self) -> str | None:
        """The Hub repo of the newest adapter or merged model published from this run, or ``None``."""
        found = [e["repo_id"] for e in self.read_publications() if e["kind"] in ("adapter", "merged")]
        return found[-1] if found else None


__all__ = ["SCHEMA_VERSION", "RunDir", "RunMetrics", "DataSummary", "TrainSummary", "EvalSummary",
           "metrics_hyperparameters", "read_json_object", "read_yaml_mapping"]
