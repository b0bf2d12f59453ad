"""What a publish contains: the files of an OUTPUT_DIR, checked and cleaned for the public.

:func:`stage_publish` turns a training OUTPUT_DIR into ``{path in repo: content}``:

- weights are safetensors only (pickle formats are refused, safetensors headers are checked);
- ``adapter_config.json`` points at the base model's Hub id, never at a path on this machine;
- ``metrics.json`` / ``run_config.yaml`` lose their local paths;
- the model card is rendered for the repo;
- a final scan refuses any file that still holds the token or a local path.

Nothing here talks to the Hub; :mod:`hf_ita_plugin.hub.push` sends the result in one commit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ModelError, bilingual
from ..models.weights import PICKLE_SUFFIXES
from ..rundir import RunDir, RunMetrics
from .card import CARD_KINDS, render_card
from .facts import collect_gguf_files, facts_from_output_dir
from .paths import is_local_path, validate_repo_id

BINARY_SUFFIXES = (".safetensors", ".gguf", ".png", ".jpg", ".jpeg")
VOCABULARY_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json")
"""Token lists: any string can be a token (``/home`` included), so they are not scanned for local paths."""
_SKIP_NAMES = {RunDir.CARD, ".gitattributes"}  # peft writes its own README into adapter dirs
_SCAN_BINARY_BYTES = 32 * 1024 * 1024


@dataclass
class PublishSet:
    """Files of one publish: path in repo -> local file or bytes, plus the rendered card."""

    kind: str
    files: dict[str, Path | bytes] = field(default_factory=dict)
    base_model: str = ""
    notes: list[str] = field(default_factory=list)

    def size(self) -> int:
        return sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in self.files.values())


def check_no_pickle(paths: list[Path], *, where: str) -> None:
    """Refuse pickle-based weight files (they run code when loaded)."""
    for path in paths:
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(
                f"{where}: {path.name} è in formato pickle, rifiutato / is a pickle file, refused (safetensors only)",
                hint="re-save the model with save_pretrained(..., safe_serialization=True) and remove the pickle file",
            )


def check_safetensors(path: Path) -> None:
    """Check ``path`` in full (:func:`hf_ita_plugin.models.weights.verify_safetensors`): header, size, every tensor."""
    from ..models.weights import verify_safetensors

    verify_safetensors(path)


def _model_files(folder: Path, *, where: str) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    check_no_pickle(files, where=where)
    weights = [p for p in files if p.suffix == ".safetensors"]
    if not weights:
        raise ModelError(f"{where}: nessun file .safetensors / no .safetensors weights found")
    for w in weights:
        check_safetensors(w)
    return [p for p in files if p.name not in _SKIP_NAMES]


def _clean_adapter_config(path: Path, base_model: str) -> bytes:
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    return (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode()


def _clean_metrics(metrics: RunMetrics, base_model: str) -> bytes:
    metrics = metrics.to_dict()
    metrics.pop("base_model_path", None)
    metrics["base_model"] = base_model
    _strip_local_paths(metrics)
    return (json.dumps(metrics, indent=2, ensure_ascii=False) + "\n").encode()


def _clean_run_config(config: dict[str, Any], base_model: str) -> bytes:
    model = config.get("model") or {}
    if model.get("name_or_path") and is_local_path(model["name_or_path"]):
        model["name_or_path"] = base_model
    _strip_local_paths(config)
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True).encode()


def _strip_local_paths(node: Any) -> None:
    """Replace absolute/relative local paths in a JSON/YAML tree by their last component."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and is_local_path(value):
                node[key] = Path(value).name
            else:
                _strip_local_paths(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str) and is_local_path(value):
                node[i] = Path(value).name
            else:
                _strip_local_paths(value)


def _ensure_merged(run: RunDir, *, produce: bool) -> Path | None:
    out, merged = run.path, run.merged_dir
    if (merged / "config.json").is_file():
        return merged
    if not produce:
        return None
    if not run.has_adapter():
        raise ModelError(f"{merged}: modello unito mancante e nessun adattatore da unire / merged model missing and no adapter to merge")
    try:
        from ..gguf.merge import merge_adapter
        from ..models.resolve import resolve_base_dir
    except ImportError as exc:
        raise ModelError(f"{out}: manca {merged} e hf_ita_plugin.gguf non è disponibile / merged/ is missing and the merge module "
                         f"is unavailable ({exc})", hint="merge the adapter first, into OUTPUT_DIR/merged") from None
    from ..utils.atomic import atomic_directory

    print(f"hf-ita: unisco l'adattatore al modello base / merging the adapter into its base -> {merged}")
    adapter = run.adapter_dir
    with atomic_directory(merged, overwrite=True) as tmp:
        merge_adapter(adapter, resolve_base_dir(adapter), tmp)
    return merged


def _ensure_gguf(run: RunDir, quants: list[str] | None) -> Path | None:
    out, folder = run.path, run.gguf_dir
    if not quants:  # None: include what is there; []: include what is there, which must not be nothing
        if any(folder.glob("*.gguf")):
            return folder
        if quants is None:
            return None
        raise ModelError(f"{folder}: nessun file .gguf / no .gguf files to publish",
                         hint="name the types to export, e.g. --gguf Q4_K_M,q8_0")
    try:
        from ..gguf import convert, parse_quant_types
    except ImportError as exc:
        raise ModelError(f"{out}: hf_ita_plugin.gguf non è disponibile / the GGUF export module is unavailable ({exc})",
                         hint="produce the GGUF files first into OUTPUT_DIR/gguf/") from None
    wanted = [q.name for q in parse_quant_types(quants)]
    present = {g.quant for g in collect_gguf_files(folder)}
    missing = [q for q in wanted if q not in present]
    if missing:
        print(f"hf-ita: esporto in GGUF / exporting to GGUF: {', '.join(missing)}")
        convert(out, quant=missing, out_dir=folder)
    return folder


def stage_publish(output_dir: str | os.PathLike, repo_id: str, *, kind: str = "adapter", merged: bool = False,
                  gguf: list[str] | None = None, base_model: str | None = None, keep_card: bool = False,
                  lookup: bool = True, endpoint: str | None = None, token: str | None = None,
                  finetune_repo: str | None = None) -> PublishSet:
    """Collect, check and clean the files to publish from a training OUTPUT_DIR.

    ``kind``: ``adapter`` (adapter at the repo root; ``merged/`` and ``gguf/`` alongside when present
    or requested), ``merged`` (merged model at the root) or ``gguf`` (GGUF files at the root).
    ``merged``/``gguf`` produce the merged model / the GGUF types when OUTPUT_DIR lacks them
    (``gguf=[]``: the GGUF files already in OUTPUT_DIR/gguf, at least one). Without these options
    whatever OUTPUT_DIR/merged and OUTPUT_DIR/gguf already hold is published too; with ``gguf``
    naming types, only the GGUF files of those types.

    A ``gguf`` card names as its ``base_model`` the fine-tune the files were made from: ``finetune_repo``,
    else the newest adapter or merged model published from this run (``publications.json``).
    """
    if kind not in CARD_KINDS:
        raise ConfigError(bilingual("valore non valido", f"must be one of {', '.join(CARD_KINDS)}; got {kind!r}", where="--kind"))
    if finetune_repo is not None:
        finetune_repo = validate_repo_id(finetune_repo, what="--finetune-repo")
    run = RunDir(output_dir)
    out = run.path
    if not out.is_dir():
        raise ConfigError(f"{out}: cartella di output inesistente / OUTPUT_DIR does not exist")
    adapter = run.adapter_dir
    if kind == "adapter" and not run.has_adapter():
        raise ModelError(f"{adapter}: adapter_config.json mancante / missing: not a training OUTPUT_DIR",
                         hint="pass the OUTPUT_DIR of a finished `hf-ita train` run (it contains adapter/)")
    facts = facts_from_output_dir(out, repo_id=repo_id, base_model=base_model, lookup=lookup, endpoint=endpoint, token=token)
    pset = PublishSet(kind=kind, base_model=facts.base_model)

    merged_dir = _ensure_merged(run, produce=merged or kind == "merged")
    if kind == "gguf" and not merged:
        merged_dir = None  # a GGUF repo carries the merged weights only when asked to
    if kind == "merged" and merged_dir is None:
        raise ModelError(f"{run.merged_dir}: modello unito mancante / merged model missing")
    gguf_dir = _ensure_gguf(run, gguf)
    if kind == "gguf" and gguf_dir is None:
        raise ModelError(f"{run.gguf_dir}: nessun file .gguf / no .gguf files", hint="pass --gguf Q4_K_M (or produce them with the gguf export)")

    if kind == "adapter":
        for path in _model_files(adapter, where=str(adapter)):
            rel = path.relative_to(adapter).as_posix()
            pset.files[rel] = _clean_adapter_config(path, facts.base_model) if rel == "adapter_config.json" else path
    if merged_dir is not None:
        prefix = "" if kind == "merged" else "merged/"
        for path in _model_files(merged_dir, where=str(merged_dir)):
            pset.files[prefix + path.relative_to(merged_dir).as_posix()] = path
    gguf_files = []
    if gguf_dir is not None:
        prefix = "" if kind == "gguf" else "gguf/"
        gguf_files = collect_gguf_files(gguf_dir, prefix=prefix, only=_quant_names(gguf))
        for g in gguf_files:
            pset.files[g.path] = gguf_dir / Path(g.path).name
            if g.modelfile:
                pset.files[g.modelfile] = gguf_dir / Path(g.modelfile).name

    metrics = run.read_metrics()
    if metrics is not None:
        pset.files[run.METRICS] = _clean_metrics(metrics, facts.base_model)
    if run.config_path.is_file():
        pset.files[run.CONFIG] = _clean_run_config(run.read_config(), facts.base_model)
    if run.loss_curve_path.is_file():
        pset.files[run.LOSS_CURVE] = run.loss_curve_path
    if run.answers_path.is_file():
        pset.files[run.ANSWERS] = run.answers_path

    if keep_card and run.card_path.is_file():
        from huggingface_hub import ModelCard

        try:
            card = ModelCard.load(run.card_path)
        except Exception as exc:
            raise ConfigError(f"{run.card_path}: metadati della scheda non validi / invalid card metadata ({exc})") from None
        pset.files[run.CARD] = str(card).encode()
    else:
        merged_path = None
        if merged_dir is not None:
            merged_path = "" if kind == "merged" else "merged"
        finetune = None
        if kind == "gguf":
            finetune = finetune_repo or run.published_finetune()
            finetune = finetune if finetune != repo_id else None  # a repo is not its own base
        card = render_card(facts, kind, gguf_files=gguf_files, merged_path=merged_path, finetune_repo=finetune)
        pset.files[run.CARD] = str(card).encode()
    return pset


def _quant_names(gguf: list[str] | None) -> list[str] | None:
    if not gguf:
        return None
    try:
        from ..gguf import parse_quant_types

        return [q.name for q in parse_quant_types(gguf)]
    except ImportError:
        return [q.upper() for q in gguf]


def scan_for_secrets(pset: PublishSet, *, token: str | None, local_roots: list[str]) -> None:
    """Refuse the publish if any file holds the token, or a text file holds a path under ``local_roots``."""
    needles_text = [r.rstrip("/") + "/" for r in local_roots if r and len(r) > 1]
    for path_in_repo, content in pset.files.items():
        binary = path_in_repo.endswith(BINARY_SUFFIXES)
        if isinstance(content, bytes):
            data = content
        else:
            with open(content, "rb") as fh:
                data = fh.read(_SCAN_BINARY_BYTES if binary else None)
        if token and token.encode() in data:
            raise ConfigError(f"{path_in_repo}: contiene il token Hugging Face / contains the Hugging Face token: refusing to publish",
                              hint="remove the token from the file (tokens belong in HF_TOKEN or `hf auth login`, never in files)")
        if binary or path_in_repo.rsplit("/", 1)[-1] in VOCABULARY_FILES:
            continue
        for needle in needles_text:
            if needle.encode() in data:
                raise ConfigError(f"{path_in_repo}: contiene un percorso locale / contains a local path ({needle}): refusing to publish",
                                  hint="replace local paths with Hub ids (e.g. --base-model ORG/NAME)")
