"""Where a model's pieces are: the adapter of a run folder, its config, its base model's local checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import HfItaError, ModelError
from ..rundir import RunDir


def find_adapter_dir(path: str | Path) -> Path | None:
    """The peft adapter directory of a training OUTPUT_DIR (``adapter/``) or of an adapter dir itself."""
    path = Path(path)
    for candidate in (RunDir(path).adapter_dir, path):
        if (candidate / RunDir.ADAPTER_CONFIG).is_file():
            return candidate
    return None


def read_adapter_config(adapter_dir: Path) -> dict:
    file = adapter_dir / RunDir.ADAPTER_CONFIG
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{file}: adapter_config.json illeggibile / unreadable ({exc})") from exc


def resolve_base_dir(adapter_dir: Path) -> Path:
    """Local full-precision checkpoint of the adapter's base model.

    Looked up, in order: ``metrics.json`` ``base_model_path`` of the enclosing OUTPUT_DIR, the adapter's
    ``base_model_name_or_path`` as a local directory, the embedded model for its Hub id, the local
    Hugging Face cache.
    """
    from ..models.embedded import EMBEDDED_HUB_ID, ensure_embedded_model

    config = read_adapter_config(adapter_dir)
    base = config.get("base_model_name_or_path")
    try:
        metrics = RunDir.of_adapter(adapter_dir).read_metrics()
    except HfItaError:  # an unreadable metrics.json only loses this hint
        metrics = None
    local = metrics.base_model_path if metrics is not None else None
    if local and (Path(local) / "config.json").is_file():
        return Path(local)
    if base and (Path(base) / "config.json").is_file():
        return Path(base)
    if base == EMBEDDED_HUB_ID:
        return ensure_embedded_model(verbose=False)
    if base:
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(base, local_files_only=True))
        except Exception:
            pass
    raise ModelError(
        f"{adapter_dir / RunDir.ADAPTER_CONFIG}: modello base {base!r} non trovato in locale / base model not found locally",
        hint="download the base model (hf download MODEL) or set base_model_name_or_path to a local directory",
    )
