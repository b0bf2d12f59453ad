"""Duplicate removal: exact duplicates after normalisation, and near duplicates with MinHash LSH.

The first occurrence of a conversation is kept; a later one is reported as a duplicate of it.

- *exact*: the conversation's text is normalised (NFKC, case-folded, punctuation and repeated
  whitespace removed) and hashed; equal hashes are duplicates.
- *near*: word 3-gram shingles of the normalised text are hashed (:func:`shingle_hashes`), sketched with
  ``datasketch.MinHash`` and indexed in ``datasketch.MinHashLSH``; each LSH candidate is then
  confirmed with the exact Jaccard similarity of the two shingle sets, so the threshold is exact
  and there are no false positives from the sketch.

Signatures (:func:`signature`) are pure functions of the messages, so they can be computed in
worker processes; :class:`Deduplicator` holds the index and runs in one process.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_NUM_PERM = 64
DEFAULT_THRESHOLD = 0.8
SHINGLE_WORDS = 3
LSH_MARGIN = 0.1

_WORD = re.compile(r"\w+")


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = DEFAULT_THRESHOLD
    """Jaccard similarity of word 3-gram sets at or above which two conversations are near duplicates."""
    num_perm: int = DEFAULT_NUM_PERM


@dataclass
class Signature:
    """What the deduplicator needs to know about one conversation."""

    key: bytes
    """Hash of the normalised text (exact duplicates)."""
    shingles: np.ndarray
    """Sorted unique CRC32 hashes of the word 3-grams (uint32)."""
    minhash: np.ndarray | None
    """MinHash values (``num_perm`` of them), or ``None`` when near-dedup is off."""


@dataclass
class Duplicate:
    reason: str
    """``exact_duplicate`` or ``near_duplicate``."""
    of_index: int
    """Index (in the input) of the kept conversation this one duplicates."""
    similarity: float


def normalize_for_dedup(messages: list[dict[str, Any]]) -> str:
    """The text two conversations are compared on: roles and contents, case-folded, punctuation-free."""
    parts = []
    for m in messages:
        text = unicodedata.normalize("NFKC", str(m.get("content", ""))).casefold()
        # the words are the runs of \w characters (no character is both \w and whitespace)
        parts.append(f"{m.get('role', '')}: {' '.join(_WORD.findall(text))}")
    return "\n".join(parts)


def _identity(value: int) -> int:
    return value


def shingle_hashes(text: str) -> np.ndarray:
    """Sorted unique uint32 hashes of the word 3-grams of ``text`` (all words if fewer than three).

    Each word is hashed once (CRC32) and a 3-gram's hash combines its words' hashes with odd
    multipliers (wrapping uint32 arithmetic), which is order-sensitive like the joined 3-gram.
    """
    words = text.split()
    if not words:
        return np.zeros(0, dtype=np.uint32)
    h = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint32, count=len(words))
    if len(h) < SHINGLE_WORDS:
        grams = np.array([np.bitwise_xor.reduce(h * _MULTIPLIERS[: len(h)])], dtype=np.uint32)
    else:
        n = len(h) - SHINGLE_WORDS + 1
        grams = h[:n] * _MULTIPLIERS[0]
        for k in range(1, SHINGLE_WORDS):
            grams = (grams ^ (h[k : k + n] * _MULTIPLIERS[k])) * _MIX
    return np.unique(grams)


_MULTIPLIERS = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D], dtype=np.uint32)
_MIX = np.uint32(0x27D4EB2F)


class _Sketch:
    """A reusable MinHash (one per process and ``num_perm``): same permutations -> comparable values."""

    _cache: dict[int, Any] = {}

    @classmethod
    def values(cls, hashes: np.ndarray, num_perm: int) -> np.ndarray:
        sketch = cls._cache.get(num_perm)
        if sketch is None:
            from datasketch import MinHash

            sketch = cls._cache[num_perm] = MinHash(num_perm=num_perm, seed=1, hashfunc=_identity, scheme="affine32")
        sketch.clear()
        if len(hashes):
            sketch.update_batch(hashes.tolist())
        return sketch.hashvalues.copy()


def signature(messages: list[dict[str, Any]], config: DedupConfig | None = None) -> Signature:
    """Exact key, shingle hashes and MinHash of a conversation."""
    config = config or DedupConfig()
    text = normalize_for_dedup(messages)
    key = hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()
    hashes = shingle_hashes(text)
    minhash = _Sketch.values(hashes, config.num_perm) if config.near else None
    return Signature(key, hashes, minhash)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class Deduplicator:
    """Streaming duplicate detector: feed conversations in order, keep the first of each group.

    >>> dd = Deduplicator()
    >>> a = [{"role": "user", "content": "Qual è la capitale d'Italia?"}, {"role": "assistant", "content": "Roma."}]
    >>> dd.check(0, signature(a)) is None, dd.check(1, signature(a)).reason
    (True, 'exact_duplicate')
    """

    def __init__(self, config: DedupConfig | None = None):
        self.config = config or DedupConfig()
        if not 0.0 < self.config.threshold <= 1.0:
            from ..errors import ConfigError

            raise ConfigError(f"dedup threshold must be in (0, 1], got {self.config.threshold}")
        self._exact: dict[bytes, int] = {}
        self._shingles: dict[int, np.ndarray] = {}
        self._lsh = None
        if self.config.near:
            from datasketch import MinHashLSH

            # The index only proposes candidates (each is confirmed with the exact Jaccard): tune it
            # below the threshold and towards recall, so near duplicates are not missed.
            self._lsh = MinHashLSH(threshold=max(0.05, self.config.threshold - LSH_MARGIN),
                                   num_perm=self.config.num_perm, weights=(0.3, 0.7))

    def check(self, index: int, sig: Signature) -> Duplicate | None:
        """``None`` if the conversation is new (it is then remembered), else what it duplicates."""
        if self.config.exact:
            first = self._exact.get(sig.key)
            if first is not None:
                return Duplicate("exact_duplicate", first, 1.0)
        if self._lsh is not None and sig.minhash is not None:
            from datasketch import LeanMinHash

            sketch = LeanMinHash(seed=1, hashvalues=sig.minhash, scheme="affine32")
            best: tuple[float, int] | None = None
            for candidate in self._lsh.query(sketch):
                sim = jaccard(sig.shingles, self._shingles[candidate])
                if sim >= self.config.threshold and (best is None or sim > best[0]):
                    best = (sim, candidate)
            if best is not None:
                return Duplicate("near_duplicate", best[1], round(best[0], 4))
            self._lsh.insert(index, sketch, check_duplication=False)
            self._shingles[index] = sig.shingles
        if self.config.exact:
            self._exact[sig.key] = index
        return None
