"""Base vs fine-tune: the one relative-change rule and the comparison table.

:func:`relative_change` is the only place a change between two sets of metrics is computed: the
recipe's ``eval.change`` in ``metrics.json``, ``hf-ita eval``'s comparison and the model card's
evaluation table all use it.
"""

from __future__ import annotations

from typing import Any, Mapping

LOWER_IS_BETTER = {"bits_per_byte", "response_loss"}
"""Metrics that improve when they go down (the others improve when they go up)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def relative_change(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, float]:
    """``{metric: (after - before) / |before|}``, rounded to 5 decimals, for the metrics of ``after``.

    The rule: a metric gets a change only when ``before`` has it, both values are numbers
    (``bool`` is not) and the ``before`` value is not zero. No ``before`` at all (``None`` or
    empty) gives ``{}``. Dividing by ``|before|`` makes the sign the direction of the move.

    >>> relative_change({"loss": 2.0, "rate": 0.0, "name": "x"}, {"loss": 1.5, "rate": 0.5, "name": "y", "new": 1.0})
    {'loss': -0.25}
    """
    if not before:
        return {}
    return {key: round((value - before[key]) / abs(before[key]), 5) for key, value in after.items()
            if _is_number(value) and _is_number(before.get(key)) and before[key] != 0}


def comparison_table(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """Markdown table base vs fine-tune, with the relative change and whether it is an improvement."""
    changes = relative_change(before, after)
    lines = ["| metrica / metric | base | fine-tune | Δ |", "| --- | ---: | ---: | ---: |"]
    for key in dict.fromkeys([*before, *after]):
        b, a = before.get(key), after.get(key)
        change = ""
        if key in changes:
            rel = changes[key]
            better = (rel < 0) if key in LOWER_IS_BETTER else (rel > 0)
            change = f"{rel:+.1%} {'✓' if better and rel else ''}".strip()
        arrow = " ↓" if key in LOWER_IS_BETTER else " ↑"
        lines.append(f"| {key}{arrow} | {_fmt(b)} | {_fmt(a)} | {change} |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "—" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
