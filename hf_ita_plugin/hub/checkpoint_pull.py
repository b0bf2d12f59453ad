"""The checkpoint a run pushed while training (:mod:`~hf_ita_plugin.hub.checkpoint_push`), read back.

:func:`pushed_checkpoint` says what the output repo's ``hf-ita-checkpoints`` branch holds (step and
run config: what ``hf-ita launch --resume`` launches with); :func:`pull_checkpoint` downloads it
into a run folder's ``checkpoints/`` so ``hf-ita train --resume`` continues from it.

Example::

    pull_checkpoint("mario/smollm2-ita", "outputs/run")   # outputs/run/checkpoints/checkpoint-40
    ItalianSFT.from_yaml("run.yaml", ["training.output_dir=outputs/run"]).train(resume=True)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, HubError, bilingual
from ..rundir import RunDir
from ..utils import atomic
from .checkpoint_push import CHECKPOINT_BRANCH, checkpoint_path_in_repo, pushed_steps
from .failures import explain
from .paths import hub_endpoint, validate_repo_id


@dataclass(frozen=True)
class PushedCheckpoint:
    """The newest checkpoint on a repo's checkpoint branch and the run config pushed with it."""

    repo_id: str
    step: int
    config_yaml: str | None


def pushed_checkpoint(repo_id: str, *, token: str | None = None, endpoint: str | None = None) -> PushedCheckpoint:
    """What ``repo_id``'s checkpoint branch holds; HubError when there is nothing to resume."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo_id = validate_repo_id(repo_id, what="--repo")
    endpoint = hub_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        steps = pushed_steps(api, repo_id)
    except Exception as exc:
        raise explain(exc, action="resume", repo_id=repo_id) from None
    if not steps:
        raise HubError(bilingual(f"{repo_id} non ha checkpoint inviati (ramo {CHECKPOINT_BRANCH})",
                                 f"{repo_id} has no pushed checkpoint (branch {CHECKPOINT_BRANCH}): nothing to resume"),
                       hint="only runs launched with checkpoint pushes (hf-ita launch) can be resumed")
    config_yaml = None
    try:
        path = hf_hub_download(repo_id, RunDir.CONFIG, revision=CHECKPOINT_BRANCH, endpoint=endpoint, token=token)
        config_yaml = Path(path).read_text(encoding="utf-8")
    except EntryNotFoundError:
        pass
    except Exception as exc:
        raise explain(exc, action="resume", repo_id=repo_id) from None
    return PushedCheckpoint(repo_id=repo_id, step=steps[-1], config_yaml=config_yaml)


def pull_checkpoint(repo_id: str, output_dir: str | os.PathLike, *, token: str | None = None,
                    endpoint: str | None = None) -> Path:
    """Download the newest pushed checkpoint of ``repo_id`` into ``OUTPUT_DIR/checkpoints/``; returns its folder.

    ``output_dir`` must be new or empty (nothing there is replaced). The files land in a scratch
    folder first and move into place only once the checkpoint is complete
    (:meth:`RunDir.is_complete_checkpoint`).
    """
    from huggingface_hub import snapshot_download

    pushed = pushed_checkpoint(repo_id, token=token, endpoint=endpoint)
    run = RunDir(output_dir)
    if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
        raise ConfigError(bilingual(f"--output-dir {run.path} non è vuota: il checkpoint va in una cartella nuova",
                                    f"--output-dir {run.path} is not empty: the pushed checkpoint goes into a new folder"),
                          hint="choose a new --output-dir")
    run.path.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{pushed.step}"
    with atomic.temp_directory(run.path.parent, f"pull-{run.path.name}") as scratch:
        try:
            snapshot_download(repo_id, revision=CHECKPOINT_BRANCH, local_dir=scratch, token=token,
                              endpoint=hub_endpoint(endpoint),
                              allow_patterns=[f"{checkpoint_path_in_repo(pushed.step)}/*",
                                              f"{RunDir.CHECKPOINTS}/{RunDir.EVAL_BEFORE}"])
        except Exception as exc:
            raise explain(exc, action="resume", repo_id=repo_id) from None
        pulled = RunDir(scratch)
        if not RunDir.is_complete_checkpoint(pulled.checkpoints_dir / name):
            raise HubError(bilingual(f"il checkpoint {name} di {repo_id} è incompleto",
                                     f"checkpoint {name} of {repo_id}@{CHECKPOINT_BRANCH} is incomplete"))
        run.record(RunDir.CHECKPOINTS)
        run.checkpoints_dir.mkdir(exist_ok=True)
        os.replace(pulled.checkpoints_dir / name, run.checkpoints_dir / name)
        if pulled.eval_before_path.is_file():
            shutil.move(str(pulled.eval_before_path), str(run.eval_before_path))
    print(f"hf-ita: {name} scaricato da / pulled from {repo_id}@{CHECKPOINT_BRANCH} -> {run.checkpoints_dir / name}")
    return run.checkpoints_dir / name
