"""An HF Job that trains a hf-ita run config with AutoTrain Advanced's own image (``--backend autotrain``).

The config becomes AutoTrain's ``llm-sft`` YAML (:func:`hf_ita_plugin.bridges.autotrain.autotrain_config`),
passed base64-encoded in the environment; the job decodes it and runs ``autotrain --config``. AutoTrain
pushes the adapter to ``HF_USERNAME/project_name``, so the project name is the output repo's name and
``HF_USERNAME`` its namespace; the token goes in only as the ``HF_TOKEN`` secret, which AutoTrain reads
from the environment (the YAML says ``${HF_TOKEN}``).

AutoTrain reads its data from a Hub dataset repo with a ``messages`` column. A local or bundled
``data.train`` is turned into such rows here (:func:`autotrain_rows`), with the run's Italian system
prompt already in every conversation: AutoTrain has no option to add it at training time.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import tempfile
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError, bilingual
from .spec import TOKEN_SECRET, JobSpec, is_local_source, job_identity, validate_repo_id

AUTOTRAIN_IMAGE = "huggingface/autotrain-advanced:latest"
"""AutoTrain Advanced's own Docker image (CUDA torch, autotrain, its pinned transformers/peft/trl)."""
AUTOTRAIN_CONFIG_ENV = "HF_ITA_AUTOTRAIN_CONFIG_B64"
"""Environment variable holding AutoTrain's YAML config, base64-encoded."""
LABEL_BACKEND = "hf-ita-backend"
"""Label key naming the trainer that runs in the job (``autotrain``; hf-ita's own jobs carry none)."""
CONFIG_PATH = "/tmp/hf-ita-autotrain/config.yml"
_PROJECT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?$")


def autotrain_rows(config: RunConfig) -> list[dict]:
    """The training conversations of ``config`` as AutoTrain reads them: ``{"messages": [...]}`` rows,
    the configured system prompt already first (``data.system_prompt``), ``data.max_train_examples`` applied."""
    from ..data import load_conversations, seeded_sample
    from ..templates import resolve_system_prompt, with_system_prompt

    conversations = load_conversations(config.data.train, format=config.data.format, split=config.data.split,
                                       encoding=config.data.encoding)
    conversations = seeded_sample(conversations, config.data.max_train_examples, config.training.seed)
    system = resolve_system_prompt(config.data.system_prompt)
    return [{"messages": with_system_prompt(conv, system)} for conv in conversations]


def write_autotrain_rows(config: RunConfig, path: str | Path) -> Path:
    """Write :func:`autotrain_rows` as JSONL (atomically) and return the path."""
    from ..utils.atomic import write_text

    rows = autotrain_rows(config)
    return write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def build_autotrain_job_spec(config: RunConfig, *, flavor: str, output_repo: str, data_repo: str,
                             run_name: str | None = None, via: str = "cli", image: str | None = None,
                             timeout: str | None = None) -> tuple[JobSpec, list[str]]:
    """The job that trains ``config`` with AutoTrain on ``data_repo`` and pushes to ``output_repo``.

    Returns the spec and what AutoTrain cannot express of ``config`` (say it before launching).
    AutoTrain creates the output repo itself, private.
    """
    from ..bridges.autotrain import autotrain_config

    output_repo, identity = job_identity(output_repo, flavor=flavor, via=via, run_name=run_name, timeout=timeout,
                                         labels={LABEL_BACKEND: "autotrain"})
    data_repo = validate_repo_id(data_repo, what="--data-repo")
    owner, name = output_repo.split("/")
    if not _PROJECT.match(name):
        raise ConfigError(bilingual(
            f"il nome {name!r} non va bene per AutoTrain (lettere, cifre e trattini, al massimo 50)",
            f"AutoTrain names the repo after its project: {name!r} must be letters, digits and hyphens, at most 50",
            where="--repo"), hint="e.g. --repo mario/smollm2-ita-autotrain")
    export = autotrain_config(config, data_repo=data_repo)
    export.config["project_name"] = name
    yaml_text = export.to_yaml(source="hf-ita jobs launch --backend autotrain")
    folder = shlex.quote(str(Path(CONFIG_PATH).parent))
    script = "\n".join([
        "set -euo pipefail",
        f"mkdir -p {folder}",
        f'printf %s "${AUTOTRAIN_CONFIG_ENV}" | base64 -d > {shlex.quote(CONFIG_PATH)}',
        'python -c "import autotrain; print(\'autotrain\', autotrain.__version__)" || true',
        f"autotrain --config {shlex.quote(CONFIG_PATH)}",
    ])
    spec = JobSpec(
        image=image or AUTOTRAIN_IMAGE,
        command=["bash", "-c", script],
        env={AUTOTRAIN_CONFIG_ENV: base64.b64encode(yaml_text.encode("utf-8")).decode("ascii"), "HF_USERNAME": owner,
             "PYTHONUNBUFFERED": "1"},
        secret_names=(TOKEN_SECRET,),
        **identity,
        private=True,
    )
    return spec, export.unsupported


def decode_autotrain_config(env: dict[str, str]) -> str:
    """The AutoTrain YAML a job spec carries (for checks and ``--dry-run``)."""
    if AUTOTRAIN_CONFIG_ENV not in env:
        raise ConfigError(bilingual("il job non contiene una configurazione AutoTrain",
                                    f"the job carries no AutoTrain config ({AUTOTRAIN_CONFIG_ENV})"))
    return base64.b64decode(env[AUTOTRAIN_CONFIG_ENV]).decode("utf-8")


BAKED_NOTES = ("data.system_prompt", "data.max_train_examples")
"""Notes of the bridge that no longer hold when the launcher writes the rows itself (:func:`autotrain_rows`)."""


def launch_autotrain(client, config: RunConfig, *, output_repo: str, flavor: str | None = None,
                     data_repo: str | None = None, run_name: str | None = None, via: str = "cli",
                     timeout: str | None = None, force: bool = False, dry_run: bool = False):
    """Start an AutoTrain job for ``config`` through ``client`` (a :class:`~hf_ita_plugin.jobs.client.JobsClient`).

    A local or bundled ``data.train`` becomes the run's rows (:func:`autotrain_rows`), uploaded to the
    private dataset repo ``data_repo`` (default ``OUTPUT_REPO-data``) first and deleted again if the
    launch is refused; a Hub dataset ``data.train`` is used as it is. Returns ``(JobRun, spec, notes)``
    (``JobRun`` is ``None`` with ``dry_run``): the notes list what AutoTrain cannot express of ``config``.
    """
    output_repo = validate_repo_id(output_repo, what="repo di output / output repo")
    hardware = client.pick_flavor(config, flavor, force=force)
    hub_data = not (is_local_source(config.data.train) or config.data.train == "bundled")
    if hub_data and data_repo is not None:
        raise ConfigError(bilingual(f"--data-repo carica i dati locali, ma data.train è il dataset {config.data.train!r}",
                                    f"--data-repo uploads local data, but data.train is the Hub dataset {config.data.train!r}"))
    target = config.data.train if hub_data else (data_repo or f"{output_repo}-data")
    spec, notes = build_autotrain_job_spec(config, flavor=hardware.name, output_repo=output_repo, data_repo=target,
                                           run_name=run_name, via=via, timeout=timeout)
    if not hub_data:
        notes = [n for n in notes if not n.startswith(BAKED_NOTES)]
    if dry_run:
        return None, spec, notes
    client.check_namespace(output_repo)
    if hub_data:
        return client.submit(spec), spec, notes
    with tempfile.TemporaryDirectory(prefix="hf-ita-autotrain-") as tmp:
        rows = write_autotrain_rows(config, Path(tmp) / "train.jsonl")
        with client.dataset_for_run(rows, target, private=True):
            return client.submit(spec), spec, notes
