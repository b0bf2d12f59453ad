"""The wheel of the running code, and where a job or a Space installs it from.

A job must run exactly the code that launched it, and hf-ita is not on PyPI. So the launcher
builds a wheel of its own source (:func:`build_wheel`, cached by the source's content), uploads it
once to the public model repo ``OWNER/hf-ita-wheels`` under a folder named by its sha256
(:func:`upload_wheel`), and the job pip-installs it from the Hub's resolve URL
(:func:`wheel_requirement`). The wheels repo is **public by design**: it holds only this open-source
(Apache-2.0) package, so pip can fetch it with no token, in a job and in a Space build alike, and no
token has to be written into a command line.

Where no source tree is at hand (an installed wheel, e.g. inside a Space), :func:`running_wheel`
finds the wheel the package was installed from through its ``direct_url.json`` (PEP 610).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import JobsError

DIST_NAME = "hf-ita-plugin"
WHEELS_REPO_NAME = "hf-ita-wheels"
"""Name of the public model repo, in the launching user's namespace, that holds the wheels."""
_SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE")
_SOURCE_DIRS = ("hf_ita_plugin", "model_cards")
_REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01: the earliest date a zip file records


@dataclass(frozen=True)
class Wheel:
    """A built wheel file and its content address."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def path_in_repo(self) -> str:
        """``wheels/<sha12>/<file>.whl``: the hash in the folder, a valid wheel file name inside."""
        return f"wheels/{self.sha256[:12]}/{self.filename}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_root() -> Path | None:
    """The source tree the running package was imported from (``setup.cfg`` beside it), else ``None``."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "setup.cfg").is_file() and (root / "hf_ita_plugin").is_dir() else None


def _source_files(root: Path) -> list[Path]:
    files = [root / name for name in _SOURCE_FILES if (root / name).is_file()]
    for folder in _SOURCE_DIRS:
        files += [p for p in (root / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]
    return sorted(files)


def source_digest(root: Path) -> str:
    """sha256 over the relative paths and contents of the files a wheel of ``root`` is built from."""
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def wheel_cache_dir() -> Path:
    """Where built wheels are kept: ``$HF_ITA_WHEEL_CACHE`` or ``~/.cache/hf-ita/wheels``."""
    return Path(os.environ.get("HF_ITA_WHEEL_CACHE") or Path.home() / ".cache" / "hf-ita" / "wheels")


def build_wheel(root: Path | None = None, *, cache_dir: Path | None = None) -> Wheel:
    """A wheel of the source tree ``root`` (default: :func:`source_root`), built once per content.

    Built offline with ``pip wheel --no-deps --no-build-isolation`` (setuptools and wheel are
    already in the environment) from a copy of the tree, with a fixed ``SOURCE_DATE_EPOCH`` so that
    the same source gives the same bytes, hence the same sha256 and the same Hub path.
    """
    root = Path(root) if root else source_root()
    if root is None:
        raise JobsError("nessun sorgente di hf-ita da cui costruire il wheel / no hf-ita source tree to build a "
                        "wheel from", hint="install hf-ita from a checkout, or set HF_ITA_PACKAGE_SPEC")
    target = (cache_dir or wheel_cache_dir()) / source_digest(root)[:16]
    built = sorted(target.glob("*.whl")) if target.is_dir() else []
    if built:
        return Wheel(built[0], _sha256(built[0]))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hf-ita-wheel-", dir=target.parent) as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        for path in _source_files(root):
            dest = src / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        env = {**os.environ, "SOURCE_DATE_EPOCH": _REPRODUCIBLE_EPOCH, "PIP_NO_INPUT": "1"}
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                               "-q", "-w", str(out), str(src)], env=env, capture_output=True, text=True)
        wheels = sorted(out.glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise JobsError(f"costruzione del wheel fallita / building the wheel of {root} failed: "
                            f"{(done.stderr or done.stdout).strip()[-800:]}",
                            hint="pip wheel needs setuptools>=68 and wheel installed (no network is used)")
        staged = Path(tmp) / "staged"
        staged.mkdir()
        shutil.move(str(wheels[0]), staged / wheels[0].name)
        os.replace(staged, target)  # the cache folder appears whole or not at all
    path = next(target.glob("*.whl"))
    return Wheel(path, _sha256(path))


def running_wheel() -> Wheel | str | None:
    """Where the running package came from when it has no source tree: the local wheel file it was
    installed from (a :class:`Wheel`), the wheel URL it was installed from (a ``str``), or ``None``."""
    from importlib import metadata

    try:
        raw = metadata.distribution(DIST_NAME).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    url = (json.loads(raw) if raw else {}).get("url", "")
    if url.startswith(("https://", "http://")) and url.endswith(".whl"):
        return url
    if url.startswith("file://") and url.endswith(".whl"):
        path = Path(unquote(urlparse(url).path))
        if path.is_file():
            return Wheel(path, _sha256(path))
    return None


def wheels_repo(namespace: str) -> str:
    """``namespace/hf-ita-wheels``."""
    return f"{namespace}/{WHEELS_REPO_NAME}"


def wheel_url(endpoint: str, namespace: str, wheel: Wheel) -> str:
    """The resolve URL of ``wheel`` in ``namespace``'s wheels repo (content-addressed, so ``main`` is stable)."""
    return f"{endpoint.rstrip('/')}/{wheels_repo(namespace)}/resolve/main/{wheel.path_in_repo}"


def wheel_requirement(url: str, extra: str) -> str:
    """A PEP 508 requirement installing the wheel at ``url`` with ``extra``, e.g. ``hf-ita-plugin[gpu] @ https://...``."""
    return f"{DIST_NAME}[{extra}] @ {url}"


def upload_wheel(api, namespace: str, wheel: Wheel) -> bool:
    """Put ``wheel`` in ``namespace``'s public wheels repo unless that content is already there.

    ``api`` is a ``huggingface_hub.HfApi`` with a token that may write to ``namespace``. Returns
    whether an upload happened.
    """
    repo_id = wheels_repo(namespace)
    api.create_repo(repo_id, repo_type="model", private=False, exist_ok=True)
    if api.file_exists(repo_id, wheel.path_in_repo, repo_type="model"):
        return False
    api.upload_file(path_or_fileobj=str(wheel.path), path_in_repo=wheel.path_in_repo, repo_id=repo_id,
                    repo_type="model", commit_message=f"Add {wheel.filename} (sha256 {wheel.sha256[:12]})")
    return True


def local_wheel() -> Wheel | str:
    """The code running now as a wheel: built from the source tree, else :func:`running_wheel`.

    A JobsError says how to name a package instead when neither exists.
    """
    if source_root() is not None:
        return build_wheel()
    found = running_wheel()
    if found is None:
        raise JobsError("non trovo il codice di hf-ita da installare nel job / cannot find the hf-ita code to install "
                        "in the job (no source tree, not installed from a wheel)",
                        hint="set HF_ITA_PACKAGE_SPEC to a pip requirement, e.g. a wheel URL")
    return found
