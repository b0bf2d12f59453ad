"""Words of a text as the data pipeline compares them: NFKC, case-folded, runs of ``\\w`` characters.

One tokenization shared by the language check (:mod:`.language`, Italian marker words) and the
deduplicator (:mod:`.dedup`, word 3-grams), so a conversation's words are found once.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+")


def text_words(text: str) -> list[str]:
    """The words of ``text``: NFKC-normalised, case-folded runs of ``\\w`` (letters, digits, ``_``).

    >>> text_words("Perché l'IVA è al 22%?")
    ['perché', 'l', 'iva', 'è', 'al', '22']
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
