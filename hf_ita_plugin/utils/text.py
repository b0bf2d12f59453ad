"""Decoding text inputs: a file that is not in the expected encoding is one clear error, not a traceback.

Every text input (data files, config YAML, template files) is read through :func:`read_text`, which
names the file, the line and the byte offset of the first undecodable byte and says how to fix it.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from ..errors import HfItaError, bilingual

DEFAULT_ENCODING = "utf-8"


def check_encoding(encoding: str, *, error: type[HfItaError] = HfItaError, where: str = "--encoding") -> str:
    """``encoding`` if Python knows it, else ``error`` naming ``where``."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise error(bilingual(f"codifica sconosciuta {encoding!r}", f"unknown encoding {encoding!r}", where=where),
                    hint="e.g. utf-8, latin-1, cp1252") from None
    return encoding


def decode(data: bytes, path: str | os.PathLike, *, encoding: str = DEFAULT_ENCODING,
           error: type[HfItaError] = HfItaError, option: str | None = "--encoding") -> str:
    """``data`` decoded with ``encoding`` (a UTF-8 BOM is dropped); ``error`` names file, line and byte offset."""
    check_encoding(encoding, error=error)
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start:exc.end].hex(" ")
        shown = "UTF-8" if encoding == "utf-8-sig" else encoding
        hint = f"convert it: iconv -f latin1 -t utf-8 {path} > {Path(path).stem}.utf8{Path(path).suffix}"
        if option:
            hint += f", or pass {option} latin-1 (or the file's real encoding)"
        raise error(bilingual(f"riga {line}, colonna {column} (byte {exc.start}): il file non è testo {shown} valido",
                              f"line {line}, column {column} (byte offset {exc.start}): not valid {shown} text "
                              f"(byte {bad})", where=path), hint=hint) from None


def read_text(path: str | os.PathLike, *, encoding: str = DEFAULT_ENCODING, error: type[HfItaError] = HfItaError,
              option: str | None = "--encoding") -> str:
    """The text of ``path`` decoded with ``encoding`` (see :func:`decode`)."""
    return decode(Path(path).read_bytes(), path, encoding=encoding, error=error, option=option)
