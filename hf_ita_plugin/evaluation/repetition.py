"""Answers caught in a repetition loop: the failure greedy decoding of a small model falls into.

An answer is in a loop when it says the same sentence again (a sentence of at least
``min_sentence_words`` words, compared without case and punctuation), or when one run of
``ngram`` words comes back ``min_repeats`` times or more. Natural Italian prose of a few hundred
words almost never does either; a model that has lost the thread does it until the token limit.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_repetition_loop(text: str, *, min_sentence_words: int = 4, ngram: int = 5, min_repeats: int = 3) -> bool:
    """Whether ``text`` repeats a sentence or a ``ngram``-word run ``min_repeats`` times (see module doc)."""
    sentences = [tuple(_words(s)) for s in _SENTENCE_END.split(text)]
    seen = Counter(s for s in sentences if len(s) >= min_sentence_words)
    if any(count >= 2 for count in seen.values()):
        return True
    words = _words(text)
    grams = Counter(tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1))
    return any(count >= min_repeats for count in grams.values())


def loop_rate(texts: Iterable[str], **kwargs) -> float | None:
    """Share of ``texts`` caught in a loop (None for no texts)."""
    texts = list(texts)
    if not texts:
        return None
    return sum(is_repetition_loop(t, **kwargs) for t in texts) / len(texts)
