"""Curriculum ordering in the LAB style: knowledge first, then foundational skills, then
compositional skills; optionally short to long inside each phase.

A conversation's phase comes from its category: taxonomy categories are the phase names
themselves; the bundled Italian categories are mapped by :data:`CATEGORY_PHASES`; anything else
is a compositional skill unless a custom ``mapping`` says otherwise.

Training in phases from one config: ``data.curriculum: lab`` (or ``lab-two-phase``) makes the
recipe order the training rows with :func:`curriculum_order` and feed them sequentially, so the
phases are trained one after the other on the same weights; or by hand::

    for name, conversations in curriculum.phases(pairs, short_to_long=True):
        ...  # train on `conversations`, continuing from the previous phase's weights
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Mapping

from ..errors import ConfigError, DataError, bilingual

PHASES = ("knowledge", "foundational_skills", "compositional_skills")
DEFAULT_PHASE = "compositional_skills"
CATEGORY_PHASES: dict[str, str] = {
    # facts and explanations of facts
    "cultura_generale": "knowledge",
    "spiegazioni": "knowledge",
    # language, reasoning, code, translation
    "grammatica": "foundational_skills",
    "ragionamento": "foundational_skills",
    "codice": "foundational_skills",
    "traduzioni": "foundational_skills",
    # tasks that combine knowledge and skills
    "riassunti": "compositional_skills",
    "riscritture": "compositional_skills",
    "email_lettere": "compositional_skills",
    "consigli_pratici": "compositional_skills",
    "conversazione": "compositional_skills",
    "istruzioni_con_sistema": "compositional_skills",
}
"""Phase of each category of the bundled Italian data."""

Messages = list[dict[str, Any]]


def phase_of(category: str | None, mapping: Mapping[str, str] | None = None) -> str:
    """The curriculum phase of a category (``knowledge/...`` taxonomy paths map to their first folder)."""
    if mapping and category in mapping:
        phase = mapping[category]
        if phase not in PHASES:
            raise ConfigError(bilingual(f"la categoria {category!r} -> {phase!r} non è una fase",
                                        f"category {category!r} -> {phase!r} is not a phase", where="curriculum mapping"),
                              hint=f"phases: {', '.join(PHASES)}")
        return phase
    if not category:
        return DEFAULT_PHASE
    head = category.split("/", 1)[0]
    if head in PHASES:
        return head
    return CATEGORY_PHASES.get(category, DEFAULT_PHASE)


def _pairs(items: Iterable[Any]) -> list[tuple[Messages, str | None]]:
    pairs = []
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2:
            pairs.append((item[0], item[1]))
        elif isinstance(item, dict) and "messages" in item:
            pairs.append((item["messages"], item.get("category")))
        elif hasattr(item, "messages") and hasattr(item, "category"):
            pairs.append((item.messages, item.category))
        else:
            raise DataError(bilingual(f"l'elemento {i} deve essere (messages, category), una riga con 'messages' "
                                      "e 'category', o un Example",
                                      f"item {i} must be (messages, category), a row with 'messages' "
                                      f"and 'category', or an Example; got {type(item).__name__}", where="curriculum"))
    return pairs


def _length(messages: Messages) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages)


def phases(conversations_with_categories: Iterable[Any], *, short_to_long: bool = False,
           mapping: Mapping[str, str] | None = None, merge_skills: bool = False) -> list[tuple[str, list[Messages]]]:
    """Split conversations into curriculum phases, in training order; empty phases are left out.

    ``conversations_with_categories``: ``(messages, category)`` pairs, rows with ``messages`` and
    ``category``, or :class:`~hf_ita_plugin.data.loaders.Example` objects. Inside a phase the input
    order is kept, or with ``short_to_long`` conversations are sorted by length (stable).
    ``merge_skills`` gives the two phases of the LAB paper: ``knowledge`` then ``skills``.

    >>> phases([([{"role": "user", "content": "Scrivi un'email"}], "email_lettere"),
    ...         ([{"role": "user", "content": "Chi era Dante?"}], "cultura_generale")])[0][0]
    'knowledge'
    """
    pairs = _pairs(conversations_with_categories)
    return [(name, [pairs[i][0] for i in positions])
            for name, positions in _phase_positions(pairs, short_to_long, mapping, merge_skills)]


def _phase_positions(pairs: list[tuple[Messages, str | None]], short_to_long: bool, mapping: Mapping[str, str] | None,
                     merge_skills: bool) -> list[tuple[str, list[int]]]:
    """Input positions of each non-empty phase, in training order."""
    buckets: dict[str, list[int]] = {p: [] for p in PHASES}
    for i, (_, category) in enumerate(pairs):
        buckets[phase_of(category, mapping)].append(i)
    if merge_skills:
        buckets = {"knowledge": buckets["knowledge"],
                   "skills": sorted(buckets["foundational_skills"] + buckets["compositional_skills"])}
    out = []
    for name, positions in buckets.items():
        if positions:
            out.append((name, sorted(positions, key=lambda i: _length(pairs[i][0])) if short_to_long else positions))
    return out


def order(conversations_with_categories: Iterable[Any], *, short_to_long: bool = False,
          mapping: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
    """``(phase, input position)`` for every item, in curriculum order (to reorder rows with metadata)."""
    pairs = _pairs(conversations_with_categories)
    keyed = [(PHASES.index(phase_of(cat, mapping)), _length(msgs) if short_to_long else 0, i)
             for i, (msgs, cat) in enumerate(pairs)]
    return [(PHASES[p], i) for p, _, i in sorted(keyed)]


CURRICULA = ("lab", "lab-two-phase")


def curriculum_order(examples: Iterable[Any], mode: str = "lab", *, short_to_long: bool = False, seed: int = 0,
                     mapping: Mapping[str, str] | None = None) -> tuple[list[Any], list[str]]:
    """Examples (with ``messages`` and ``category``) in training order, and the phase of each.

    ``lab``: the three phases of :data:`PHASES`; ``lab-two-phase``: ``knowledge`` then ``skills``.
    Inside a phase the order is a seeded shuffle, or shortest first with ``short_to_long``.
    """
    if mode not in CURRICULA:
        raise ConfigError(bilingual(f"curriculum sconosciuto {mode!r}", f"unknown curriculum {mode!r}"), hint=f"one of: none, {', '.join(CURRICULA)}")
    items = list(examples)
    random.Random(seed).shuffle(items)  # the order inside a phase (the length sort is stable)
    groups = _phase_positions(_pairs(items), short_to_long, mapping, merge_skills=mode == "lab-two-phase")
    ordered = [items[i] for _, positions in groups for i in positions]
    return ordered, [name for name, positions in groups for _ in positions]
