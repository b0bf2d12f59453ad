"""Share of words a real Italian dictionary accepts: Debian's ``hunspell-it`` read by ``spylls``.

Invented words ("cittadinanzza", "perchéé") are what a small model's Italian goes wrong with
first, and neither loss nor language identification sees them. The dictionary is the Italian
Hunspell dictionary Debian ships (``apt-get install hunspell-it``: ``/usr/share/hunspell/it_IT``),
read by the pure-Python Hunspell port ``spylls`` (``pip install spylls``, in the ``eval`` extra).
``HF_ITA_HUNSPELL`` may name another ``.aff``/``.dic`` pair by path stem.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from ..errors import EvaluationError

DEFAULT_DICTIONARY = "/usr/share/hunspell/it_IT"
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
"""Runs of letters, with inner apostrophes kept (``dell'anno`` is one word for Hunspell)."""


@dataclass(frozen=True)
class SpellingScore:
    """How many of the checked words the dictionary accepts."""

    words: int
    accepted: int
    unknown: tuple[str, ...]
    """The distinct rejected words, most frequent first (at most 50)."""

    @property
    def rate(self) -> float | None:
        return self.accepted / self.words if self.words else None


def dictionary_path() -> Path:
    """The ``.aff``/``.dic`` stem in use (``HF_ITA_HUNSPELL`` or Debian's it_IT)."""
    return Path(os.environ.get("HF_ITA_HUNSPELL", DEFAULT_DICTIONARY))


@lru_cache(maxsize=4)
def _dictionary(stem: str):
    try:
        from spylls.hunspell import Dictionary
    except ImportError:
        raise EvaluationError("controllo ortografico: spylls non è installato / spell check: spylls is not installed",
                              hint='pip install spylls   (or pip install "hf-ita-plugin[eval]")') from None
    if not Path(stem + ".aff").is_file() or not Path(stem + ".dic").is_file():
        raise EvaluationError(f"dizionario italiano mancante / Italian dictionary missing: {stem}.aff/.dic",
                              hint="apt-get install hunspell-it   (or set HF_ITA_HUNSPELL to a .aff/.dic path stem)")
    return Dictionary.from_files(stem)


def words_of(text: str) -> list[str]:
    """The words of ``text`` that a dictionary can judge (letters only; numbers, code and symbols skipped)."""
    return _WORD.findall(text.replace("’", "'"))


def spelling_score(texts: Iterable[str], *, dictionary: str | os.PathLike | None = None) -> SpellingScore:
    """Check every word of ``texts`` against the Italian dictionary."""
    checker = _dictionary(str(dictionary or dictionary_path()))
    cache: dict[str, bool] = {}
    counts: dict[str, int] = {}
    words = accepted = 0
    for text in texts:
        for word in words_of(text):
            ok = cache.get(word)
            if ok is None:
                ok = cache[word] = bool(checker.lookup(word))
            words += 1
            if ok:
                accepted += 1
            else:
                counts[word] = counts.get(word, 0) + 1
    unknown = tuple(sorted(counts, key=lambda w: (-counts[w], w))[:50])
    return SpellingScore(words=words, accepted=accepted, unknown=unknown)
