"""``hf-ita space deploy``: create or update the Gradio Space from this checkout, in one commit."""

from __future__ import annotations

import argparse
import json

from ..options import add_json, add_token


def register(subparsers: argparse._SubParsersAction) -> None:
    space = subparsers.add_parser(
        "space", help="deploy the Gradio Space (training launcher + chat) from this checkout",
        description="Crea o aggiorna lo Space Gradio con il codice di questo checkout. "
                    "Create or update the Gradio Space with this checkout's code.")
    sub = space.add_subparsers(dest="space_command", metavar="ACTION")
    sub.required = True
    deploy = sub.add_parser(
        "deploy", help="build this checkout's wheel and create or update the Space in one commit",
        description="Costruisce il wheel di questo checkout, lo carica (una volta per contenuto) nel repo pubblico "
                    "OWNER/hf-ita-wheels e scrive lo Space (app.py, README.md, requirements.txt) in un solo commit. "
                    "Builds this checkout's wheel, uploads it once per content to the public OWNER/hf-ita-wheels "
                    "repo, and writes the Space (app.py, README.md, requirements.txt) in one commit.")
    deploy.add_argument("--repo", required=True, help="the Space id, OWNER/NAME")
    deploy.add_argument("--private", action="store_true", help="create the Space as private")
    deploy.add_argument("--hardware", default="cpu-basic",
                        help="Space hardware (default cpu-basic; a cpu-* flavor gets CPU torch in requirements.txt)")
    add_token(deploy)
    add_json(deploy, "print the result as JSON")
    deploy.set_defaults(func=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    from ...jobs.deploy import deploy_space

    result = deploy_space(args.repo, private=args.private, hardware=args.hardware, token=args.token)
    summary = {"space": result.repo_id, "url": result.url, "commit": result.commit, "files": list(result.files),
               "wheel": result.wheel.path_in_repo, "wheel_sha256": result.wheel.sha256,
               "wheel_uploaded": result.wheel_uploaded}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"Space     {result.url}\ncommit    {result.commit}\nfiles     {', '.join(result.files)}\n"
          f"wheel     {result.wheel.path_in_repo} ({result.wheel.size / 1024:.0f} KiB, "
          f"{'caricato / uploaded' if result.wheel_uploaded else 'già presente / already there'})")
    return 0
