"""The ``hf-ita`` command line: :mod:`.main` assembles the command groups of :mod:`.commands`."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
