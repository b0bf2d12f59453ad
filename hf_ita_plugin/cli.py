"""The ``hf-ita`` command line.

Each command group lives in its own module under :mod:`hf_ita_plugin.commands` and exposes
``register(subparsers)``; this module only assembles them and turns user errors
(:class:`~hf_ita_plugin.errors.HfItaError`) into one readable message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import HfItaError

# OpenMP threads that busy-wait burn the cores other work needs (llama.cpp next to torch, a shared
# laptop, CI): measured here, a 100-token forward took 18 s instead of 2.5 s on 2 loaded cores.
# Sleep-waiting costs little when the machine is idle. A value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Command modules, in the order they appear in --help.
COMMANDS = [
    "hf_ita_plugin.commands.train",
    "hf_ita_plugin.commands.template",
    "hf_ita_plugin.commands.data",
    "hf_ita_plugin.commands.eval",
    "hf_ita_plugin.commands.jobs",
    "hf_ita_plugin.commands.gguf",
    "hf_ita_plugin.commands.hub",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-ita",
        description="Fine-tune open LLMs for Italian: QLoRA training, chat templates, GGUF, Hub, Jobs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except HfItaError as exc:
        print(f"hf-ita: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hf-ita: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
