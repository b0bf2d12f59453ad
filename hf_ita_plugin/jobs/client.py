"""Fine-tuning runs on Hugging Face Jobs: launch, follow, cancel, list (shared by the CLI and the Space).

A run is one HF Job that installs this package, writes the run's YAML config (passed inline, base64
in an environment variable), runs ``hf-ita train`` and then ``hf-ita push`` to the output repo.
The user's token travels only as the job *secret* ``HF_TOKEN`` (encrypted by the Hub, never in the
command, the environment, the labels or a log line). Every run carries the labels ``hf-ita=1``,
``hf-ita-repo=<owner--name>`` and ``hf-ita-via=<cli|space>`` (plus the job ``name``), so earlier runs
are found again by label. The job spec and the hardware choice are in :mod:`hf_ita_plugin.jobs.spec`
(re-exported here); this module makes the API calls and turns the Hub's refusals into bilingual
JobsErrors. Cancelling is asynchronous on the Hub (the stage stays RUNNING a while), and a followed
log stream only starts once the job leaves SCHEDULING.

Example::

    from hf_ita_plugin.config import RunConfig
    from hf_ita_plugin.jobs.client import JobsClient

    client = JobsClient()                       # the locally saved token (`hf auth login`)
    run = client.launch(RunConfig.from_preset("mistral-7b"),   # flavor: cheapest GPU that fits
                        output_repo="mario/mistral-7b-ita")
    for line in client.follow(run.id):
        print(line)
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..config import RunConfig
from ..errors import ConfigError, DataError, JobsError
from .wheel import upload_wheel
from .spec import (  # noqa: F401 - re-exported: the CLI, the Space and the tests import them from here
    APP_LABEL, CONFIG_ENV, DEFAULT_IMAGE, DEFAULT_TIMEOUT, JOB_WORKDIR, LABEL_REPO, LABEL_VIA,
    TOKEN_SECRET, VIA_VALUES, Hardware, JobSpec, LOCAL_DATA_SUFFIXES, build_job_spec, check_portable, choose_flavor,
    cost_line, decode_job_config, default_endpoint, default_package_spec, find_flavor, is_local_source,
    parse_timeout, run_name_for, sanitize_label, timeout_cost_usd, validate_job_id, validate_repo_id,
)

TERMINAL_STAGES = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
STAGE_TEXT = {
    "SCHEDULING": "In coda / scheduling",
    "RUNNING": "In esecuzione / running",
    "COMPLETED": "Completato / completed",
    "ERROR": "Errore / error",
    "CANCELED": "Annullato / canceled",
    "DELETED": "Eliminato / deleted",
}


@dataclass(frozen=True)
class JobRun:
    """A launched run as the Jobs API reports it."""

    id: str
    namespace: str
    stage: str
    message: str | None
    url: str
    endpoint: str
    flavor: str | None
    name: str | None
    output_repo: str | None
    via: str | None
    created_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.stage in TERMINAL_STAGES

    @property
    def stage_text(self) -> str:
        return STAGE_TEXT.get(self.stage, self.stage)

    @property
    def repo_url(self) -> str | None:
        return f"{self.endpoint}/{self.output_repo}" if self.output_repo else None

    @classmethod
    def from_info(cls, info) -> "JobRun":
        labels = info.labels or {}
        repo = labels.get(LABEL_REPO)
        stage = getattr(info.status.stage, "value", info.status.stage)
        return cls(
            id=info.id, namespace=info.owner.name, stage=str(stage), message=info.status.message, url=info.url,
            endpoint=info.endpoint.rstrip("/"), flavor=str(getattr(info.flavor, "value", info.flavor) or "") or None,
            name=labels.get("name"), output_repo=repo.replace("--", "/", 1) if repo else None,
            via=labels.get(LABEL_VIA), created_at=info.created_at,
        )


# ---------------------------------------------------------------------------------- client
class JobsClient:
    """HF Jobs for one user: ``token`` is that user's token (``None``: the locally saved login).

    The Space passes the signed-in user's OAuth token and ``allow_local_token=False``: without a
    token the client is anonymous (it can list hardware) and anything done on a user's behalf is a
    JobsError asking to sign in, never a silent fallback on the Space owner's own token.
    """

    def __init__(self, token: str | None = None, *, endpoint: str | None = None, allow_local_token: bool = True):
        from huggingface_hub import HfApi

        self.endpoint = (endpoint or default_endpoint()).rstrip("/")
        self._token = token or None
        self._anonymous = self._token is None and not allow_local_token
        self._api = HfApi(endpoint=self.endpoint, token=False if self._anonymous else self._token)
        self._whoami: dict | None = None
        self._hardware: list[Hardware] | None = None

    # ------------------------------------------------------------------ identity
    def _resolved_token(self) -> str:
        if self._token:
            return self._token
        if self._anonymous:
            raise JobsError("accedi con Hugging Face per continuare / sign in with Hugging Face to continue")
        from huggingface_hub import get_token

        token = get_token()
        if not token:
            raise JobsError("nessun token Hugging Face / no Hugging Face token found",
                            hint="run `hf auth login` or set HF_TOKEN")
        return token

    def whoami(self) -> dict:
        if self._whoami is None:
            self._resolved_token()
            with self._hub_errors("identificazione / whoami"):
                self._whoami = self._api.whoami()
        return self._whoami

    @property
    def username(self) -> str:
        return self.whoami()["name"]

    def writable_namespaces(self) -> list[str]:
        """The user's own namespace and the organizations they belong to."""
        info = self.whoami()
        return [info["name"], *[o["name"] for o in info.get("orgs") or [] if o.get("name")]]

    # ------------------------------------------------------------------ hardware
    def hardware(self) -> list[Hardware]:
        """The hardware flavors Jobs offers, with price per hour (cached)."""
        if self._hardware is None:
            with self._hub_errors("elenco hardware / hardware list"):
                infos = self._api.list_jobs_hardware()
            self._hardware = [Hardware.from_info(i) for i in infos]
        return self._hardware

    def validate_flavor(self, flavor: str | None) -> Hardware:
        """The :class:`Hardware` named ``flavor``, or a ConfigError listing the valid ones."""
        return find_flavor(self.hardware(), flavor)

    def pick_flavor(self, config: RunConfig, flavor: str | None = None, *, force: bool = False) -> Hardware:
        """:func:`~hf_ita_plugin.jobs.spec.choose_flavor` over this account's hardware list."""
        return choose_flavor(self.hardware(), config, flavor, force=force)

    # ------------------------------------------------------------------ launch & follow
    def launch(self, config: RunConfig, *, flavor: str | None = None, output_repo: str, private: bool = True,
               run_name: str | None = None, via: str = "cli", package: str | None = None,
               image: str | None = None, timeout: str | None = None, force: bool = False,
               resume: bool = False) -> JobRun:
        """Validate and start a run; returns the job as the Hub reports it (usually SCHEDULING).

        ``flavor=None`` picks the cheapest GPU flavor that fits ``model.gpu_memory_gb``; a CPU flavor
        for a non-embedded model needs ``force`` (see :meth:`pick_flavor`). ``resume``: the job first
        downloads the checkpoint ``output_repo``'s ``hf-ita-checkpoints`` branch holds and continues
        from it (``config`` and ``private`` from :meth:`resume_config`).
        """
        hardware = self.pick_flavor(config, flavor, force=force)
        spec = build_job_spec(config, flavor=hardware.name, output_repo=output_repo, private=private,
                              run_name=run_name, via=via, package=package, image=image, timeout=timeout, resume=resume,
                              gpus=hardware.gpu_count)
        return self.submit(spec)

    def resume_config(self, output_repo: str) -> tuple[RunConfig, int, bool]:
        """What resuming ``output_repo`` launches: the run config pushed with its last checkpoint (the one
        the run trained with, not a file on this machine), that checkpoint's step, and whether the repo
        is private. HubError/JobsError when there is nothing to resume."""
        import yaml

        from ..hub.checkpoint_pull import pushed_checkpoint
        from ..hub.checkpoint_push import CHECKPOINT_BRANCH

        output_repo = validate_repo_id(output_repo, what="--repo")
        pushed = pushed_checkpoint(output_repo, token=self._resolved_token(), endpoint=self.endpoint)
        where = f"{output_repo}@{CHECKPOINT_BRANCH}/run_config.yaml"
        if pushed.config_yaml is None:
            raise JobsError(f"{where}: configurazione del run mancante / run config missing: cannot resume")
        config = RunConfig.from_dict(yaml.safe_load(pushed.config_yaml), source=where)
        with self._hub_errors(f"verifica del repo / repo check {output_repo}"):
            private = bool(self._api.repo_info(output_repo).private)
        return config, pushed.step, private

    def check_namespace(self, repo_id: str) -> None:
        """ConfigError unless this account may write to ``repo_id``'s namespace (before anything is sent)."""
        owner = repo_id.split("/")[0]
        allowed = self.writable_namespaces()
        if owner not in allowed:
            raise ConfigError(f"non puoi pubblicare in {owner!r} / you cannot publish to {owner!r}",
                              hint=f"use one of your namespaces: {', '.join(allowed)}")

    def submit(self, spec: JobSpec) -> JobRun:
        """Start the job described by ``spec``; the token goes in as the ``HF_TOKEN`` secret only."""
        self.check_namespace(spec.output_repo)
        secrets = {name: self._resolved_token() for name in spec.secret_names}
        namespace = self.username
        if spec.wheel is not None:
            self.upload_wheel(spec)
        with self._hub_errors("avvio del job / job launch", namespace=namespace, flavor=spec.flavor):
            info = self._api.run_job(
                image=spec.image, command=spec.command, env=spec.env, secrets=secrets, flavor=spec.flavor,
                timeout=spec.timeout, name=spec.name, labels=spec.labels, namespace=namespace,
            )
        return JobRun.from_info(info)

    def upload_wheel(self, spec: JobSpec) -> bool:
        """Put ``spec.wheel`` in its public wheels repo unless that content is there (returns whether it uploaded)."""
        self._resolved_token()
        with self._hub_errors("caricamento del wheel / wheel upload", namespace=spec.wheel_namespace):
            return upload_wheel(self._api, spec.wheel_namespace, spec.wheel)

    def status(self, job_id: str) -> JobRun:
        job_id = validate_job_id(job_id)
        with self._hub_errors(f"stato del job / status of job {job_id}"):
            return JobRun.from_info(self._api.inspect_job(job_id=job_id, namespace=self.username))

    def logs(self, job_id: str, *, follow: bool = True) -> Iterator[str]:
        """The job's log lines; with ``follow`` the stream lasts until the job ends.

        huggingface_hub's ``fetch_job_logs`` reconnects (skipping lines already seen) until the stage
        is terminal; :meth:`follow` also waits out SCHEDULING first.
        """
        job_id = validate_job_id(job_id)
        namespace = self.username
        with self._hub_errors(f"log del job / logs of job {job_id}"):
            yield from self._api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=follow)

    def wait_until_started(self, job_id: str, *, poll_s: float = 5.0, timeout_s: float | None = None) -> JobRun:
        """Poll while the job is SCHEDULING; returns it once RUNNING or finished (or at ``timeout_s``)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            run = self.status(job_id)
            if run.stage != "SCHEDULING" or (deadline is not None and time.monotonic() >= deadline):
                return run
            time.sleep(poll_s)

    def follow(self, job_id: str, *, poll_s: float = 5.0) -> Iterator[str]:
        """The job's log lines from start to end: polls while it is SCHEDULING, then streams them."""
        run = self.wait_until_started(job_id, poll_s=poll_s)
        yield from self.logs(run.id, follow=not run.finished)

    def wait(self, job_id: str, *, poll_s: float = 5.0, timeout_s: float | None = None) -> JobRun:
        """Poll until the job reaches a terminal stage."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            run = self.status(job_id)
            if run.finished or (deadline is not None and time.monotonic() >= deadline):
                return run
            time.sleep(poll_s)

    def cancel(self, job_id: str) -> JobRun:
        """Ask the Hub to cancel a job; returns its state right after the request.

        Cancelling is asynchronous: the stage usually stays RUNNING for a while before CANCELED
        (:meth:`wait` for it). A job already finished is returned as it is, nothing sent.
        """
        run = self.status(job_id)
        if run.finished:
            return run
        with self._hub_errors(f"annullamento del job / cancel of job {run.id}", namespace=run.namespace):
            self._api.cancel_job(job_id=run.id, namespace=self.username)
        return self.status(run.id)

    def list_runs(self, *, via: str | None = None) -> list[JobRun]:
        """The user's hf-ita runs (optionally only those from ``via``), newest first."""
        labels = {APP_LABEL: "1"}
        if via is not None:
            labels[LABEL_VIA] = via
        with self._hub_errors("elenco dei job / job list"):
            runs = [JobRun.from_info(i) for i in self._api.list_jobs(labels=labels, namespace=self.username)]
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        return sorted(runs, key=lambda r: r.created_at or epoch, reverse=True)

    def published_repo(self, run: JobRun) -> str | None:
        """The output repo's URL once a completed run has published it, else ``None``."""
        if run.stage != "COMPLETED" or not run.output_repo:
            return None
        with self._hub_errors("verifica del repo / repo check"):
            exists = self._api.repo_exists(run.output_repo)
        return run.repo_url if exists else None

    # ------------------------------------------------------------------ data upload
    def upload_dataset(self, path: str | Path, repo_id: str, *, private: bool = True) -> str:
        """Check a local JSONL/CSV/JSON/Parquet file and push it to a (private) dataset repo.

        The file is validated first with :func:`hf_ita_plugin.data.load_conversations` (a DataError
        names the row and field); it lands as ``train.<ext>`` so ``datasets`` finds it by id.
        Returns the dataset repo id.
        """
        from ..data import load_conversations

        path = Path(path)
        if path.suffix.lower() not in LOCAL_DATA_SUFFIXES:
            raise DataError(f"{path.name}: tipo di file non supportato / unsupported file type {path.suffix!r}",
                            hint="use .jsonl, .json, .csv or .parquet")
        conversations = load_conversations(str(path))
        repo_id = validate_repo_id(repo_id, what="repo del dataset / dataset repo")
        if repo_id.split("/")[0] not in self.writable_namespaces():
            raise ConfigError(f"non puoi scrivere in {repo_id!r} / you cannot write to {repo_id!r}")
        with self._hub_errors(f"caricamento del dataset / dataset upload to {repo_id}"):
            self._api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            self._api.upload_file(
                path_or_fileobj=str(path), path_in_repo=f"train{path.suffix.lower()}", repo_id=repo_id,
                repo_type="dataset",
                commit_message=f"hf-ita: {len(conversations)} conversazioni / conversations from {path.name}",
            )
        return repo_id

    @contextlib.contextmanager
    def dataset_for_run(self, path: str | Path, repo_id: str, *, private: bool = True) -> Iterator[str]:
        """:meth:`upload_dataset` for a run about to start: if the block fails (the launch is refused),
        a dataset repo this call created is deleted again, so nothing is left half-created."""
        repo_id = validate_repo_id(repo_id, what="repo del dataset / dataset repo")
        existed = self.dataset_exists(repo_id)
        try:
            yield self.upload_dataset(path, repo_id, private=private)
        except BaseException:
            if not existed:
                with contextlib.suppress(JobsError), self._hub_errors(f"pulizia / cleanup of {repo_id}"):
                    self._api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)
            raise

    def dataset_exists(self, repo_id: str) -> bool:
        """Whether the user can read the dataset repo ``repo_id``."""
        repo_id = validate_repo_id(repo_id, what="dataset")
        with self._hub_errors(f"verifica del dataset / dataset check {repo_id}"):
            return self._api.repo_exists(repo_id, repo_type="dataset")

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def _hub_errors(self, action: str, *, namespace: str | None = None, flavor: str | None = None):
        """Turn Hub client failures into a JobsError that names the action (never the token).

        Each refusal the Jobs API gives gets its own bilingual reason: 401 token, 402 payment
        required, 403 no write access to ``namespace`` or (when the Hub's message names the
        hardware) ``flavor`` not allowed for this account, 404, 429 quota / rate limit.
        """
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        try:
            yield
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            server = (getattr(exc, "server_message", None) or "").strip()
            raise JobsError(f"{action}: {_refusal(status, server, namespace, flavor, self.endpoint)}"
                            + (f" ({server[:300]})" if server else "")) from None
        except (httpx2.HTTPError, OSError) as exc:
            raise JobsError(f"{action}: Hub non raggiungibile / Hub unreachable at {self.endpoint} ({type(exc).__name__})") from None


def _refusal(status: int | None, server: str, namespace: str | None, flavor: str | None, endpoint: str) -> str:
    """The bilingual reason for an HTTP refusal of the Hub / Jobs API."""
    if status == 403 and flavor and re.search(r"flavor|hardware", server, re.IGNORECASE):
        return (f"il tuo account non può usare l'hardware {flavor!r} / your account cannot use the hardware flavor "
                f"{flavor!r}: pick another one (hf-ita jobs hardware)")
    if status == 403 and namespace:
        return (f"nessun permesso di scrittura in {namespace!r} / no write access to the namespace {namespace!r} "
                "(a token with write access, or the org's write role, is needed)")
    if status == 402:
        return (f"pagamento richiesto / payment required: add a payment method or credits at {endpoint}/settings/billing"
                + (f" to use {flavor!r}" if flavor else ""))
    if status == 429:
        return ("quota superata / quota exceeded: too many jobs or requests at once; wait for your running jobs to "
                "end or retry later")
    return {
        401: "token non valido o scaduto / invalid or expired token",
        403: "permesso negato / permission denied",
        404: "non trovato / not found",
    }.get(status, f"errore HTTP / HTTP error {status}")
