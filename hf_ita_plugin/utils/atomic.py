"""Atomic writes: an artifact is either complete or absent, never half-written.

Files are written to a temporary sibling and renamed into place; directories are assembled in a
temporary sibling directory and renamed as a whole. Artifacts get the permissions a plainly created
file or folder would have (0666/0777 minus the umask), not the 0600/0700 of temporary files.
Temporary names carry the writer's process id (``.NAME.hf-ita-PID-XXXX.tmp``) so that
:func:`remove_stale_temps` can clear what a killed run left behind without touching a live one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from ..errors import bilingual

_TEMP_RE = re.compile(r"^\..+\.hf-ita-(\d+)-[^/]*\.(?:tmp|old)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def normal_permissions(path: str | os.PathLike) -> None:
    """Give ``path`` (and, for a folder, everything in it) the permissions of a plainly created file.

    Files get 0666 minus the umask (0777 minus the umask if they were executable), folders 0777
    minus the umask; links are left alone.
    """
    mask = _umask()
    path = Path(path)

    def fix(p: Path) -> None:
        if p.is_symlink():
            return
        mode = p.stat().st_mode
        executable = p.is_dir() or mode & 0o100
        os.chmod(p, (0o777 if executable else 0o666) & ~mask)

    fix(path)
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                fix(Path(root) / name)


def _temp_prefix(name: str) -> str:
    return f".{name}.hf-ita-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temps(folder: str | os.PathLike) -> list[Path]:
    """The temporary files/folders in ``folder`` left by writers that are no longer running."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir()
                  if (match := _TEMP_RE.match(entry.name)) and not _pid_alive(int(match.group(1))))


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files/folders in ``folder`` left by writers that are no longer running."""
    removed: list[Path] = []
    for entry in stale_temps(folder):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


@contextlib.contextmanager
def temp_directory(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A scratch folder ``PARENT/.NAME.hf-ita-PID-XXXX.tmp`` removed when the block ends, however it ends.

    A run killed outright leaves it behind; :func:`remove_stale_temps` on ``parent`` clears it.
    """
    parent = Path(parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(name), suffix=".tmp", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def cleanup_on_terminate() -> Iterator[None]:
    """Inside the block SIGTERM/SIGHUP exit through ``SystemExit`` so ``finally`` clean-ups run.

    (SIGKILL cannot be caught: :func:`remove_stale_temps` at the next run handles that case.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    saved = {sig: signal.signal(sig, _exit) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed onto ``target``.

    On error the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        normal_permissions(tmp_path)  # mkstemp creates 0600, and writers may replace the file
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as pretty UTF-8 JSON to ``target`` atomically."""
    return write_text(target, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` as a whole when the block succeeds.

    With ``overwrite=False`` an existing non-empty ``target`` is an error raised before any work.
    Everything in the new directory gets normal permissions (see :func:`normal_permissions`).
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(bilingual(f"{target} esiste già e non è vuota", f"{target} already exists and is not empty"))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        normal_permissions(tmp)  # mkdtemp is 0700; libraries such as safetensors write 0600 files
        if target.exists():
            trash = target.with_name(f"{_temp_prefix(target.name)}trash.old")
            os.replace(target, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
