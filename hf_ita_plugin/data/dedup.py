"""Duplicate removal: exact duplicates after normalisation, and near duplicates with MinHash LSH.

The first occurrence of a conversation is kept; a later one is reported as a duplicate of it.

- *exact*: the conversation's text is normalised (NFKC, case-folded, punctuation and repeated
  whitespace removed) and hashed; equal hashes are duplicates.
- *near*: word 3-gram shingles of the normalised text are hashed (:func:`shingle_hashes`) and
  sketched with MinHash; the sketch is cut into LSH bands (:func:`lsh_bands`) whose keys index
  the kept conversations. Each conversation sharing a band key is a candidate, confirmed with the
  exact Jaccard similarity of the two shingle sets, so the threshold is exact and there are no
  false positives from the sketch.

Signatures (:func:`signatures`) are pure functions of the messages and are computed a chunk at a
time in worker processes: the MinHash of a whole chunk is one numpy computation (each
permutation is a multiply-shift hash ``(a * x + b) mod 2**64 >> 32``, laid out as a
permutations x shingles matrix), and only the band keys and shingle bytes travel to the main
process, where :class:`Deduplicator` holds the index and does dictionary lookups. Against
per-conversation hashing with datasketch's MinHash and its LSH index (band keys rebuilt from
each sketch in the main process) on the bench rows: signatures 168 -> 49 us per row, index
checks 71 -> 19 us (30k rows), pickled signatures 700 -> 500 bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Sequence

import numpy as np

from .words import text_words

DEFAULT_NUM_PERM = 64
DEFAULT_THRESHOLD = 0.8
SHINGLE_WORDS = 3
MIN_RECALL = 0.99
"""Band layout: a pair exactly at the threshold becomes a candidate with at least this probability."""

_SKETCH_BLOCK = 128
"""Conversations sketched together in one ``permutations x shingles`` matrix."""
_PERMUTATION_SEED = 1
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(32)


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = DEFAULT_THRESHOLD
    """Jaccard similarity of word 3-gram sets at or above which two conversations are near duplicates."""
    num_perm: int = DEFAULT_NUM_PERM


class Signature(NamedTuple):
    """What the deduplicator needs to know about one conversation (small and cheap to pickle)."""

    key: bytes
    """Hash of the normalised text (exact duplicates)."""
    shingles: bytes
    """Sorted unique hashes of the word 3-grams, as uint32 bytes (see :func:`shingle_hashes`)."""
    bands: tuple[int, ...]
    """LSH band keys of the MinHash (``()`` when near-dedup is off)."""


@dataclass
class Duplicate:
    reason: str
    """``exact_duplicate`` or ``near_duplicate``."""
    of_index: int
    """Index (in the input) of the kept conversation this one duplicates."""
    similarity: float


def normalize_for_dedup(messages: list[dict[str, Any]]) -> str:
    """The text two conversations are compared on: roles and contents, case-folded, punctuation-free."""
    return normalized_text_and_words(messages)[0]


def normalized_text_and_words(messages: list[dict[str, Any]],
                              message_words: list[list[str]] | None = None) -> tuple[str, list[str]]:
    """:func:`normalize_for_dedup` and its words (``text.split()``, without splitting it again).

    ``message_words``: each message's :func:`~.words.text_words`, when already known.
    """
    parts: list[str] = []
    words: list[str] = []
    for i, m in enumerate(messages):
        # the words are the runs of \w characters (no character is both \w and whitespace)
        found = message_words[i] if message_words is not None else text_words(str(m.get("content", "")))
        head = f"{m.get('role', '')}:"
        parts.append(f"{head} {' '.join(found)}")
        words += head.split()
        words += found
    return "\n".join(parts), words


def shingle_hashes(text: str) -> np.ndarray:
    """Sorted unique uint32 hashes of the word 3-grams of ``text`` (all words if fewer than three).

    Each word is hashed once (CRC32) and a 3-gram's hash combines its words' hashes with odd
    multipliers (wrapping uint32 arithmetic), which is order-sensitive like the joined 3-gram.
    """
    return shingle_hash_sets([text])[0]


def shingle_hash_sets(texts: Sequence[str]) -> list[np.ndarray]:
    """:func:`shingle_hashes` of many texts, computed together (one numpy pass over all their words)."""
    return word_shingle_hash_sets([text.split() for text in texts])


def word_shingle_hash_sets(word_lists: Sequence[list[str]]) -> list[np.ndarray]:
    """:func:`shingle_hash_sets` of texts already split into words."""
    counts = np.fromiter(map(len, word_lists), dtype=np.int64, count=len(word_lists))
    words = list(itertools.chain.from_iterable(word_lists))
    h = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint32, count=len(words))  # UTF-8
    starts = np.zeros(len(word_lists), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    # keys = list number << 32 | gram hash: one sort gives every text's sorted unique grams
    parts = []
    n = len(h) - SHINGLE_WORDS + 1
    if n > 0:  # a 3-gram starting at every word; those running past their list's end are dropped
        grams = h[:n] * _MULTIPLIERS[0]
        for k in range(1, SHINGLE_WORDS):
            grams = (grams ^ (h[k : k + n] * _MULTIPLIERS[k])) * _MIX
        owner = np.repeat(np.arange(len(word_lists), dtype=np.int64), counts)[:n]
        inside = np.arange(n) - starts[owner] <= counts[owner] - SHINGLE_WORDS
        parts.append((owner[inside].astype(np.uint64) << _SHIFT) | grams[inside])
    for i in np.flatnonzero((counts > 0) & (counts < SHINGLE_WORDS)).tolist():  # short lists: one gram of all words
        words_h = h[starts[i] : starts[i] + counts[i]]
        gram = np.bitwise_xor.reduce(words_h * _MULTIPLIERS[: len(words_h)])
        parts.append(np.array([(i << 32) | int(gram)], dtype=np.uint64))
    keys = _sorted_unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    values = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    bounds = np.searchsorted(keys >> _SHIFT, np.arange(len(word_lists) + 1, dtype=np.uint64)).tolist()
    return [values[bounds[i] : bounds[i + 1]] for i in range(len(word_lists))]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2's hash-based ``unique`` is ~30x slower on these arrays)."""
    values = np.sort(values)
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


_MULTIPLIERS = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D], dtype=np.uint32)
_MIX = np.uint32(0x27D4EB2F)


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int, min_recall: float = MIN_RECALL) -> tuple[int, int]:
    """``(bands, rows per band)``: the most selective layout that still finds pairs at ``threshold``.

    Two conversations with Jaccard similarity ``s`` share at least one band with probability
    ``1 - (1 - s**rows) ** bands``. More rows per band means fewer dissimilar candidates; the
    layout with the most rows whose probability at ``threshold`` is still ``min_recall`` wins.
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= min_recall:
            best = (bands, rows)
    return best


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers (odd) and offsets of the ``num_perm`` hash functions; fixed, so every process agrees."""
    rng = np.random.default_rng(_PERMUTATION_SEED)
    a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
    return a, b


def minhashes(shingle_sets: Sequence[np.ndarray], num_perm: int = DEFAULT_NUM_PERM) -> np.ndarray:
    """MinHash values of each shingle set, shape ``(len(shingle_sets), num_perm)``, uint64 below 2**32.

    An empty set gets the sketch of the set ``{0}`` (so all empty texts look alike).
    """
    a, b = _permutations(num_perm)
    out = np.empty((len(shingle_sets), num_perm), dtype=np.uint64)
    for start in range(0, len(shingle_sets), _SKETCH_BLOCK):
        block = [s if len(s) else _EMPTY_SET for s in shingle_sets[start : start + _SKETCH_BLOCK]]
        lengths = np.fromiter((len(s) for s in block), dtype=np.int64, count=len(block))
        offsets = np.zeros(len(block), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        # permutations x shingles: the minimum runs along contiguous rows (4x faster than down columns)
        hashed = np.multiply.outer(a, np.concatenate(block).astype(np.uint64))  # wraps mod 2**64
        hashed += b[:, None]
        # the top 32 bits are the hash value; shifting after the minimum gives the same result
        out[start : start + len(block)] = (np.minimum.reduceat(hashed, offsets, axis=1) >> _SHIFT).T
    return out


_EMPTY_SET = np.zeros(1, dtype=np.uint32)


def band_keys(sketches: np.ndarray, bands: int, rows: int) -> list[tuple[int, ...]]:
    """One key per band and sketch: the band's ``rows`` MinHash values folded into 64 bits."""
    cut = sketches[:, : bands * rows].reshape(len(sketches), bands, rows)
    keys = cut[:, :, 0].copy()
    for j in range(1, rows):
        keys *= _BAND_MIX
        keys += cut[:, :, j]
    return [tuple(k) for k in keys.tolist()]


def signatures(conversations: Sequence[list[dict[str, Any]]], config: DedupConfig | None = None,
               message_words: Sequence[list[list[str]] | None] | None = None) -> list[Signature]:
    """Exact keys, shingle hashes and LSH band keys of many conversations (one numpy MinHash for all).

    ``message_words``: per conversation, its messages' words when the cleaner already found them.
    """
    config = config or DedupConfig()
    known = message_words if message_words is not None else [None] * len(conversations)
    texts, words = zip(*map(normalized_text_and_words, conversations, known)) if conversations else ((), ())
    shingle_sets = word_shingle_hash_sets(words)
    if config.near and texts:
        bands = band_keys(minhashes(shingle_sets, config.num_perm), *lsh_bands(config.threshold, config.num_perm))
    else:
        bands = [()] * len(texts)
    return [Signature(hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest(), shingles.tobytes(), band)
            for text, shingles, band in zip(texts, shingle_sets, bands)]


def signature(messages: list[dict[str, Any]], config: DedupConfig | None = None) -> Signature:
    """The :class:`Signature` of one conversation (see :func:`signatures`)."""
    return signatures([messages], config)[0]


def jaccard(a: bytes | np.ndarray, b: bytes | np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique shingle hash sets (arrays or signature bytes)."""
    return jaccards(a, [b])[0]


def jaccards(a: bytes | np.ndarray, others: Sequence[bytes | np.ndarray]) -> list[float]:
    """Exact Jaccard similarity of ``a`` with each of ``others`` (all sorted unique hash sets).

    One numpy pass for all of them (every hash of ``others`` is looked up in ``a`` by binary
    search): a conversation can have dozens of LSH candidates in a large, repetitive dataset.
    """
    return _jaccards_of_bytes(_as_bytes(a), [_as_bytes(o) for o in others])


def _jaccards_of_bytes(a: bytes, blobs: list[bytes]) -> list[float]:
    mine = np.frombuffer(a, dtype=np.uint32)
    sizes = [len(blob) >> 2 for blob in blobs]
    if not len(mine):
        return [0.0 if n else 1.0 for n in sizes]
    joined = np.frombuffer(b"".join(blobs), dtype=np.uint32)
    found = mine.take(np.searchsorted(mine, joined), mode="clip") == joined
    starts = list(itertools.accumulate(sizes, initial=0))
    filled = [i for i, n in enumerate(sizes) if n]  # reduceat cannot sum an empty segment
    inter = [0] * len(sizes)
    if filled:
        for i, hits in zip(filled, np.add.reduceat(found, [starts[i] for i in filled], dtype=np.int64).tolist()):
            inter[i] = hits
    return [hits / (len(mine) + n - hits) for hits, n in zip(inter, sizes)]


def _as_bytes(value: bytes | np.ndarray) -> bytes:
    return value if isinstance(value, bytes) else np.ascontiguousarray(value, dtype=np.uint32).tobytes()


class Deduplicator:
    """Streaming duplicate detector: feed conversations in order, keep the first of each group.

    >>> dd = Deduplicator()
    >>> a = [{"role": "user", "content": "Qual è la capitale d'Italia?"}, {"role": "assistant", "content": "Roma."}]
    >>> dd.check(0, signature(a)) is None, dd.check(1, signature(a)).reason
    (True, 'exact_duplicate')
    """

    def __init__(self, config: DedupConfig | None = None):
        self.config = config or DedupConfig()
        from ..errors import ConfigError, bilingual

        if not 0.0 < self.config.threshold <= 1.0:
            raise ConfigError(bilingual("la soglia di deduplica deve essere in (0, 1]",
                                        f"dedup threshold must be in (0, 1], got {self.config.threshold}"))
        if self.config.near and not 1 <= self.config.num_perm <= 1024:
            raise ConfigError(bilingual("num_perm della deduplica deve essere in [1, 1024]",
                                        f"dedup num_perm must be in [1, 1024], got {self.config.num_perm}"))
        self._exact: dict[bytes, int] = {}
        self._shingles: dict[int, bytes] = {}
        bands = lsh_bands(self.config.threshold, self.config.num_perm)[0] if self.config.near else 0
        self._buckets: list[dict[int, int | list[int]]] = [{} for _ in range(bands)]
        """Per band: key -> the kept conversation(s) with that key (an int, or a list once shared)."""

    def check(self, index: int, sig: Signature) -> Duplicate | None:
        """``None`` if the conversation is new (it is then remembered), else what it duplicates."""
        if self.config.exact:
            first = self._exact.get(sig.key)
            if first is not None:
                return Duplicate("exact_duplicate", first, 1.0)
        if self._buckets and sig.bands:
            best = self._most_similar(sig)
            if best is not None:
                return Duplicate("near_duplicate", best[1], round(best[0], 4))
            self._remember(index, sig)
        if self.config.exact:
            self._exact[sig.key] = index
        return None

    def _most_similar(self, sig: Signature) -> tuple[float, int] | None:
        candidates: set[int] = set()
        for bucket, key in zip(self._buckets, sig.bands):
            hit = bucket.get(key)
            if hit is None:
                continue
            if type(hit) is int:
                candidates.add(hit)
            else:
                candidates.update(hit)
        best: tuple[float, int] | None = None
        if candidates:
            order = sorted(candidates)  # ties go to the earliest conversation
            for candidate, sim in zip(order, _jaccards_of_bytes(sig.shingles, [self._shingles[c] for c in order])):
                if sim >= self.config.threshold and (best is None or sim > best[0]):
                    best = (sim, candidate)
        return best

    def _remember(self, index: int, sig: Signature) -> None:
        self._shingles[index] = sig.shingles
        for bucket, key in zip(self._buckets, sig.bands):
            hit = bucket.get(key)
            if hit is None:
                bucket[key] = index
            elif type(hit) is int:
                bucket[key] = [hit, index]
            else:
                hit.append(index)
