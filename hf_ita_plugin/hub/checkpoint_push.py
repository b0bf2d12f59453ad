"""Checkpoints of a running training pushed to the output repo while it trains, so a stopped job loses little.

A job that hits its timeout, is cancelled or outlives its token used to lose everything: nothing
left the container before the final ``hf-ita push``. With :class:`CheckpointPushCallback` the newest
complete checkpoint goes to the output repo every N steps and when SIGTERM arrives (HF Jobs, like
Docker and Kubernetes, send SIGTERM at timeout/cancel and kill after a short grace period that
huggingface_hub does not document; seconds, not minutes, must be assumed).

Where: the branch :data:`CHECKPOINT_BRANCH` of the output repo, laid out like a run folder
(``checkpoints/checkpoint-N/``, ``checkpoints/eval_before.json``) plus the run's
``run_config.yaml`` at its root. A branch, not a folder on ``main``: ``main`` stays what
``hf-ita push`` publishes (a model card and the adapter; ``hf-ita push`` refuses a repo whose
``main`` holds files it did not write), and nobody loading the model downloads optimizer states.

How: each push is **one** commit that adds the new checkpoint and deletes the older checkpoint
folder, so the branch holds one whole checkpoint at every moment (the Hub applies a commit whole or
not at all). Only checkpoints that :meth:`RunDir.is_complete_checkpoint` accepts are sent, from a
hard-linked snapshot taken right after the save (rotation may delete the folder meanwhile). Uploads
run in one background thread; a newer checkpoint replaces one still waiting. The token is
huggingface_hub's own (``HF_TOKEN`` in a job); it never appears in a message.

Example::

    recipe = ItalianSFT.from_yaml("run.yaml")
    recipe.callbacks.append(CheckpointPushCallback("mario/smollm2-ita", recipe.config))
    recipe.train()     # checkpoints reach mario/smollm2-ita@hf-ita-checkpoints while it trains
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from ..errors import HfItaError, HubError, bilingual
from ..rundir import RunDir
from ..utils import atomic
from .failures import explain, is_transient
from .paths import hub_endpoint, validate_repo_id

CHECKPOINT_BRANCH = "hf-ita-checkpoints"
"""The output repo's branch that holds the newest pushed checkpoint of a run."""
TERMINATED_EXIT = 128 + signal.SIGTERM
"""Exit status of ``hf-ita train`` after a SIGTERM with its checkpoint pushed (as if killed by it)."""
_ATTEMPTS = 3


def checkpoint_path_in_repo(step: int) -> str:
    """Where the checkpoint of ``step`` lives on :data:`CHECKPOINT_BRANCH`."""
    return f"{RunDir.CHECKPOINTS}/checkpoint-{step}"


class CheckpointUploader:
    """Sends whole checkpoints to ``repo_id``'s :data:`CHECKPOINT_BRANCH`, one commit each.

    The repo (``private`` if it has to be created) and the branch are created on the first upload.
    ``config_yaml`` is committed as ``run_config.yaml`` with every checkpoint (what ``--resume``
    launches with).
    """

    def __init__(self, repo_id: str, *, config_yaml: str | None = None, private: bool = False,
                 endpoint: str | None = None, retry_wait: float = 2.0):
        from huggingface_hub import HfApi

        self.repo_id = validate_repo_id(repo_id, what="--push-checkpoints-to")
        self.config_yaml = config_yaml
        self.private = private
        self.retry_wait = retry_wait
        self._api = HfApi(endpoint=hub_endpoint(endpoint))  # token: huggingface_hub's (HF_TOKEN in a job)
        self._ready = False

    def upload(self, checkpoint: str | os.PathLike, step: int, *, eval_before: Path | None = None) -> str:
        """Commit the checkpoint folder as ``checkpoints/checkpoint-STEP`` (older ones deleted in the same
        commit); returns the commit id. HubError if it is incomplete or the Hub refuses."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        checkpoint = Path(checkpoint)
        if not RunDir.is_complete_checkpoint(checkpoint):
            raise HubError(bilingual(f"checkpoint incompleto, non inviato: {checkpoint}",
                                     f"incomplete checkpoint, not pushed: {checkpoint}"))
        self._prepare()
        target = checkpoint_path_in_repo(step)
        ops: list = [CommitOperationAdd(path_in_repo=f"{target}/{p.relative_to(checkpoint).as_posix()}", path_or_fileobj=str(p))
                     for p in sorted(checkpoint.rglob("*")) if p.is_file()]
        if eval_before is not None and eval_before.is_file():
            ops.append(CommitOperationAdd(path_in_repo=f"{RunDir.CHECKPOINTS}/{RunDir.EVAL_BEFORE}",
                                          path_or_fileobj=eval_before.read_bytes()))
        if self.config_yaml is not None:
            ops.append(CommitOperationAdd(path_in_repo=RunDir.CONFIG, path_or_fileobj=self.config_yaml.encode("utf-8")))
        old = self._call(lambda: pushed_steps(self._api, self.repo_id))
        ops += [CommitOperationDelete(path_in_repo=checkpoint_path_in_repo(s) + "/", is_folder=True) for s in old if s != step]
        info = self._call(lambda: self._api.create_commit(
            self.repo_id, ops, revision=CHECKPOINT_BRANCH, commit_message=f"hf-ita: checkpoint {step}",
            commit_description="Pushed while training by hf-ita-plugin; resume with `hf-ita launch --resume`."))
        return info.oid

    def _prepare(self) -> None:
        if self._ready:
            return
        self._call(lambda: self._api.create_repo(self.repo_id, private=self.private, exist_ok=True))
        self._call(lambda: self._api.create_branch(self.repo_id, branch=CHECKPOINT_BRANCH, exist_ok=True))
        self._ready = True

    def _call(self, fn):
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc) or attempt == _ATTEMPTS:
                    raise explain(exc, action="push checkpoint", repo_id=self.repo_id) from None
                time.sleep(self.retry_wait * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def pushed_steps(api, repo_id: str) -> list[int]:
    """Steps of the checkpoints on ``repo_id``'s :data:`CHECKPOINT_BRANCH` (empty when the branch is absent)."""
    import re

    from huggingface_hub.errors import RevisionNotFoundError

    try:
        files = api.list_repo_files(repo_id, revision=CHECKPOINT_BRANCH)
    except RevisionNotFoundError:
        return []
    found = {int(m.group(1)) for f in files if (m := re.match(rf"^{RunDir.CHECKPOINTS}/checkpoint-(\d+)/", f))}
    return sorted(found)


class _Worker:
    """One background thread uploading the newest snapshot handed to it; older waiting ones are dropped."""

    def __init__(self, uploader: CheckpointUploader):
        self.uploader = uploader
        self.pushed: list[int] = []
        self.failed: list[tuple[int, str]] = []
        self._cond = threading.Condition()
        self._pending: tuple[int, Path, contextlib.ExitStack, Path | None] | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="hf-ita-checkpoint-push", daemon=True)
        self._thread.start()

    def submit(self, step: int, snapshot: Path, stack: contextlib.ExitStack, eval_before: Path | None) -> None:
        with self._cond:
            if self._pending is not None:
                self._pending[2].close()  # a newer checkpoint makes the waiting one pointless
            self._pending = (step, snapshot, stack, eval_before)
            self._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is waiting or uploading; returns False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                step, snapshot, stack, eval_before = self._pending
                self._pending, self._busy = None, True
            try:
                with stack:
                    oid = self.uploader.upload(snapshot, step, eval_before=eval_before)
                self.pushed.append(step)
                print(f"hf-ita: checkpoint-{step} inviato / pushed to {self.uploader.repo_id}@{CHECKPOINT_BRANCH} "
                      f"(commit {oid[:8]})", flush=True)
            except HfItaError as exc:  # training goes on: the next checkpoint is tried again
                self.failed.append((step, exc.message))
                print(f"hf-ita: checkpoint-{step} non inviato / not pushed: {exc.message}", flush=True)
            except Exception as exc:  # noqa: BLE001 - a failed push must never stop training
                self.failed.append((step, type(exc).__name__))
                print(f"hf-ita: checkpoint-{step} non inviato / not pushed ({type(exc).__name__})", flush=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


class CheckpointPushCallback(TrainerCallback):
    """Push the run's newest complete checkpoint to ``repo_id`` every N steps, at the last step and on SIGTERM.

    ``config`` is the run's :class:`~hf_ita_plugin.config.RunConfig`: its ``training.output_dir`` says
    where the checkpoints are, ``training.push_checkpoint_steps`` (else ``save_steps``) how often
    to push; a save is forced at those steps. On SIGTERM the current step ends, a checkpoint is
    saved and pushed (waiting at most ``grace_s``), and the process exits with
    :data:`TERMINATED_EXIT`: the run is interrupted, not finished, and resumes from that checkpoint.
    """

    def __init__(self, repo_id: str, config, *, private: bool = False, endpoint: str | None = None,
                 grace_s: float = 600.0):
        self.run = RunDir(config.training.output_dir)
        self.every = config.training.push_checkpoint_steps or config.training.save_steps
        self.grace_s = grace_s
        self.uploader = CheckpointUploader(repo_id, config_yaml=config.to_yaml(), private=private, endpoint=endpoint)
        self._worker: _Worker | None = None
        self._terminating = False
        self._saved_handler = None

    @property
    def pushed(self) -> list[int]:
        """Steps whose checkpoint reached the Hub, in order."""
        return list(self._worker.pushed) if self._worker else []

    # ------------------------------------------------------------------ trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._worker = _Worker(self.uploader)
        if threading.current_thread() is threading.main_thread():
            self._saved_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def on_step_end(self, args, state, control, **kwargs):
        if self._terminating:
            control.should_save = True
            control.should_evaluate = False
            control.should_training_stop = True
        elif state.global_step % self.every == 0:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if self._worker is None:
            return
        step = state.global_step
        if self._terminating or step % self.every == 0 or step >= state.max_steps:  # the last one too: the final
            self._submit(step)                                                   # evaluation may outlast the timeout
        if self._terminating:
            self._exit_after_push(step)

    def on_train_end(self, args, state, control, **kwargs):
        if self._worker is None:
            return
        self._worker.drain()
        self._worker.close()
        self._restore_handler()

    # ------------------------------------------------------------------ internals
    def _on_sigterm(self, signum, frame):
        if not self._terminating:
            print("hf-ita: SIGTERM: salvo e invio l'ultimo checkpoint, poi esco / saving and pushing the last "
                  "checkpoint, then exiting", flush=True)
        self._terminating = True

    def _submit(self, step: int) -> None:
        source = self.run.checkpoints_dir / f"checkpoint-{step}"
        if not RunDir.is_complete_checkpoint(source):
            print(f"hf-ita: checkpoint-{step} incompleto, non inviato / incomplete, not pushed", flush=True)
            return
        stack = contextlib.ExitStack()
        scratch = stack.enter_context(atomic.temp_directory(self.run.checkpoints_dir, f"push-{step}"))
        snapshot = scratch / source.name
        shutil.copytree(source, snapshot, copy_function=_link_or_copy)  # rotation may delete `source` meanwhile
        eval_before = self.run.eval_before_path if self.run.eval_before_path.is_file() else None
        self._worker.submit(step, snapshot, stack, eval_before)

    def _exit_after_push(self, step: int) -> None:
        done = self._worker.drain(self.grace_s)
        self._worker.close()
        self._restore_handler()
        if done and step in self._worker.pushed:
            print(f"hf-ita: interrotto al passo {step}, checkpoint sul Hub / stopped at step {step}, checkpoint on the "
                  f"Hub: resume with `hf-ita launch --resume --repo {self.uploader.repo_id}`", flush=True)
        else:
            print(f"hf-ita: interrotto al passo {step}, checkpoint non inviato / stopped at step {step}, checkpoint not "
                  "pushed (the previous pushed one stays on the Hub)", flush=True)
        raise SystemExit(TERMINATED_EXIT)

    def _restore_handler(self) -> None:
        if self._saved_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._saved_handler)
            self._saved_handler = None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
