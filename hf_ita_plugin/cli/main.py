"""The ``hf-ita`` command line.

Each command group lives in its own module under :mod:`hf_ita_plugin.cli.commands` and exposes
``register(subparsers)``; this module only assembles them and turns user errors
(:class:`~hf_ita_plugin.errors.HfItaError`) into one readable message and exit code 2.
Options shared by several commands are defined once in :mod:`hf_ita_plugin.cli.options`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import HfItaError, bilingual

# Command modules, in the order they appear in --help.
COMMANDS = [
    "hf_ita_plugin.cli.commands.train",
    "hf_ita_plugin.cli.commands.template",
    "hf_ita_plugin.cli.commands.data",
    "hf_ita_plugin.cli.commands.eval",
    "hf_ita_plugin.cli.commands.jobs",
    "hf_ita_plugin.cli.commands.gguf",
    "hf_ita_plugin.cli.commands.hub",
    "hf_ita_plugin.cli.commands.chat",
    "hf_ita_plugin.cli.commands.autotrain",
    "hf_ita_plugin.cli.commands.space",
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
        print(f"hf-ita: {bilingual('interrotto', 'interrupted')}", file=sys.stderr)
        return 130
    return int(result or 0)


def console_main() -> int:
    """The ``hf-ita`` console script: process defaults (:mod:`hf_ita_plugin.utils.env`), then :func:`main`."""
    from ..utils.env import apply_runtime_defaults

    apply_runtime_defaults()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
