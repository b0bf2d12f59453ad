"""User-facing errors.

Every error a user can cause (bad config, bad data, missing model...) is raised as a subclass of
:class:`HfItaError`. The CLI prints these as one readable message with a hint and exits with code 2,
instead of a traceback wall.

Language policy: a user-facing error message is ``"italiano / English"``, the Italian text first,
then the English one, joined by :func:`bilingual`. Where the problem is (file, row, field, flag)
comes first, once, before both texts: ``"train.jsonl: line 3: riga vuota / empty line"``. Values
(paths, names, numbers, quoted input) are the same in both texts; details that read the same in
any language (an exception's own text, a list of allowed values, what was found instead) come once,
at the end of the English text. Hints (``hint=``) are commands, flags or lists of allowed values
and stay short; they need no translation.
"""

from __future__ import annotations


class HfItaError(Exception):
    """Base class for errors caused by user input or environment, with an optional fix hint."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  suggerimento / hint: {self.hint}"


class ConfigError(HfItaError):
    """A configuration value is missing, of the wrong type, or not among the allowed values."""


class DataError(HfItaError):
    """A dataset file or row is unusable (missing file, malformed row, empty dataset...)."""


class ConversationError(DataError):
    """A conversation (list of messages) breaks the rules of the chat template."""


class ModelError(HfItaError):
    """A model or tokenizer cannot be found, loaded, or used as requested."""


class HubError(HfItaError):
    """A Hugging Face Hub operation failed: bad repo id, missing token or permission, a repo holding
    other content, or a network failure (the message says whether anything was published)."""


class JobsError(HfItaError):
    """A Hugging Face Jobs request failed or was refused (not signed in, unknown job, Hub unreachable)."""


class EvaluationError(HfItaError):
    """An evaluation cannot run as asked (unknown task, lm-evaluation-harness or its data missing)."""


def bilingual(italian: str, english: str, *, where: object = None) -> str:
    """``"WHERE: italiano / English"`` (or ``"italiano / English"``): the one format of user-facing errors."""
    text = f"{italian} / {english}"
    return f"{where}: {text}" if where is not None and str(where) else text


def describe_yaml_error(path, exc: Exception) -> str:
    """``"PATH: YAML non valido alla riga L, colonna C / malformed YAML at line L, column C: PROBLEM"``."""
    mark = getattr(exc, "problem_mark", None)
    where_it = f" alla riga {mark.line + 1}, colonna {mark.column + 1}" if mark else ""
    where_en = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return bilingual(f"YAML non valido{where_it}", f"malformed YAML{where_en}: {problem}", where=path)
