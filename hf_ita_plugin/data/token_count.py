"""Token counts of rendered conversations, fast where the tokenizer allows it.

Data preparation only needs *how many* tokens each conversation has (statistics and the
``max_tokens`` limit). A :class:`TokenCounter` counts them with the tokenizer itself
(``tokenizers``, the reference), or, for byte-level BPE tokenizers (GPT-2 style: SmolLM, Llama 3,
Qwen2...), with ``tiktoken``, whose pre-tokenizer regex and BPE run 3-4x faster on 2 cores.

The tiktoken encoding is built from the tokenizer's own ``tokenizer.json`` (its vocabulary,
merge order, pre-tokenizer pattern and added tokens) and is only used after it produced the very
same token ids as the tokenizer on a probe corpus (the bundled Italian conversations rendered with
the tokenizer's chat template, plus edge cases: digits, whitespace runs, emoji, code, special
tokens). Anything the conversion does not cover (a normalizer other than NFC, SentencePiece-style
models, added tokens that strip spaces...) keeps the reference tokenizer; :attr:`TokenCounter.backend`
says which.
For GPT-2's own split pattern, counts use an equivalent pattern without its lookahead (see
:data:`GPT2_PATTERN_WITHOUT_LOOKAHEAD`), checked on the same probe.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from typing import Any, Iterator, NamedTuple

import numpy as np

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""The split pattern of a ``ByteLevel`` pre-tokenizer with ``use_regex=True``."""
GPT2_PATTERN_WITHOUT_LOOKAHEAD = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"""
r""":data:`GPT2_PATTERN` without ``\s+(?!\S)``: its regex engine needs no backtracking (~35% faster).

The two split a text the same way except for a run of two or more whitespace characters followed
by a non-space: GPT-2's pattern leaves the run's last character to the next piece (`` word``),
this one keeps the run whole. Cutting the text before that last character, and counting the two
parts apart, gives GPT-2's pieces again (see :meth:`_FastEncoding.counts`).
"""
# Unicode White_Space, what ``\s`` means to tiktoken's (Rust) regex engine.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WHITESPACE_RUN = re.compile(f"[{_WHITE_SPACE}]{{2,}}")
_SPACE_OR_NEWLINE_RUN = re.compile("[ \n][ \n]+")


def _whitespace_runs(text: str) -> Iterator[re.Match]:
    """The runs of two or more whitespace characters of ``text`` (few texts have any: found cheaply)."""
    if not text.replace("\n", "").isprintable():  # other whitespace (tabs, no-break spaces...) is unprintable
        return _WHITESPACE_RUN.finditer(text)
    if "  " in text or "\n\n" in text or " \n" in text or "\n " in text:
        return _SPACE_OR_NEWLINE_RUN.finditer(text)
    return iter(())


_EDGE_CASES = (
    "Perché l'IVA è al 22%? Costa 1.234,56 € (circa 1234567 lire).\n\n\n   Fine.",
    "def f(x):\n\treturn x**2  # quadrato\n\n\nprint(f(3))   \n",
    "Emoji 🇮🇹🍕 e simboli ½ ² ⅞ — «citazione» “virgolette” ‘singole’… ¿¡",
    "  spazi iniziali, finali   \n\t\n  e righe vuote \r\n fine ",
    "Don't, we'll, it's, I'm, you've, they'd, L'ALBERO, DELL'ANNO, po' di più",
    "中文 русский ελληνικά العربية हिन्दी 日本語のテキスト",
    "a" * 300 + " " + "ab" * 150 + " 0000000000000000 ___ ---- ====",
)


_CONTINUATION_BYTES = frozenset(range(0x80, 0xC0))


class _FastEncoding(NamedTuple):
    encoding: Any
    """The ``tiktoken.Encoding``; its ranks are merge order, not the tokenizer's ids."""
    rank_to_id: np.ndarray
    special_ids: dict[int, int]
    """tiktoken id of each added token -> the tokenizer's id."""
    present_bytes: bytes | None
    """The bytes the vocabulary has, when it lacks some (the tokenizer drops the others, tiktoken cannot)."""
    nfc: bool
    """The tokenizer NFC-normalises text first (Qwen2): so is the text given to tiktoken."""
    counting: Any = None
    """A faster encoding with :data:`GPT2_PATTERN_WITHOUT_LOOKAHEAD`, for counts (GPT-2's pattern only)."""

    def counts(self, texts: list[str]) -> list[int]:
        """Token counts of ``texts`` (with :attr:`counting` when there is one).

        For :attr:`counting`, a text is cut before the last character of each whitespace run (two
        or more) followed by a non-space, unless a special token follows (tiktoken splits the text
        there anyway): the parts are then split by the faster pattern exactly as the whole text is
        by GPT-2's.
        """
        if self.counting is None:
            return [len(ids) for ids in self.encode(texts)]
        encode, specials = self.counting.encode, self.counting.special_tokens_set
        special_starts = tuple(specials)
        out = []
        for text in texts:
            n, start = 0, 0
            for run in _whitespace_runs(text):
                cut = run.end() - 1
                if run.end() < len(text) and not text.startswith(special_starts, run.end()):
                    n += len(encode(text[start:cut], allowed_special=specials, disallowed_special=()))
                    start = cut
            out.append(n + len(encode(text[start:] if start else text, allowed_special=specials, disallowed_special=())))
        return out

    def encode(self, texts: list[str]) -> list[list[int]]:
        """tiktoken's ranks for ``texts`` (one list per text)."""
        if self.nfc:
            texts = [unicodedata.normalize("NFC", t) for t in texts]
        # one call per text: encode_batch hands each text to a thread pool, twice the cost on 2 cores
        encode, specials = self.encoding.encode, self.encoding.special_tokens_set
        return [encode(text, allowed_special=specials, disallowed_special=()) for text in texts]

    def unencodable_positions(self, texts: list[str]) -> list[int]:
        """Positions of the texts holding a byte the vocabulary lacks (see :attr:`present_bytes`)."""
        if self.present_bytes is None:
            return []
        present = self.present_bytes  # deleting them leaves the missing ones: 1 us per text, a regex took 7
        return [i for i, t in enumerate(texts) if t.encode("utf-8", "surrogatepass").translate(None, present)]

    def ids(self, texts: list[str]) -> list[list[int]]:
        """The tokenizer's ids for ``texts`` (used to verify the encoding, not to count)."""
        out = []
        for ranks in self.encode(texts):
            out.append([self.special_ids[r] if r in self.special_ids else int(self.rank_to_id[r]) for r in ranks])
        return out


class TokenCounter:
    """Counts the tokens ``tokenizer(text, add_special_tokens=False)`` gives for each text."""

    def __init__(self, tokenizer: Any, fast: _FastEncoding | None = None):
        self.tokenizer = tokenizer
        self._fast = fast

    @property
    def backend(self) -> str:
        """``tiktoken`` (verified equivalent) or ``tokenizers`` (the tokenizer itself)."""
        return "tiktoken" if self._fast is not None else "tokenizers"

    def counts(self, texts: list[str]) -> list[int]:
        """Number of tokens of each text (special tokens in the text count as one token each)."""
        if self._fast is None:
            return self._reference_counts(texts)
        slow = self._fast.unencodable_positions(texts)  # ascending
        skip = set(slow)
        easy = [t for i, t in enumerate(texts) if i not in skip] if skip else texts
        counts = self._fast.counts(easy)
        for i, n in zip(slow, self._reference_counts([texts[i] for i in slow])):
            counts.insert(i, n)  # ascending positions: everything before i is already in place
        return counts

    def _reference_counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def token_counter(tokenizer: Any, probe: list[str] | None = None) -> TokenCounter:
    """The fastest counter that gives exactly ``tokenizer``'s counts (see the module docstring).

    ``probe``: texts the fast encoding must tokenize exactly like ``tokenizer`` (default: the
    bundled conversations rendered with its chat template, and edge cases).
    """
    fast = _fast_encoding(tokenizer)
    if fast is None:
        return TokenCounter(tokenizer)
    probe = list(_EDGE_CASES) + (probe if probe is not None else _bundled_probe(tokenizer))
    skipped = set(fast.unencodable_positions(probe))  # counted by the tokenizer anyway
    probe = [t for i, t in enumerate(probe) if i not in skipped]
    if not probe:
        return TokenCounter(tokenizer)
    reference = tokenizer(probe, add_special_tokens=False)["input_ids"]
    if fast.ids(probe) != [list(ids) for ids in reference]:
        return TokenCounter(tokenizer)
    if fast.counting is not None and fast.counts(probe) != [len(ids) for ids in reference]:
        fast = fast._replace(counting=None)  # keep the verified encoding, count with it
    return TokenCounter(tokenizer, fast)


def _bundled_probe(tokenizer: Any) -> list[str]:
    from ..errors import HfItaError
    from ..templates import render
    from .loaders import bundled_data_path

    texts = []
    with open(bundled_data_path("train.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            messages = json.loads(line)["messages"]
            try:
                texts.append(render(tokenizer, messages))
            except HfItaError:  # no template, or one that cannot render this conversation: probe the contents
                texts.extend(m["content"] for m in messages)
    return texts


def _byte_of_char() -> dict[str, int]:
    """The byte-level alphabet: which byte each of the 256 visible characters stands for.

    Printable Latin-1 bytes stand for themselves; the others (controls, space, soft hyphen...)
    take the characters from U+0100 on, in byte order.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {chr(b): b for b in printable}
    shifted = 0x100
    for b in range(256):
        if b not in printable:
            mapping[chr(shifted)] = b
            shifted += 1
    return mapping


def _split_pattern(pre_tokenizer: dict[str, Any] | None) -> str | None:
    """The regex a byte-level pre-tokenizer splits with, or ``None`` if tiktoken cannot reproduce it."""
    if not pre_tokenizer:
        return None
    steps = pre_tokenizer.get("pretokenizers") if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer]
    *splits, last = steps
    if last.get("type") != "ByteLevel" or last.get("add_prefix_space"):
        return None
    if not splits:
        return GPT2_PATTERN if last.get("use_regex", True) else None
    if len(splits) != 1 or last.get("use_regex", True):
        return None
    split = splits[0]
    regex = (split.get("pattern") or {}).get("Regex")
    if split.get("type") != "Split" or regex is None or split.get("behavior") != "Isolated" or split.get("invert"):
        return None
    return regex


@lru_cache(maxsize=8)
def _encoding_from_json(tokenizer_json: str):
    spec = json.loads(tokenizer_json)
    model = spec.get("model") or {}
    pattern = _split_pattern(spec.get("pre_tokenizer"))
    normalizer = spec.get("normalizer")
    if (pattern is None or normalizer not in (None, {"type": "NFC"}) or model.get("type") != "BPE"
            or model.get("dropout") or model.get("byte_fallback") or model.get("continuing_subword_prefix")
            or model.get("end_of_word_suffix")):
        return None
    added = spec.get("added_tokens") or []
    if any(t.get("lstrip") or t.get("rstrip") or t.get("single_word") for t in added):
        return None
    try:
        import tiktoken
    except ImportError:
        return None
    byte_of = _byte_of_char()
    vocab: dict[str, int] = model["vocab"]
    try:
        as_bytes = {token: bytes(byte_of[ch] for ch in token) for token in vocab}
    except KeyError:  # a vocabulary entry outside the byte-level alphabet
        return None
    # tiktoken merges the adjacent pair whose joined bytes rank lowest: rank = merge order.
    ranks: dict[bytes, int] = {}
    for token, piece in as_bytes.items():
        if len(piece) == 1:
            ranks[piece] = piece[0]
    missing = set(range(256)) - {piece[0] for piece in ranks}
    if missing & _CONTINUATION_BYTES:
        return None  # too many characters would hold a byte the vocabulary lacks
    for merge in model.get("merges") or []:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        joined = left + right
        if joined not in as_bytes:
            return None
        ranks.setdefault(as_bytes[joined], 256 + len(ranks))
    rank_to_id = np.zeros(max(ranks.values()) + 1, dtype=np.int64)
    by_bytes = {piece: vocab[token] for token, piece in as_bytes.items()}
    for piece, rank in ranks.items():
        rank_to_id[rank] = by_bytes[piece]
    first_special = len(rank_to_id)
    specials = {t["content"]: first_special + i for i, t in enumerate(added)}
    special_ids = {first_special + i: t["id"] for i, t in enumerate(added)}
    try:
        encoding = tiktoken.Encoding("hf-ita-count", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    except (ValueError, RuntimeError):  # a pattern tiktoken's regex engine does not accept
        return None
    present = bytes(sorted(set(range(256)) - missing)) if missing else None
    counting = None
    if pattern == GPT2_PATTERN and not any(re.search(f"[{_WHITE_SPACE}]", token) for token in specials):
        counting = tiktoken.Encoding("hf-ita-count-fast", pat_str=GPT2_PATTERN_WITHOUT_LOOKAHEAD,
                                     mergeable_ranks=ranks, special_tokens=specials)
    return _FastEncoding(encoding, rank_to_id, special_ids, present, normalizer is not None, counting)


def _fast_encoding(tokenizer: Any) -> _FastEncoding | None:
    """A tiktoken encoding built like a fast byte-level BPE tokenizer (not yet verified), or ``None``."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return _encoding_from_json(backend.to_str())
