"""The two ways a small model's greedy answer repeats instead of answering.

- **Loop**: the answer says the same sentence again (a sentence of at least ``min_sentence_words``
  words, compared without case and punctuation), or one run of ``ngram`` words comes back
  ``min_repeats`` times or more. Natural Italian prose of a few hundred words almost never does
  either; a model that has lost the thread does it until the token limit.
- **Echo**: most of the answer repeats its own prompt (the system prompt or the question): at least
  ``min_share`` of its ``ngram``-word runs occur there. A base model that has never seen a chat
  format does this, and its copy of a well-written system prompt reads as perfect Italian to a
  dictionary or a language identifier.
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


def echoes_prompt(answer: str, prompt_texts: Iterable[str], *, ngram: int = 6, min_share: float = 0.5) -> bool:
    """Whether at least ``min_share`` of ``answer``'s ``ngram``-word runs occur in ``prompt_texts`` (see module doc).

    Answers shorter than ``ngram`` words never echo.
    """
    words = _words(answer)
    grams = [tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]
    if not grams:
        return False
    source: set[tuple[str, ...]] = set()
    for text in prompt_texts:
        prompt_words = _words(text or "")
        source.update(tuple(prompt_words[i:i + ngram]) for i in range(len(prompt_words) - ngram + 1))
    return sum(g in source for g in grams) / len(grams) >= min_share


def echo_rate(answers: Iterable[str], prompts: Iterable[Iterable[str]], **kwargs) -> float | None:
    """Share of ``answers`` that echo their prompt (``prompts[i]``: the texts answer ``i`` was given); None for none."""
    pairs = list(zip(answers, prompts, strict=True))
    if not pairs:
        return None
    return sum(echoes_prompt(a, p, **kwargs) for a, p in pairs) / len(pairs)


def loop_rate(texts: Iterable[str], **kwargs) -> float | None:
    """Share of ``texts`` caught in a loop (None for no texts)."""
    texts = list(texts)
    if not texts:
        return None
    return sum(is_repetition_loop(t, **kwargs) for t in texts) / len(texts)
