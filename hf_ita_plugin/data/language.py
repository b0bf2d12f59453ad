"""Language identification of answers, with the model that ships inside ``py3langid``.

Used by the cleaner (drop answers that are not Italian) and by the evaluation suite (Italian-rate
of generated answers). Code blocks and inline code are removed before identification (code is
not a language), and prose too short to identify reliably is reported as ``None`` ("unknown")
rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import DataError, bilingual
from .words import text_words

MIN_PROSE_CHARS = 20
"""Below this many letters of prose (code removed) a language guess is not trusted."""
MAX_PROSE_CHARS = 400
"""Identification reads at most this many characters: enough for a reliable guess, and fast."""

_FENCED = re.compile(r"(```|~~~).*?(?:\1|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"https?://\S+")

LANGUAGE_NAMES = {
    "it": ("italiano", "italian"), "en": ("inglese", "english"), "fr": ("francese", "french"),
    "de": ("tedesco", "german"), "es": ("spagnolo", "spanish"), "pt": ("portoghese", "portuguese"),
    "ro": ("rumeno", "romanian"), "nl": ("olandese", "dutch"), "la": ("latino", "latin"),
    "ru": ("russo", "russian"), "zh": ("cinese", "chinese"), "ja": ("giapponese", "japanese"),
}


@dataclass(frozen=True)
class LanguageGuess:
    language: str | None
    """ISO 639-1 code of the most likely language, or ``None`` when the prose is too short to tell."""
    probability: float
    """Probability of that language."""
    italian_probability: float
    """Probability of Italian (close relatives such as Ligurian or Venetian can outrank it on short texts)."""
    prose_chars: int

    def is_italian(self, min_italian_probability: float = 0.3) -> bool | None:
        """``True``/``False``, or ``None`` when the prose was too short to tell."""
        if self.language is None:
            return None
        return self.language == "it" or self.italian_probability >= min_italian_probability


@lru_cache(maxsize=1)
def _identifier():
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError(bilingual("il riconoscimento della lingua richiede il pacchetto py3langid",
                                  "language identification needs the package py3langid"),
                        hint="pip install 'hf-ita-plugin[data]'  (or: pip install py3langid)") from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def strip_code(text: str) -> str:
    """``text`` without fenced code blocks, inline code and URLs (what is left is prose)."""
    if "`" in text or "~~~" in text:
        text = _FENCED.sub(" ", text)
        text = _INLINE_CODE.sub(" ", text)
    if "://" in text:
        text = _URL.sub(" ", text)
    return text


def identify(text: str, *, min_chars: int = MIN_PROSE_CHARS) -> LanguageGuess:
    """Guess the language of the prose in ``text`` (code removed).

    >>> identify("Roma è la capitale d'Italia e conta quasi tre milioni di abitanti.").language
    'it'
    """
    prose = strip_code(text)
    letters = sum(map(str.isalpha, prose[: MAX_PROSE_CHARS * 2]))
    if letters < min_chars:
        return LanguageGuess(None, 0.0, 0.0, letters)
    ranking = _identifier().rank(prose[:MAX_PROSE_CHARS])
    language, probability = ranking[0]
    italian = next((float(p) for code, p in ranking if code == "it"), 0.0)
    return LanguageGuess(str(language), float(probability), italian, letters)


_WORD = re.compile(r"[^\W\d_]+")
# Words frequent in Italian and rare in its neighbours (Spanish, French, Portuguese, English).
_ITALIAN_MARKERS = frozenset(
    "il di che è per non della del delle degli dei gli sono anche più perché questo questa questi come nel nella "
    "nei alla alle allo ma una uno lo ci può hanno essere molto già ancora quando dove sul sulla dalla dal "
    "dopo quindi ho hai puoi senza tra fra ogni nell nello negli sull sugli dall dagli dell dello po però ciò così "
    "invece oppure mentre inoltre qualche quello quella quelli quelle tutto tutti tutte suo tuo loro poi sarà "
    "stato stata fatto".split()
)
_ENGLISH_MARKERS = frozenset("the and of to is you that with for this are it be on your was have".split())
# Function words of Spanish, French and Portuguese that Italian does not use.
_NEIGHBOUR_MARKERS = frozenset(
    "el los las y que por pero está también muy hay esta este les des et est dans pour pas sur aux avec cette sont "
    "os não em ao dos das você".split()
)
_FOREIGN_MARKERS = _ENGLISH_MARKERS | _NEIGHBOUR_MARKERS


def looks_italian(text: str, *, min_words: int = 12) -> bool:
    """A cheap, conservative check: ``True`` only for prose that is unmistakably Italian.

    At least 10% of the words are frequent Italian-only words and at most 2% are function words
    of English, Spanish, French or Portuguese. ``False`` means "not sure" (ask :func:`identify`),
    never "not Italian".
    """
    return italian_by_marker_words(_WORD.findall(strip_code(text)[: MAX_PROSE_CHARS * 2].lower()), min_words=min_words)


def italian_by_marker_words(words: list[str], *, min_words: int = 12) -> bool:
    """:func:`looks_italian` on the prose's words already found (lower-case, letters only)."""
    if len(words) < min_words:
        return False
    italian = sum(map(_ITALIAN_MARKERS.__contains__, words))  # map over a C method: no Python frame per word
    foreign = sum(map(_FOREIGN_MARKERS.__contains__, words))
    return italian >= 0.10 * len(words) and foreign <= 0.02 * len(words)


def answers_look_italian(messages: list[dict[str, Any]], answers: str) -> tuple[bool, list[list[str]] | None]:
    """:func:`looks_italian` of a conversation's ``answers`` (its assistant contents joined by newlines).

    Plain prose short enough to be read whole is judged on the messages' :func:`~.words.text_words`
    (letters only), which are returned too: the deduplicator needs the same words. Otherwise the
    words are ``None``.
    """
    if len(answers) <= MAX_PROSE_CHARS * 2 and "`" not in answers and "~~~" not in answers and "://" not in answers:
        words = [text_words(m["content"]) for m in messages]
        answer_words = [w for m, found in zip(messages, words) if m["role"] == "assistant" for w in found]
        return italian_by_marker_words(list(filter(str.isalpha, answer_words))), words
    return looks_italian(answers), None


_LANGUAGE_OF_NAME = {name: code for code, names in LANGUAGE_NAMES.items() if code != "it" for name in names}
_REQUEST = re.compile(r"\b(?:in|into|to|verso\s+l')\s*(?:lingua\s+)?(" + "|".join(_LANGUAGE_OF_NAME) + r")\b")


def requested_languages(prompt: str) -> set[str]:
    """Languages a prompt explicitly asks the answer to be in (``"traduci in inglese"`` -> ``{"en"}``).

    A translation request towards another language makes an answer in that language correct.
    """
    return {_LANGUAGE_OF_NAME[name] for name in _REQUEST.findall(prompt.lower())}
