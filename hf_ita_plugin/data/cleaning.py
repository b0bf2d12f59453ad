"""Cleaning of (often machine-translated) Italian conversations, one conversation at a time.

What happens to every message, in order:

1. Unicode repair with ``ftfy``: mojibake (``perchÃ©`` -> ``perché``), HTML entities, control
   characters, then NFC normalisation. Text made only of characters ftfy leaves alone (ASCII,
   Latin-1 letters, Italian typography, and characters no mojibake codec produces, such as
   ``−``, emoji or CJK), with no mojibake-shaped sequence (``â€™``, ``cittÃ ``), skips ftfy: it
   would come back unchanged (a property test checks it), and ftfy is the slow step.
2. Template leaks removed outside code: role tags (``<|im_start|>assistant``, ``[INST]``,
   ``</s>``...), prompt-format headers (``### Risposta:``, ``### Input:``...), a label opening an
   answer (``Output:``, ``Risposta:``, ``Assistant:``) and a next turn the answer ran into.
3. Whitespace normalised outside code (runs of spaces, trailing spaces, 3+ newlines). Fenced
   code blocks and inline code are kept exactly as written ("code kept as code").

Then the conversation is kept or rejected with a reason: ``invalid`` (structure, see
:func:`hf_ita_plugin.templates.validate_messages`), ``empty``, ``too_short``, ``too_long``,
``not_italian`` (the answers' prose, code removed, is identified as another language by
py3langid and the prompt did not ask for that language; prose that is unmistakably Italian, see
:func:`~hf_ita_plugin.data.language.looks_italian`, skips the model).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import HfItaError
from ..templates.validation import validate_messages
from .language import answers_look_italian, identify, requested_languages

REASONS = ("invalid", "empty", "too_short", "too_long", "not_italian")
"""Rejection reasons of the cleaner (dedup and tokenization add their own)."""
FIXES = ("encoding_repaired", "unicode_normalized", "template_leak_removed", "whitespace_normalized")
"""Changes the cleaner can make to a kept conversation."""


@dataclass
class CleaningConfig:
    """Thresholds of the cleaner."""

    min_answer_chars: int = 2
    """An assistant reply shorter than this (after cleaning) is ``too_short``."""
    min_prompt_chars: int = 2
    """A user message shorter than this is ``too_short``."""
    max_chars: int = 20_000
    """A conversation longer than this many characters is ``too_long``."""
    require_italian: bool = True
    min_italian_probability: float = 0.3
    """Answers count as Italian when Italian is the top language or has at least this probability."""
    language_min_chars: int = 20
    """Answers with fewer letters of prose are not language-checked (kept): too short to tell."""
    repair_unicode: bool = True
    remove_template_leaks: bool = True
    normalize_whitespace: bool = True


@dataclass
class CleanOutcome:
    """What the cleaner made of one conversation: cleaned messages, or a rejection reason."""

    messages: list[dict[str, Any]] | None
    reason: str | None = None
    detail: str = ""
    fixes: tuple[str, ...] = ()
    language: str | None = None
    words: list[list[str]] | None = None
    """Each cleaned message's :func:`~.words.text_words`, when the language check needed them
    (the deduplicator reuses them)."""

    @property
    def kept(self) -> bool:
        return self.messages is not None


# Characters that never need ftfy on their own: printable ASCII, newlines/tabs, the letters of
# Latin-1 and the typography Italian text uses. Mojibake made only of these is caught by the
# lead-continuation pattern below; any other character is checked by :func:`_may_need_ftfy`.
_PLAIN = frozenset(
    [chr(c) for c in range(32, 127)] + list("\n\t")
    + [chr(c) for c in range(0xC0, 0x100)] + list("ªº")
    + list("«»“”‘’„–—…•·°€£§©®™±½¼¾²³¹µ¿¡→←↑↓✓")
)

# UTF-8 read as Windows-1252 turns each non-ASCII character into a lead (Â, Ã, â...) and one to
# three continuation characters (€, ™, “, ’, «, °...). Some of those sequences are made only of
# the plain characters above (``â€™`` for ``’``, ``Â«`` for ``«``), so plain text is also checked
# for a lead followed by as many continuation characters as it announces (``perché»`` is not).
# A continuation that was a no-break space (byte A0) often became a plain space on the way
# (``cittÃ `` for ``città``): ftfy restores those after the leads in _SPACED_LEADS and in the
# 3- and 4-byte shapes below, so they are checked too.
_CP1252_CONTINUATIONS = "[" + re.escape(bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore")) + "]"
_SPACED_LEADS = "\u00c2\u00c3\u00c5\u00ce\u00d0\u00d9"
_MOJIBAKE_SEQUENCE = re.compile(  # one leading class, so the regex engine skips to lead characters quickly
    "[\u00c2-\u00f4](?:" + "|".join(shape.replace("C", _CP1252_CONTINUATIONS) for shape in (
        "(?<=[\u00c2-\u00df])C", "(?<=[\u00e0-\u00ef])CC", "(?<=[\u00f0-\u00f4])CCC",  # intact
        f"(?<=[{_SPACED_LEADS}]) ", "(?<=[\u00e2\u00e3]) C", "(?<=[\u00e0-\u00e3])C ",  # a space for A0
        "(?<=\u00f0) CC", "(?<=\u00f0)C C", "(?<=\u00f0)CC ")) + ")")
_NOT_PLAIN = re.compile("[^" + re.escape("".join(sorted(_PLAIN))) + "]")

_FENCE = re.compile(r"(```|~~~)[^\n]*\n?.*?(?:\1|\Z)", re.S)
_INLINE = re.compile(r"`[^`\n]+`")

# Role and control tags of common chat formats.
_ROLE_TAGS = re.compile(
    r"<\|im_start\|>\s*(?:system|user|assistant)?|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|end_of_text\|>"
    r"|<\|begin_of_text\|>|<\|start_header_id\|>\s*\w*\s*<\|end_header_id\|>|<\|(?:system|user|assistant|end)\|>"
    r"|<start_of_turn>\s*(?:user|model)?|<end_of_turn>|\[/?INST\]|<</?SYS>>|</?s>|<bos>|<eos>",
    re.I,
)
# "### Risposta:" style headers of Alpaca-like prompt formats, anywhere in prose (label kept out).
_FORMAT_HEADERS = re.compile(
    r"^[ \t]*#{2,}[ \t]*(?:Istruzione|Istruzioni|Input|Contesto|Risposta|Instruction|Response|Output|Answer|Domanda)"
    r"[ \t]*:?[ \t]*",
    re.I | re.M,
)
# A label opening a message ("Output: ...", "Risposta: ...", "Assistant: ...").
_ANSWER_LABEL = re.compile(
    r"\A[ \t\n]*(?:#{1,4}[ \t]*)?(?:Risposta|Output|Response|Answer|Assistente|Assistant|Bot|AI|GPT|Modello)[ \t]*:[ \t]*\n?",
    re.I,
)
_PROMPT_LABEL = re.compile(
    r"\A[ \t\n]*(?:#{1,4}[ \t]*)?(?:Istruzione|Instruction|Domanda|Question|Utente|User|Human|Umano|Input)[ \t]*:[ \t]*\n?",
    re.I,
)
# The answer ran into the next turn of the prompt format: cut it there.
_NEXT_TURN = re.compile(
    r"\n[ \t]*(?:#{2,}[ \t]*(?:Istruzione|Instruction|Input|Human|Utente|User)[ \t]*:|(?:Human|Umano)[ \t]*:)",
    re.I,
)
_MULTI_SPACE = re.compile(r"(?<=\S)[ \t]{2,}")
_TRAILING_SPACE = re.compile(r"[ \t]+(?=\n)")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def repair_unicode(text: str) -> tuple[str, list[str]]:
    """Fix mojibake and other encoding damage with ftfy, then NFC; returns ``(text, fixes)``."""
    fixes = []
    # two regex scans (~3 us for a 400-character message) instead of a set of the characters (~6 us)
    if (_NOT_PLAIN.search(text) and any(map(_may_need_ftfy, set(text) - _PLAIN))) or _MOJIBAKE_SEQUENCE.search(text):
        fixed = _fix_with_ftfy(text)
        if fixed != text:
            # tell real repairs from mere normalisation
            fixes.append("encoding_repaired" if fixed != unicodedata.normalize("NFC", text) else "unicode_normalized")
        return fixed, fixes
    return text, fixes  # plain characters only: already NFC


@lru_cache(maxsize=None)
def _may_need_ftfy(char: str) -> bool:
    """Whether text holding ``char`` could be changed by ftfy (``False`` only when it surely is not).

    Safe are characters beyond Latin-1 that none of the single-byte codecs ftfy decodes mojibake
    with can produce (so they are never part of mojibake), that are NFC and cannot compose with a
    neighbour, and that ftfy's other fixes leave alone (controls and format characters, line and
    paragraph separators, Latin ligatures, full/half-width forms): ``−``, ``≤``, ``ő``, emoji, CJK...
    """
    code = ord(char)
    if code < 0x100 or char in _codec_characters() or _table_fixer_characters().match(char):
        return True
    category = unicodedata.category(char)
    if category[0] in "MC" or category in ("Zl", "Zp") or not unicodedata.is_normalized("NFC", char):
        return True  # marks (compose with a neighbour), controls/format/unassigned, separators, singletons
    return 0x1100 <= code <= 0x11FF or 0xA960 <= code <= 0xA97F or 0xD7B0 <= code <= 0xD7FF  # Hangul jamo


@lru_cache(maxsize=1)
def _codec_characters() -> frozenset[str]:
    """Every character the codecs ftfy tries (windows-125x, MacRoman, cp437...) decode a byte to."""
    import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-windows-* codecs)
    from ftfy.chardata import CHARMAP_ENCODINGS

    return frozenset("".join(bytes(range(0x80, 0x100)).decode(codec, errors="ignore") for codec in CHARMAP_ENCODINGS))


def _fix_with_ftfy(text: str) -> str:
    """``ftfy.fix_text`` with :func:`_ftfy_config`, a quarter cheaper on most damaged text.

    ftfy's ligature, character-width and control-character fixers each translate the whole text
    through a table, and change nothing without a character of their table: they are first left
    out, and the text is fixed again with them when the text or the result holds such a character.
    """
    import ftfy

    fixed = ftfy.fix_text(text, _ftfy_config(table_fixers=False))
    tables = _table_fixer_characters()
    if tables.search(text) or tables.search(fixed):
        fixed = ftfy.fix_text(text, _ftfy_config())
    return fixed


@lru_cache(maxsize=2)
def _ftfy_config(table_fixers: bool = True):
    """ftfy's settings, built once: straight quotes left alone, NFC output (``table_fixers``: see
    :func:`_fix_with_ftfy`)."""
    import ftfy

    return ftfy.TextFixerConfig(uncurl_quotes=False, normalization="NFC", fix_latin_ligatures=table_fixers,
                                fix_character_width=table_fixers, remove_control_chars=table_fixers)


@lru_cache(maxsize=1)
def _table_fixer_characters() -> re.Pattern:
    """Any character ftfy's ligature, width or control-character fixers would replace or remove."""
    from ftfy.chardata import CONTROL_CHARS, LIGATURES, WIDTH_MAP

    codes = sorted(set(CONTROL_CHARS) | set(LIGATURES) | set(WIDTH_MAP))
    return re.compile("[" + "".join(re.escape(chr(code)) for code in codes) + "]")


def split_code(text: str) -> list[tuple[bool, str]]:
    """Split ``text`` into ``(is_code, piece)`` runs: fenced blocks and inline code are code."""
    pieces: list[tuple[bool, str]] = []
    if "`" not in text and "~~~" not in text:
        return [(False, text)]
    pos = 0
    for match in _FENCE.finditer(text):
        pieces.extend(_split_inline(text[pos : match.start()]))
        pieces.append((True, match.group(0)))
        pos = match.end()
    pieces.extend(_split_inline(text[pos:]))
    return [p for p in pieces if p[1]]


def _split_inline(text: str) -> list[tuple[bool, str]]:
    out, pos = [], 0
    for match in _INLINE.finditer(text):
        out.append((False, text[pos : match.start()]))
        out.append((True, match.group(0)))
        pos = match.end()
    out.append((False, text[pos:]))
    return out


def remove_template_leaks(text: str, role: str, *, at_start: bool = True) -> tuple[str, bool]:
    """Prose ``text`` without role tags, prompt-format headers and leaked labels.

    Returns ``(text, ran_into_next_turn)``: for an assistant reply that continued into the next
    turn of a prompt format (``### Istruzione:``...), the text is cut there and the flag is set.
    """
    if "<" in text or "[" in text:
        text = _ROLE_TAGS.sub("", text)
    cut = _NEXT_TURN.search(text) if role == "assistant" else None
    if cut:
        text = text[: cut.start()]
    if "#" in text:
        text = _FORMAT_HEADERS.sub("", text)
    if at_start and role == "assistant":
        text = _ANSWER_LABEL.sub("", text, count=1)
    elif at_start and role == "user":
        text = _PROMPT_LABEL.sub("", text, count=1)
    return text, cut is not None


def normalize_whitespace(text: str) -> str:
    """Single spaces inside lines, no trailing spaces, at most one blank line (indentation kept)."""
    has_tab = "\t" in text  # each pattern runs only where it can match (substring tests are cheap)
    if has_tab or "  " in text:
        text = _MULTI_SPACE.sub(" ", text)
    if has_tab or " \n" in text:
        text = _TRAILING_SPACE.sub("", text)
    if "\n\n\n" in text:
        text = _MANY_NEWLINES.sub("\n\n", text)
    return text


def clean_text(text: str, role: str, config: CleaningConfig) -> tuple[str, list[str]]:
    """Clean one message's content; returns ``(text, fixes applied)``."""
    fixes: list[str] = []
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if config.repair_unicode:
        text, fixes = repair_unicode(text)
    out: list[str] = []
    leaked = respaced = False
    for index, (is_code, piece) in enumerate(split_code(text)):
        if is_code:
            out.append(piece)
            continue
        new, truncated = piece, False
        if config.remove_template_leaks:
            for _ in range(5):  # until nothing changes: removing a tag can expose another
                stripped, cut = remove_template_leaks(new, role, at_start=index == 0)
                truncated = truncated or cut
                if stripped == new:
                    break
                new = stripped
            leaked = leaked or new != piece
        if config.normalize_whitespace:
            spaced = normalize_whitespace(new)
            respaced = respaced or spaced != new
            new = spaced
        out.append(new)
        if truncated:
            break  # the rest is the next turn of the prompt format, code included
    joined = "".join(out)
    cleaned = joined.strip()
    if leaked:
        fixes.append("template_leak_removed")
    if config.normalize_whitespace and (respaced or cleaned != joined):
        fixes.append("whitespace_normalized")
    return cleaned, fixes


def clean_conversation(messages: Any, config: CleaningConfig | None = None) -> CleanOutcome:
    """Clean one conversation and decide whether it is kept.

    >>> out = clean_conversation([{"role": "user", "content": "Capitale d'Italia?"},
    ...                           {"role": "assistant", "content": "### Risposta: La capitale Ã¨ Roma."}])
    >>> out.messages[1]["content"], out.fixes
    ('La capitale è Roma.', ('encoding_repaired', 'template_leak_removed'))
    """
    config = config or CleaningConfig()
    if not isinstance(messages, (list, tuple)) or not messages:
        return CleanOutcome(None, "invalid", f"a conversation must be a non-empty list of messages, got {_describe(messages)}")
    cleaned: list[dict[str, Any]] = []
    fixes: list[str] = []
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("content"), str) and isinstance(message.get("role"), str)):
            return CleanOutcome(None, "invalid",
                                f"messages[{i}]: expected {{role: text, content: text}}, got {_describe(message)}")
        text, applied = clean_text(message["content"], message["role"], config)
        fixes.extend(f for f in applied if f not in fixes)
        if not text:
            return CleanOutcome(None, "empty", f"messages[{i}] ({message['role']}) is empty"
                                + (" after removing template leaks" if message["content"].strip() else ""))
        cleaned.append({**message, "content": text})
    try:
        validate_messages(cleaned, for_training=True)
    except HfItaError as exc:
        return CleanOutcome(None, "invalid", exc.message)
    for i, message in enumerate(cleaned):
        limit = {"assistant": config.min_answer_chars, "user": config.min_prompt_chars}.get(message["role"], 0)
        if len(message["content"]) < limit:
            return CleanOutcome(None, "too_short", f"messages[{i}] ({message['role']}) has {len(message['content'])} "
                                f"characters, fewer than {limit}")
    total = sum(len(m["content"]) for m in cleaned)
    if total > config.max_chars:
        return CleanOutcome(None, "too_long", f"{total} characters, more than {config.max_chars}")
    language = words = None
    if config.require_italian:
        answers = "\n".join(m["content"] for m in cleaned if m["role"] == "assistant")
        unmistakable, words = answers_look_italian(cleaned, answers)
        if unmistakable:  # unmistakable Italian: skip the (slower) language-ID model
            return CleanOutcome(cleaned, None, "", tuple(fixes), "it", words)
        guess = identify(answers, min_chars=config.language_min_chars)
        language = guess.language
        if guess.is_italian(config.min_italian_probability) is False:
            asked = set().union(*(requested_languages(m["content"]) for m in cleaned if m["role"] == "user"))
            if guess.language not in asked:
                return CleanOutcome(None, "not_italian", f"answer language {guess.language} "
                                    f"(p={guess.probability:.2f}, italian p={guess.italian_probability:.2f})",
                                    language=language)
    return CleanOutcome(cleaned, None, "", tuple(fixes), language, words)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
