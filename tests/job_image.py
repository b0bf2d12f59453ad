"""A stand-in for the HF Job image, for tests where the local Jobs server runs a job's real command.

:func:`make_image_venv` builds a fresh virtualenv (no system site-packages) that carries what the
job image would (torch, transformers, peft, bitsandbytes...: the shared environment's packages,
through a ``.pth`` file naming a folder of links to its site-packages) but NOT hf-ita: the job must
install it from the wheel the launcher uploaded to the local Hub, by its resolve URL. No network, so
pip runs with ``PIP_NO_INDEX=1`` (every dependency is already satisfied).

Fixtures: ``job_image`` gives a :class:`JobImage` whose venv is built once per session and has
hf-ita removed again before each test (a job of an earlier test installed it there). A job run with
:meth:`JobImage.scenario` writes where the real command says (``/tmp/hf-ita``, the container's own
``/tmp`` on the Hub): the fixture clears that folder before and after each test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from hf_ita_plugin.jobs.spec import JOB_WORKDIR
from jobs_server import JobScenario

PACKAGE = "hf-ita-plugin"


def make_image_venv(root: Path) -> Path:
    """A fresh virtualenv at ``root`` that sees the shared environment's packages except hf-ita; returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    shared = Path(sysconfig.get_paths()["purelib"])
    carried = root / "image-site-packages"
    carried.mkdir()
    for entry in shared.iterdir():
        if entry.name.lower().startswith(("hf_ita_plugin", "__editable__", "pip")) or entry.suffix == ".pth":
            continue
        (carried / entry.name).symlink_to(entry)
    venv_site = next((root / "lib").glob("python3*/site-packages"))
    for own in venv_site.iterdir():  # ensurepip's old setuptools would shadow the one torch asks for
        if own.name.startswith(("setuptools", "_distutils_hack", "distutils-precedence")):
            shutil.rmtree(own) if own.is_dir() else own.unlink()
    (venv_site / "image-packages.pth").write_text(f"{carried}\n", encoding="utf-8")
    return root / "bin"


@dataclass(frozen=True)
class JobImage:
    """The image stand-in: a virtualenv and the environment a job's command runs with in it."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> str:
        return str(self.bin_dir / "python")

    def env(self, hub_url: str, workdir: Path) -> dict[str, str]:
        """What the container gives the job (before its own environment and secrets): PATH to the venv,
        a home and temp folder under ``workdir``, the Hub at ``hub_url``, pip offline."""
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        return {"PATH": f"{self.bin_dir}:/usr/bin:/bin", "HOME": str(home), "HF_HOME": str(home / "hf"),
                "HF_ENDPOINT": hub_url, "HF_HUB_DISABLE_XET": "1", "PIP_NO_INDEX": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(workdir), "LANG": "C.UTF-8"}

    def scenario(self, hub_url: str, workdir: Path, **kwargs) -> JobScenario:
        """A :class:`JobScenario` whose job really runs its command in this image."""
        return JobScenario(execute_env=self.env(hub_url, workdir), execute_cwd=str(workdir), **kwargs)

    def run_python(self, code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)

    def remove_package(self) -> None:
        """Uninstall hf-ita from the venv (no-op when absent): the next job must install it again."""
        subprocess.run([self.python, "-m", "pip", "uninstall", "-y", "-q", PACKAGE], check=True, capture_output=True,
                       env={"PATH": f"{self.bin_dir}:/usr/bin:/bin", "PIP_NO_INDEX": "1",
                            "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


@pytest.fixture(scope="session")
def job_image_venv(tmp_path_factory) -> JobImage:
    """The image venv, built once for the session (see :func:`make_image_venv`)."""
    root = tmp_path_factory.mktemp("job-image") / "venv"
    make_image_venv(root)
    return JobImage(root)


@pytest.fixture
def job_image(job_image_venv) -> JobImage:
    """:func:`job_image_venv` without hf-ita, and an empty job workdir (``/tmp/hf-ita``) before and after."""
    job_image_venv.remove_package()
    shutil.rmtree(JOB_WORKDIR, ignore_errors=True)
    yield job_image_venv
    shutil.rmtree(JOB_WORKDIR, ignore_errors=True)
