"""``hf-ita jobs launch|list|status|logs|cancel|hardware``: runs on Hugging Face Jobs.

``hf-ita launch`` is an alias of ``hf-ita jobs launch`` (same arguments, same namespace).
"""

from __future__ import annotations

import argparse
import json

from ..options import add_json, add_set

FOLLOW_POLL_S = 5.0
"""Seconds between stage checks while a followed job is SCHEDULING (its logs start once it runs)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    jobs = subparsers.add_parser("jobs", help="launch, list, follow or cancel your hf-ita runs on HF Jobs",
                                 description="Your hf-ita runs on Hugging Face Jobs (found by their hf-ita labels).")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    sub.required = True
    _add_launch(sub.add_parser("launch", help=_LAUNCH_HELP, description=_LAUNCH_DESCRIPTION))
    ls = sub.add_parser("list", help="your hf-ita runs, newest first")
    add_json(ls, "print JSON instead of a table")
    ls.set_defaults(func=run_list)
    status = sub.add_parser("status", help="the stage of one run")
    status.add_argument("job_id")
    add_json(status, "print JSON instead of text")
    status.set_defaults(func=run_status)
    logs = sub.add_parser("logs", help="print a run's logs")
    logs.add_argument("job_id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep streaming until the job ends")
    logs.set_defaults(func=run_logs)
    cancel = sub.add_parser("cancel", help="cancel a run")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=run_cancel)
    hardware = sub.add_parser("hardware", help="hardware flavors with price per hour")
    hardware.set_defaults(func=run_hardware)

    # `hf-ita launch`: alias of `hf-ita jobs launch`, parsed into the very same namespace.
    alias = subparsers.add_parser("launch", help="alias of `hf-ita jobs launch`", description=_LAUNCH_DESCRIPTION)
    _add_launch(alias)
    alias.set_defaults(command="jobs", jobs_command="launch")


_LAUNCH_HELP = "run `hf-ita train` + push on Hugging Face hardware (HF Jobs)"
_LAUNCH_DESCRIPTION = ("Start an HF Job that installs hf-ita, trains with CONFIG and pushes the result to --repo. "
                       "Your token goes to the job as the secret HF_TOKEN only.")


def _add_launch(launch: argparse.ArgumentParser) -> None:
    """The arguments of ``hf-ita jobs launch`` (and of its alias ``hf-ita launch``)."""
    launch.add_argument("config", nargs="?", help="YAML config file (the same one `hf-ita train` takes); none with --resume")
    launch.add_argument("--resume", action="store_true",
                        help="continue the run whose checkpoint --repo's hf-ita-checkpoints branch holds (pushed every "
                        "training.push_checkpoint_steps steps and at timeout/cancel), with the config pushed with it")
    launch.add_argument("--flavor", help="hardware flavor, e.g. a10g-small (see `hf-ita jobs hardware`); default: the "
                        "cheapest GPU flavor with the model.gpu_memory_gb the config declares")
    launch.add_argument("--force", action="store_true",
                        help="allow a CPU flavor for a model larger than the embedded one (it may run until the timeout)")
    launch.add_argument("--repo", help="output model repo owner/name (default: YOU/<name of training.output_dir>)")
    launch.add_argument("--public", action="store_true", help="publish a public repo (default: private)")
    launch.add_argument("--name", help="run name (job label), default derived from the repo and the time")
    add_set(launch, "training.num_epochs=2")
    launch.add_argument("--data-repo", metavar="OWNER/NAME",
                        help="upload a local data.train file to this private dataset repo and train from it")
    launch.add_argument("--package", help="pip requirement installed in the job (default: this release, or $HF_ITA_PACKAGE_SPEC)")
    launch.add_argument("--image", help="Docker image with CUDA + PyTorch (default: a pytorch/pytorch CUDA runtime image)")
    launch.add_argument("--timeout", default=None, help="maximum duration, e.g. 90m or 8h (default: 8h); capped to the "
                        "life left to your token when it is known (a `hf auth login` browser login records it; an "
                        "HF_TOKEN or a classic access token does not, and is not capped)")
    launch.add_argument("--dry-run", action="store_true", help="validate and print the job spec, launch nothing")
    launch.add_argument("--follow", action="store_true", help="stream the logs until the job ends")
    launch.add_argument("--backend", choices=("hf-ita", "autotrain"), default="hf-ita",
                        help="who trains in the job: hf-ita's recipe (default) or AutoTrain Advanced's own image with "
                             "the equivalent llm-sft config (local/bundled data uploaded first as a private dataset, "
                             "the system prompt written into its rows)")
    launch.set_defaults(func=run_launch)


def _client():
    from ...jobs.client import JobsClient

    return JobsClient()


def run_launch(args: argparse.Namespace) -> int:
    import contextlib
    import sys
    from pathlib import Path

    from ...config import RunConfig
    from ...errors import ConfigError, bilingual
    from ...jobs.client import build_job_spec, cost_line, is_local_source, timeout_cost_usd, validate_repo_id

    from ...jobs.token_life import cap_timeout, local_token_expiry

    note = sys.stderr if args.dry_run else sys.stdout  # a dry run's stdout is the JSON spec alone
    client = _client()
    if args.resume:
        if args.config or args.overrides or args.data_repo or args.public:
            raise ConfigError(bilingual("--resume usa la configurazione inviata con l'ultimo checkpoint",
                                        "--resume uses the config pushed with the last checkpoint: pass no CONFIG, "
                                        "--set, --data-repo or --public"))
        repo = validate_repo_id(args.repo, what="--resume --repo")
        config, step, private = client.resume_config(repo)
        print(f"Ripresa / resume: checkpoint-{step} di / of {repo} (hf-ita-checkpoints)", file=note)
    else:
        if not args.config:
            raise ConfigError(bilingual("manca il file di configurazione", "missing CONFIG (a YAML file)"),
                              hint="hf-ita launch CONFIG, or hf-ita launch --resume --repo OWNER/NAME")
        config = RunConfig.from_yaml(args.config, args.overrides)
        private = not args.public
    hardware = client.pick_flavor(config, args.flavor, force=args.force)
    repo = args.repo or f"{client.username}/{Path(config.training.output_dir).name}"
    repo = validate_repo_id(repo, what="--repo")
    timeout = cap_timeout(args.timeout, local_token_expiry())
    if timeout.note:
        print(timeout.note, file=note)
    if args.backend == "autotrain":
        if args.resume:
            raise ConfigError(bilingual("--resume riprende i run di hf-ita, non quelli di AutoTrain",
                                        "--resume continues hf-ita runs, not AutoTrain ones"))
        return _launch_autotrain(args, config, client, hardware, repo, timeout.timeout)
    data_repo = validate_repo_id(args.data_repo, what="--data-repo") if args.data_repo else None
    if data_repo and not is_local_source(config.data.train):
        raise ConfigError(bilingual(f"--data-repo carica un file locale, ma data.train è {config.data.train!r}",
                                    f"--data-repo uploads a local data.train file, but data.train is "
                                    f"{config.data.train!r}"))
    checked = config.with_overrides([f"data.train={data_repo}"]) if data_repo else config
    spec = build_job_spec(checked, flavor=hardware.name, output_repo=repo, private=private, run_name=args.name,
                          via="cli", package=args.package, image=args.image, timeout=timeout.timeout, resume=args.resume,
                          gpus=hardware.gpu_count)
    print(f"Hardware: {hardware.label}" + ("" if args.flavor else " (default: the cheapest GPU that fits)"), file=note)
    print(f"Costo / cost: {cost_line(hardware, spec.timeout)}", file=note)
    if args.dry_run:
        if data_repo:
            print(f"(dry run) would upload {config.data.train} to the private dataset {data_repo}", file=note)
        described = {**spec.describe(), "price_per_hour_usd": hardware.price_per_hour_usd,
                     "max_cost_usd": timeout_cost_usd(hardware, spec.timeout)}
        print(json.dumps(described, indent=2, ensure_ascii=False))
        return 0
    client.check_namespace(repo)
    upload = client.dataset_for_run(config.data.train, data_repo, private=True) if data_repo else contextlib.nullcontext()
    with upload as dataset:  # a refused launch deletes the dataset repo it just created
        if dataset:
            print(f"Dataset caricato / uploaded: {client.endpoint}/datasets/{dataset} (private)")
        run = client.submit(spec)
    print(f"Job avviato / started: {run.id}  [{hardware.label}]")
    print(f"  {run.url}")
    print(f"  stage: {run.stage_text}   output: {run.repo_url}")
    if not args.follow:
        print(f"Segui i log / follow the logs: hf-ita jobs logs {run.id} --follow")
        return 0
    return _follow(client, run.id)


def _launch_autotrain(args: argparse.Namespace, config, client, hardware, repo: str, timeout: str | None) -> int:
    """``jobs launch --backend autotrain``: the run as AutoTrain's llm-sft job (see :mod:`hf_ita_plugin.jobs.autotrain`)."""
    import sys

    from ...errors import ConfigError, bilingual
    from ...jobs.autotrain import launch_autotrain
    from ...jobs.client import cost_line

    if args.package or args.image:
        raise ConfigError(bilingual("--package/--image non valgono con --backend autotrain (usa l'immagine di AutoTrain)",
                                    "--package/--image do not apply to --backend autotrain (AutoTrain's own image runs)"))
    run, spec, notes = launch_autotrain(client, config, output_repo=repo, flavor=hardware.name, data_repo=args.data_repo,
                                        run_name=args.name, via="cli", timeout=timeout, force=args.force,
                                        dry_run=args.dry_run)
    note = sys.stderr if args.dry_run else sys.stdout
    print(f"Hardware: {hardware.label}", file=note)
    print(f"Costo / cost: {cost_line(hardware, spec.timeout)}", file=note)
    print("AutoTrain non può esprimere / AutoTrain cannot express:", file=note)
    for line in notes:
        print(f"  - {line}", file=note)
    if run is None:
        print(json.dumps(spec.describe(), indent=2, ensure_ascii=False))
        return 0
    print(f"Job AutoTrain avviato / started: {run.id}  [{hardware.label}]\n  {run.url}\n  output: {run.repo_url} (private)")
    if not args.follow:
        print(f"Segui i log / follow the logs: hf-ita jobs logs {run.id} --follow")
        return 0
    return _follow(client, run.id)


def _follow(client, job_id: str) -> int:
    run = client.status(job_id)
    if run.stage == "SCHEDULING":
        print("In attesa dell'hardware / waiting for the hardware (SCHEDULING)...", flush=True)
    for line in client.follow(job_id, poll_s=FOLLOW_POLL_S):
        print(line, flush=True)
    run = client.wait(job_id, poll_s=1.0, timeout_s=60)
    print(f"Stato finale / final stage: {run.stage_text}" + (f" ({run.message})" if run.message else ""))
    if run.stage == "COMPLETED":
        url = client.published_repo(run)
        print(f"Pubblicato / published: {url}" if url else f"Repo non trovato / repo not found yet: {run.repo_url}")
        return 0
    return 1


def run_list(args: argparse.Namespace) -> int:
    runs = _client().list_runs()
    if args.json:
        print(json.dumps([_run_dict(r) for r in runs], indent=2))
        return 0
    if not runs:
        print("Nessun job hf-ita / no hf-ita jobs yet")
        return 0
    print(f"{'JOB ID':<26} {'STAGE':<10} {'FLAVOR':<12} {'VIA':<6} {'CREATED':<17} REPO")
    for r in runs:
        created = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else "-"
        print(f"{r.id:<26} {r.stage:<10} {r.flavor or '-':<12} {r.via or '-':<6} {created:<17} {r.output_repo or '-'}")
    return 0


def _run_dict(r) -> dict:
    """One run as JSON-ready fields (``jobs list --json``, ``jobs status --json``)."""
    return {"id": r.id, "stage": r.stage, "name": r.name, "flavor": r.flavor, "repo": r.output_repo, "via": r.via,
            "created_at": r.created_at.isoformat() if r.created_at else None, "url": r.url, "message": r.message}


def run_status(args: argparse.Namespace) -> int:
    run = _client().status(args.job_id)
    if args.json:
        print(json.dumps(_run_dict(run), indent=2))
        return 0
    print(f"{run.id}: {run.stage_text}" + (f" ({run.message})" if run.message else ""))
    print(f"  {run.url}")
    if run.output_repo:
        print(f"  output: {run.repo_url}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    client = _client()
    if args.follow:
        return _follow(client, args.job_id)
    for line in client.logs(args.job_id, follow=False):
        print(line)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    run = _client().cancel(args.job_id)
    if run.finished:  # already over, or the Hub was quick
        print(f"{run.id}: {run.stage_text}")
    else:  # the Hub cancels asynchronously: the stage changes a little later
        print(f"{run.id}: annullamento richiesto / cancel requested (stage still {run.stage}; "
              f"check with: hf-ita jobs status {run.id})")
    return 0


def run_hardware(args: argparse.Namespace) -> int:
    for hw in _client().hardware():
        print(hw.label)
    return 0
