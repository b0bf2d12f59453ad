"""Output-folder manifests: ``--overwrite`` replaces only what the project wrote.

A folder the project writes as a whole (``hf-ita data prepare --output-dir DIR``...) holds a small
``.hf-ita-manifest.json`` listing the files it wrote. :func:`check_replaceable` decides whether such
a folder may be replaced: an empty or missing folder always, a folder whose every entry is listed in
its manifest with ``overwrite``; a folder without a manifest that holds anything, or with entries the
manifest does not list, never (those files are not ours to delete).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import HfItaError, bilingual

MANIFEST_NAME = ".hf-ita-manifest.json"


def write_manifest(folder: str | os.PathLike, *, kind: str) -> Path:
    """Write ``FOLDER/.hf-ita-manifest.json`` listing every entry now in ``folder`` (call it last)."""
    folder = Path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST_NAME)
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps({"written_by": "hf-ita", "kind": kind, "files": files}, indent=2) + "\n",
                    encoding="utf-8")
    return path


def record_in_manifest(folder: str | os.PathLike, names: list[str] | tuple[str, ...], *, kind: str) -> Path:
    """Add ``names`` to ``FOLDER``'s manifest (created when missing), written atomically.

    For folders filled step by step (a training run): call it before writing each entry, so a crash
    never leaves an entry of ours the manifest does not list.
    """
    from . import atomic

    folder = Path(folder)
    listed = read_manifest(folder) or []
    files = sorted(set(listed) | set(names))
    return atomic.write_json(folder / MANIFEST_NAME, {"written_by": "hf-ita", "kind": kind, "files": files})


def manifest_kind(folder: str | os.PathLike) -> str | None:
    """The ``kind`` recorded in ``folder``'s manifest (``training-run``, ``prepared-data``...), or ``None``."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def read_manifest(folder: str | os.PathLike) -> list[str] | None:
    """The entries listed in ``folder``'s manifest, or ``None`` when it has no readable manifest."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def check_replaceable(folder: str | os.PathLike, *, overwrite: bool, error: type[HfItaError] = HfItaError,
                      flag: str = "--output-dir") -> None:
    """Raise ``error`` unless ``folder`` may be (re)written: missing, empty, or (with ``overwrite``) only ours."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise error(bilingual(f"{flag} {folder} esiste e non è una cartella",
                              f"{flag} {folder} exists and is not a directory"),
                    hint=f"choose a folder path for {flag}")
    if not folder.is_dir():
        return
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    if not overwrite:
        raise error(bilingual(f"la cartella di output {folder} non è vuota", f"output directory {folder} is not empty"),
                    hint=f"choose another {flag}, or pass --overwrite")
    listed = read_manifest(folder)
    if listed is None:
        raise error(bilingual(f"{folder} non è stata scritta da hf-ita: --overwrite non cancella i file altrui",
                              f"{folder} was not written by hf-ita (no {MANIFEST_NAME}): --overwrite does not delete "
                              f"files it did not write; it holds {_sample(entries)}"),
                    hint=f"choose another (empty or new) {flag}")
    foreign = [name for name in entries if name != MANIFEST_NAME and name not in listed]
    if foreign:
        raise error(bilingual(f"{folder} contiene file non scritti da hf-ita: --overwrite non li cancella",
                              f"{folder} holds files hf-ita did not write: --overwrite does not delete them: "
                              f"{_sample(foreign)}"),
                    hint=f"move those files elsewhere, or choose another {flag}")


def _sample(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")
