"""Base vs fine-tune: the one relative-change rule and the comparison table."""

from __future__ import annotations

from hf_ita_plugin.evaluation.compare import comparison_table, relative_change


def test_comparison_table_direction():
    table = comparison_table({"bits_per_byte": 2.0, "italian_rate": 0.5}, {"bits_per_byte": 1.5, "italian_rate": 0.25})
    assert "| bits_per_byte ↓ | 2.0000 | 1.5000 | -25.0% ✓ |" in table
    assert "| italian_rate ↑ | 0.5000 | 0.2500 | -50.0% |" in table


def test_relative_change_rule():
    before = {"bits_per_byte": 2.0, "italian_rate": 0.0, "response_loss": 4.0, "template": "chatml", "ok": True}
    after = {"bits_per_byte": 1.5, "italian_rate": 0.5, "response_loss": "n/a", "template": "llama3", "ok": False,
             "arc_it_acc": 0.3}
    # only metrics with a non-zero numeric before and a numeric after
    assert relative_change(before, after) == {"bits_per_byte": -0.25}
    # no before at all: no change
    assert relative_change(None, after) == {} and relative_change({}, after) == {}
    # divided by |before|: the sign is the direction of the move, rounded to 5 decimals
    assert relative_change({"x": -2.0, "y": 3.0}, {"x": -1.0, "y": 2.0}) == {"x": 0.5, "y": -0.33333}
    # metrics only in before get no change
    assert relative_change({"a": 1.0, "b": 2.0}, {"a": 2}) == {"a": 1.0}


def test_table_change_is_relative_change():
    before, after = {"response_loss": 9.0, "italian_rate": 0.0}, {"response_loss": 8.0, "italian_rate": 0.4}
    table = comparison_table(before, after)
    assert f"| response_loss ↓ | 9.0000 | 8.0000 | {relative_change(before, after)['response_loss']:+.1%} ✓ |" in table
    assert "| italian_rate ↑ | 0.0000 | 0.4000 |  |" in table  # zero before: no change shown


def test_recipe_suite_and_card_use_the_same_rule():
    from hf_ita_plugin.evaluation import suite
    from hf_ita_plugin.hub import card
    from hf_ita_plugin.hub.facts import CardFacts
    from hf_ita_plugin.training import recipe

    assert recipe.relative_change is relative_change and suite.relative_change is relative_change
    facts = CardFacts(base_model="org/base", eval_before={"bits_per_byte": 2.0, "response_loss": 0.0},
                      eval_after={"bits_per_byte": 1.5, "response_loss": 1.0})
    rows = {row["metric"]: row["change"] for row in card._eval_rows(facts)}
    assert rows == {"bits_per_byte": "-25.0%", "response_loss": None}
