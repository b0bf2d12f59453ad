"""Which training rows a run uses, and in what order: seeded samples and LAB curriculum order."""

from __future__ import annotations

import pytest

from hf_ita_plugin.data import load_examples, seeded_sample
from hf_ita_plugin.data.curriculum import PHASES, curriculum_order
from hf_ita_plugin.errors import ConfigError


def test_seeded_sample_spreads_over_a_file_grouped_by_category():
    examples = load_examples("bundled", strict=True).examples
    first = {e.category for e in examples[:200]}
    sample = seeded_sample(examples, 200, seed=42)
    assert len(sample) == 200
    assert len({e.category for e in sample}) == len({e.category for e in examples}) > len(first)
    assert [e.index for e in sample] == sorted(e.index for e in sample)  # original order kept
    assert [e.index for e in seeded_sample(examples, 200, seed=42)] == [e.index for e in sample]
    assert [e.index for e in seeded_sample(examples, 200, seed=7)] != [e.index for e in sample]
    assert seeded_sample(examples, None, 0) == examples and seeded_sample(examples, 10_000, 0) == examples


def test_lab_curriculum_puts_knowledge_first_then_skills():
    examples = load_examples("bundled", strict=True).examples
    ordered, phases = curriculum_order(examples, "lab", seed=1)
    assert sorted(e.index for e in ordered) == [e.index for e in examples]  # a permutation, nothing lost
    seen = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert seen == list(PHASES)  # each phase is one contiguous block, in LAB order
    knowledge = {e.category for e, p in zip(ordered, phases) if p == "knowledge"}
    assert knowledge == {"cultura_generale", "spiegazioni"}


def test_two_phase_curriculum_and_short_to_long():
    examples = load_examples("bundled", strict=True).examples
    ordered, phases = curriculum_order(examples, "lab-two-phase", short_to_long=True)
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == ["knowledge", "skills"]
    for name in ("knowledge", "skills"):
        lengths = [sum(len(m["content"]) for m in e.messages) for e, p in zip(ordered, phases) if p == name]
        assert lengths == sorted(lengths)


def test_unknown_curriculum_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown curriculum 'lba'"):
        curriculum_order([], "lba")
