"""Options shared by ``hf-ita`` commands, each defined once here and added by the commands that need it.

The vocabulary:

* ``--output-dir DIR`` -- where a command writes a folder;
* ``--output FILE`` -- where a command writes one file;
* ``--set KEY=VALUE`` -- override a config value (repeatable);
* ``--token TOKEN`` -- a Hugging Face token;
* ``--json`` -- print the results as JSON instead of text;
* ``--quiet`` -- no progress bars.

Old spellings (``--out``) stay accepted for one release as hidden aliases: they store into the same
destination and print a one-line deprecation note on stderr naming the new flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

#: Spellings replaced by ``--output-dir`` / ``--output``, accepted (hidden) for one release.
OLD_OUTPUT_FLAGS = ("--out",)


class _DeprecatedAlias(argparse.Action):
    """Store like the new flag, after a one-line note on stderr naming it."""

    def __init__(self, option_strings, dest, *, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"hf-ita: {option_string} è deprecato, usa {self.new_flag} / {option_string} is deprecated, "
              f"use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_with_aliases(parser: argparse.ArgumentParser, flag: str, old: Sequence[str], *, dest: str,
                      required: bool, metavar: str, help: str, default=None) -> argparse.Action:
    """``flag`` plus hidden deprecated ``old`` spellings; ``required`` is satisfied by any of them."""
    target = parser.add_mutually_exclusive_group(required=True) if required and old else parser
    action = target.add_argument(flag, dest=dest, metavar=metavar, help=help, default=default,
                                 **({"required": True} if required and not old else {}))
    for name in old:
        target.add_argument(name, dest=dest, metavar=metavar, help=argparse.SUPPRESS, default=default,
                            action=_DeprecatedAlias, new_flag=flag)
    return action


def add_output_dir(parser: argparse.ArgumentParser, help: str, *, required: bool = False,
                   old: Sequence[str] = OLD_OUTPUT_FLAGS, dest: str = "output_dir") -> argparse.Action:
    """``--output-dir DIR``: the folder a command writes (``old`` spellings accepted, hidden, with a note)."""
    return _add_with_aliases(parser, "--output-dir", old, dest=dest, required=required, metavar="DIR", help=help)


def add_output_file(parser: argparse.ArgumentParser, help: str, *, required: bool = False,
                    old: Sequence[str] = OLD_OUTPUT_FLAGS, dest: str = "output") -> argparse.Action:
    """``--output FILE``: the one file a command writes (``old`` spellings accepted, hidden, with a note)."""
    return _add_with_aliases(parser, "--output", old, dest=dest, required=required, metavar="FILE", help=help)


def add_set(parser: argparse.ArgumentParser, example: str = "training.learning_rate=1e-4") -> argparse.Action:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``: override a config value."""
    return parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                               help=f"override a config value, e.g. --set {example} (repeatable)")


def add_token(parser: argparse.ArgumentParser,
              help: str = "Hugging Face token (default: HF_TOKEN or `hf auth login`)") -> argparse.Action:
    """``--token TOKEN``: a Hugging Face token (never printed)."""
    return parser.add_argument("--token", metavar="TOKEN", help=help)


def add_json(parser: argparse.ArgumentParser, help: str = "print the results as JSON") -> argparse.Action:
    """``--json``: machine-readable output for a command that prints results."""
    return parser.add_argument("--json", action="store_true", help=help)


def add_quiet(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--quiet``: no progress bars."""
    return parser.add_argument("--quiet", action="store_true", help="no progress bars")
