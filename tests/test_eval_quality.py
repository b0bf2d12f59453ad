"""Answer quality: distinct-n and Italian-rate on real Italian (and English) text."""

from __future__ import annotations

import pytest

from hf_ita_plugin.data import load_conversations
from hf_ita_plugin.errors import EvaluationError
from hf_ita_plugin.evaluation.quality import distinct_n, italian_rate


def test_distinct_n():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["ciao ciao ciao ciao"], 1) == 0.25
    assert distinct_n([""], 2) == 0.0


def test_italian_rate_on_real_text():
    answers = [c[-1]["content"] for c in load_conversations("bundled-heldout")]
    rate = italian_rate(answers)
    assert rate.rate >= 0.95 and rate.languages["it"] >= 0.95 * len(answers)
    english = ["The weather in Rome is sunny today, with a light breeze from the sea.",
               "Please remember to bring your passport when you travel abroad next week."]
    assert italian_rate(english).rate == 0.0
    mixed = italian_rate(answers[:2] + english + ["Sì."])
    assert (mixed.n_italian, mixed.n_too_short, mixed.rate) == (2, 1, pytest.approx(2 / 5))
    with pytest.raises(EvaluationError):
        italian_rate([])


def test_italian_prompts_spread_over_the_categories():
    """A few prompts cover different kinds of request (the held-out file starts with five code questions)."""
    import json

    from hf_ita_plugin.data import bundled_data_path
    from hf_ita_plugin.evaluation.quality import italian_prompts

    rows = [json.loads(line) for line in bundled_data_path("heldout.jsonl").read_text(encoding="utf-8").splitlines()]
    category_of = {r["messages"][next(i for i, m in enumerate(r["messages"]) if m["role"] == "user")]["content"]: r["category"]
                   for r in rows}
    categories = {r["category"] for r in rows}
    prompts = italian_prompts(len(categories))
    assert {category_of[p[-1]["content"]] for p in prompts} == categories
    assert all(p[-1]["role"] == "user" for p in prompts)
    everything = italian_prompts(None)
    assert len(everything) == len(rows) and sorted(map(str, everything)) == sorted(map(str, italian_prompts(len(rows))))
