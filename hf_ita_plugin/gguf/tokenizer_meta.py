"""Tokenizer metadata for GGUF: vocabulary, merges or scores, special tokens, chat template.

Two families are written:

* byte-level BPE (``tokenizer.ggml.model = gpt2``): tokens, merges (via ``gguf.SpecialVocab``) and the
  ``tokenizer.ggml.pre`` name of llama.cpp's matching pre-tokenizer, recognised from the
  ``pre_tokenizer`` section of ``tokenizer.json``; an unknown one is an error, never a silent default;
* SentencePiece (``tokenizer.ggml.model = llama``): pieces, scores and token types read with the
  ``sentencepiece`` library from ``tokenizer.model`` (or rebuilt from a byte-fallback ``tokenizer.json``).

A byte-level BPE tokenizer saved as a generic ``tokenizer.json`` (``tokenizer_class``
``TokenizersBackend``/``PreTrainedTokenizerFast``) is read without transformers: vocabulary and added
tokens with the ``tokenizers`` library, special tokens and the chat template from
``tokenizer_config.json`` / ``chat_template.jinja``, and whether BOS/EOS are added is measured by
encoding a probe with the same post-processor transformers would use. Everything else (SentencePiece,
tokenizer classes with their own defaults, special tokens missing from the vocabulary) is read from
the loaded ``transformers`` tokenizer, where BOS/EOS and the leading space are measured too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, SpecialVocab, TokenType

from ..errors import ModelError

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

KNOWN_PRE_TOKENIZERS: dict[tuple[str, ...], str] = {
    ("ByteLevel(regex)",): "gpt-2",
    (f"Split({_GPT2_SPLIT})", "ByteLevel"): "gpt-2",
    ("Digits(individual)", "ByteLevel(regex)"): "smollm",
    (f"Split({_LLAMA3_SPLIT})", "ByteLevel"): "llama-bpe",
    (f"Split({_QWEN2_SPLIT})", "ByteLevel"): "qwen2",
}
"""Signature of a ``tokenizer.json`` pre-tokenizer -> llama.cpp ``tokenizer.ggml.pre`` name."""

ITALIAN_PROBE = "L'anno 2024: però c'è più caffè!"


@dataclass
class TokenizerMeta:
    """Everything the GGUF file needs to tokenize exactly like the Hugging Face tokenizer."""

    model: str  # "gpt2" or "llama"
    pre: str | None
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool | None = None
    chat_template: str | None = None
    merges: list[str] = field(default_factory=list)  # "left right" pairs of a BPE tokenizer, in priority order

    def add_to(self, writer: GGUFWriter) -> None:
        """Write the tokenizer keys into ``writer``."""
        writer.add_tokenizer_model(self.model)
        if self.pre is not None:
            writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        writer.add_token_types(self.token_types)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        # everything SpecialVocab writes was read already: no directory for it to read (and parse tokenizer.json) again
        special = SpecialVocab(_NO_DIRECTORY, n_vocab=len(self.tokens))
        special.merges = list(self.merges)
        special.special_token_ids = dict(self.special_ids)
        special.add_special_token = {"bos": self.add_bos, "eos": self.add_eos}
        special.chat_template = self.chat_template
        special.add_to_gguf(writer, quiet=True)


_NO_DIRECTORY = Path("/nonexistent/hf-ita-plugin")


def bpe_merges(tokenizer_json: dict[str, Any], where: str) -> list[str]:
    """The merges of a BPE ``tokenizer.json`` as GGUF stores them: ``"left right"``, spaces inside a part as U+0120."""
    merges = (tokenizer_json.get("model") or {}).get("merges") or []
    if not merges:
        raise ModelError(f"{where}: tokenizer BPE senza merges / BPE tokenizer has no merges")
    if isinstance(merges[0], str):
        result = list(merges)
    else:
        space = chr(ord(" ") + 256)  # a space inside a part would split it in the "left right" form
        try:
            result = [f"{a.replace(' ', space)} {b.replace(' ', space)}" for a, b in merges]
        except (TypeError, ValueError, AttributeError):
            result = []
    if not result or not all(type(m) is str and " " in m for m in result):
        raise ModelError(f"{where}: formato dei merges sconosciuto / unknown merges format", hint="expected 'a b' strings or [a, b] pairs")
    return result


def _pre_signature(node: dict[str, Any] | None) -> tuple[str, ...]:
    if node is None:
        return ()
    parts = node.get("pretokenizers") if node.get("type") == "Sequence" else [node]
    sig: list[str] = []
    for p in parts:
        kind = p.get("type")
        if kind == "ByteLevel":
            if p.get("add_prefix_space"):
                sig.append("ByteLevel(prefix-space)")
            else:
                sig.append("ByteLevel(regex)" if p.get("use_regex", True) else "ByteLevel")
        elif kind == "Split":
            pattern = p.get("pattern") or {}
            regex = pattern.get("Regex", pattern.get("String"))
            sig.append(f"Split({regex})" if not p.get("invert") else f"Split(inverted {regex})")
        elif kind == "Digits":
            sig.append("Digits(individual)" if p.get("individual_digits") else "Digits")
        else:
            sig.append(str(kind))
    return tuple(sig)


def detect_pre_tokenizer(tokenizer_json: dict[str, Any], where: str) -> str:
    """llama.cpp pre-tokenizer name for a byte-level BPE ``tokenizer.json``, or a clear ModelError."""
    sig = _pre_signature(tokenizer_json.get("pre_tokenizer"))
    if sig in KNOWN_PRE_TOKENIZERS:
        return KNOWN_PRE_TOKENIZERS[sig]
    raise ModelError(
        f"{where}: pre-tokenizer BPE sconosciuto / unknown BPE pre-tokenizer {list(sig)}",
        hint="llama.cpp would split text differently from transformers; supported families: "
        + ", ".join(sorted(set(KNOWN_PRE_TOKENIZERS.values()))),
    )


def load_hf_tokenizer(model_dir: str | Path):
    """The ``transformers`` tokenizer of a model directory, or a ModelError."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # transformers raises many types here
        raise ModelError(f"{model_dir}: impossibile caricare il tokenizer / cannot load the tokenizer ({exc})") from exc


def _added_specials(plain: list[int], full: list[int], bos_id: int | None, eos_id: int | None) -> tuple[bool, bool]:
    """Whether encoding with special tokens (``full``) added BOS and/or EOS around ``plain``."""
    add_bos = bos_id is not None and len(full) > len(plain) and full[0] == bos_id
    add_eos = eos_id is not None and len(full) > len(plain) and full[-1] == eos_id
    if len(full) - len(plain) != int(add_bos) + int(add_eos):
        raise ModelError(
            f"il tokenizer aggiunge token speciali inattesi / the tokenizer adds unexpected special tokens: {full[:3]}...{full[-3:]}",
            hint="only BOS/EOS added by the tokenizer can be represented in GGUF",
        )
    return add_bos, add_eos


def _measure_added_specials(tok) -> tuple[bool, bool]:
    plain = tok(ITALIAN_PROBE, add_special_tokens=False)["input_ids"]
    full = tok(ITALIAN_PROBE, add_special_tokens=True)["input_ids"]
    return _added_specials(plain, full, tok.bos_token_id, tok.eos_token_id)


def _special_ids(tok) -> dict[str, int]:
    ids = {}
    for kind in ("bos", "eos", "unk", "pad"):
        value = getattr(tok, f"{kind}_token_id", None)
        if isinstance(value, int):
            ids[kind] = value
    return ids


def _chat_template(tok) -> str | None:
    template = getattr(tok, "chat_template", None)
    if isinstance(template, dict):
        return template.get("default") or next(iter(template.values()), None)
    return template


def _pad_vocab(tokens: list[str], types: list[int], scores: list[float] | None, n_vocab: int) -> None:
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]")
        types.append(TokenType.UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def _gpt2_vocab(vocab: dict[str, int], added: dict[int, tuple[str, bool]], n_vocab: int) -> tuple[list[str], list[int]]:
    """Token strings and types by id; ``added``: id -> (content, special) of the added tokens (they win over ``vocab``)."""
    size = max(max(vocab.values(), default=-1), max(added, default=-1)) + 1
    if size > n_vocab:
        raise ModelError(f"il tokenizer ha {size} token ma il modello {n_vocab} / tokenizer has more tokens than the embedding rows")
    tokens: list[str | None] = [None] * size
    types = [int(TokenType.NORMAL)] * size
    for token, i in vocab.items():
        tokens[i] = token
    for i, (content, special) in added.items():
        tokens[i] = content
        types[i] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
    for i in (i for i, t in enumerate(tokens) if t is None):
        tokens[i] = f"[PAD{i}]"
        types[i] = int(TokenType.UNUSED)
    return tokens, types  # type: ignore[return-value]


def _spm_vocab_from_model(model_file: Path, tok, n_vocab: int) -> tuple[list[str], list[int], list[float]]:
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    tokens, types, scores = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            types.append(TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(TokenType.BYTE)
        else:
            types.append(TokenType.NORMAL)
    _apply_added_tokens(tok, tokens, types, scores)
    return tokens, types, scores


def _spm_vocab_from_json(data: dict[str, Any], tok, where: str) -> tuple[list[str], list[int], list[float]]:
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise ModelError(f"{where}: tokenizer SentencePiece senza tokenizer.model / SentencePiece tokenizer without tokenizer.model", hint="copy the base model's tokenizer.model next to tokenizer.json")
    by_id = {i: t for t, i in model["vocab"].items()}
    tokens, types, scores = [], [], []
    unk = model.get("unk_token")
    for i in range(max(by_id) + 1):
        piece = by_id.get(i, f"[PAD{i}]")
        tokens.append(piece)
        if piece == unk:
            types.append(TokenType.UNKNOWN)
            scores.append(0.0)
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            types.append(TokenType.BYTE)
            scores.append(0.0)
        else:
            # SentencePiece BPE vocabularies are ordered by merge priority: a lower id merges first.
            types.append(TokenType.NORMAL)
            scores.append(-float(i))
    _apply_added_tokens(tok, tokens, types, scores)
    return tokens, types, scores


def _apply_added_tokens(tok, tokens: list[str], types: list[int], scores: list[float]) -> None:
    for i, added in sorted(tok.added_tokens_decoder.items()):
        while len(tokens) <= i:
            tokens.append(f"[PAD{len(tokens)}]")
            types.append(TokenType.UNUSED)
            scores.append(-1000.0)
        tokens[i] = added.content
        types[i] = TokenType.CONTROL if added.special else TokenType.USER_DEFINED
        scores[i] = 0.0


_GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")  # without one, AutoTokenizer picks a class from config.json
_SPECIAL_KINDS = ("bos", "eos", "unk", "pad")


def _read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{file}: JSON non valido / invalid JSON ({exc})") from exc


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _files_chat_template(model_dir: Path, config: dict[str, Any]) -> tuple[bool, str | None]:
    """(readable, template) the way transformers picks it: chat_template.jinja, else tokenizer_config.json."""
    if (model_dir / "additional_chat_templates").is_dir():
        return False, None  # named templates: let transformers decide which one is the default
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return True, jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return True, template if isinstance(template, str) else None


def _bpe_meta_from_files(model_dir: Path, text: str, data: dict[str, Any], n_vocab: int) -> TokenizerMeta | None:
    """Metadata of a generic byte-level BPE ``tokenizer.json`` without transformers, or None when transformers is needed."""
    from tokenizers import Tokenizer, processors

    config = _read_json(model_dir / "tokenizer_config.json")
    specials_map = _read_json(model_dir / "special_tokens_map.json")
    if config.get("tokenizer_class") not in _GENERIC_CLASSES:
        return None  # a tokenizer class may bring its own special-token defaults
    readable, template = _files_chat_template(model_dir, config)
    if not readable:
        return None
    # The tokenizer only measures which special tokens its post-processor adds around a probe: that does not
    # depend on the merges, so it is built without them (parsing ~50k merges is most of its load time).
    tk = Tokenizer.from_str(json.dumps({**data, "model": {**data["model"], "merges": []}}))
    added = {i: (t.content, bool(t.special)) for i, t in tk.get_added_tokens_decoder().items()}
    for key, entry in (config.get("added_tokens_decoder") or {}).items():
        if added.get(int(key)) != (entry.get("content"), bool(entry.get("special"))):
            return None  # tokenizer_config.json adds or changes tokens: transformers merges them
    names = {kind: _token_content(config.get(f"{kind}_token", specials_map.get(f"{kind}_token"))) for kind in _SPECIAL_KINDS}
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or []
    extra_names = [_token_content(t) for t in (extra.values() if isinstance(extra, dict) else extra)]
    ids = {kind: tk.token_to_id(name) for kind, name in names.items() if name is not None}
    if any(i is None for i in ids.values()) or any(n is None or tk.token_to_id(n) is None for n in extra_names):
        return None  # transformers would add the missing special token to the vocabulary
    if "add_bos_token" in config or "add_eos_token" in config or tk.post_processor is None:
        # transformers rebuilds the post-processor from the flags (BOS/EOS only when they exist)
        add_bos = bool(config.get("add_bos_token", False)) and "bos" in ids
        add_eos = bool(config.get("add_eos_token", False)) and "eos" in ids
        pieces = [(names["bos"], ids["bos"])] * add_bos + [(names["eos"], ids["eos"])] * add_eos
        single = " ".join([f"{names['bos']}:0"] * add_bos + ["$A:0"] + [f"{names['eos']}:0"] * add_eos)
        tk.post_processor = processors.TemplateProcessing(single=single, special_tokens=pieces)
    plain = tk.encode(ITALIAN_PROBE, add_special_tokens=False).ids
    full = tk.encode(ITALIAN_PROBE, add_special_tokens=True).ids
    add_bos, add_eos = _added_specials(plain, full, ids.get("bos"), ids.get("eos"))
    tokens, types = _gpt2_vocab(data["model"]["vocab"], added, n_vocab)
    _pad_vocab(tokens, types, None, n_vocab)
    return TokenizerMeta(
        "gpt2", detect_pre_tokenizer(data, str(model_dir / "tokenizer.json")), tokens, [int(t) for t in types], None,
        special_ids=ids, add_bos=add_bos, add_eos=add_eos, chat_template=template,
        merges=bpe_merges(data, str(model_dir / "tokenizer.json")),
    )


def tokenizer_meta(model_dir: str | Path, n_vocab: int, tokenizer=None, *, use_transformers: bool = False) -> TokenizerMeta:
    """Read the tokenizer of ``model_dir`` into GGUF metadata for a model with ``n_vocab`` embedding rows.

    A generic byte-level BPE ``tokenizer.json`` is read without transformers; otherwise ``tokenizer``
    (an already loaded transformers tokenizer) is used, or loaded. ``use_transformers=True`` reads
    everything through transformers (the reference the direct reading is tested against).
    """
    model_dir = Path(model_dir)
    json_file = model_dir / "tokenizer.json"
    text = json_file.read_text(encoding="utf-8") if json_file.is_file() else ""
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ModelError(f"{json_file}: JSON non valido / invalid JSON ({exc})") from exc
    spm_file = model_dir / "tokenizer.model"
    model_type = (data.get("model") or {}).get("type")
    is_spm = (model_type == "BPE" and (data.get("model") or {}).get("byte_fallback")) or model_type == "Unigram" or (not data and spm_file.is_file())
    if not is_spm and model_type == "BPE":
        detect_pre_tokenizer(data, str(json_file))  # an unknown pre-tokenizer is refused before anything else
        if not use_transformers:
            meta = _bpe_meta_from_files(model_dir, text, data, n_vocab)
            if meta is not None:
                return meta
    tok = tokenizer if tokenizer is not None else load_hf_tokenizer(model_dir)
    add_bos, add_eos = _measure_added_specials(tok)
    common = dict(special_ids=_special_ids(tok), add_bos=add_bos, add_eos=add_eos, chat_template=_chat_template(tok))
    if is_spm:
        if spm_file.is_file():
            tokens, types, scores = _spm_vocab_from_model(spm_file, tok, n_vocab)
        else:
            tokens, types, scores = _spm_vocab_from_json(data, tok, str(json_file))
        if len(tokens) > n_vocab:
            raise ModelError(f"{model_dir}: il tokenizer ha {len(tokens)} token ma il modello {n_vocab} / tokenizer larger than the embedding")
        _pad_vocab(tokens, types, scores, n_vocab)
        first = tok.convert_ids_to_tokens(tok(ITALIAN_PROBE, add_special_tokens=False)["input_ids"][:1])
        space_prefix = bool(first) and first[0].startswith("\u2581")
        return TokenizerMeta("llama", None, tokens, [int(t) for t in types], scores, add_space_prefix=space_prefix, **common)
    if model_type != "BPE":
        raise ModelError(f"{json_file}: tipo di tokenizer non supportato / unsupported tokenizer type {model_type!r}", hint="supported: byte-level BPE (tokenizer.json) and SentencePiece")
    pre = detect_pre_tokenizer(data, str(json_file))
    added = {i: (t.content, bool(t.special)) for i, t in tok.added_tokens_decoder.items()}
    tokens, types = _gpt2_vocab(tok.get_vocab(), added, n_vocab)
    _pad_vocab(tokens, types, None, n_vocab)
    return TokenizerMeta("gpt2", pre, tokens, [int(t) for t in types], None, merges=bpe_merges(data, str(json_file)), **common)
