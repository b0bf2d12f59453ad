"""The data preparation report: counts and examples per reason, as a dict, JSON and Markdown.

Every input row ends up either kept or listed as rejected with its index, reason and detail; the
report counts both, keeps a few examples of each reason and of each fix, and renders Markdown
(Italian first, English alongside). :meth:`DataReport.card_data` is the compact dict the model
card uses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REASON_LABELS = {
    "invalid": ("riga non valida", "invalid row"),
    "empty": ("vuota", "empty"),
    "too_short": ("troppo corta", "too short"),
    "too_long": ("troppo lunga", "too long"),
    "not_italian": ("risposta non in italiano", "answer not in Italian"),
    "exact_duplicate": ("duplicato esatto", "exact duplicate"),
    "near_duplicate": ("quasi duplicato", "near duplicate"),
    "too_many_tokens": ("oltre il limite di token", "over the token limit"),
    "unparseable": ("output del teacher non interpretabile", "unparseable teacher output"),
}
FIX_LABELS = {
    "encoding_repaired": ("codifica riparata (mojibake)", "encoding repaired (mojibake)"),
    "unicode_normalized": ("Unicode normalizzato (NFC)", "Unicode normalised (NFC)"),
    "template_leak_removed": ("residui di template rimossi", "template leaks removed"),
    "whitespace_normalized": ("spazi normalizzati", "whitespace normalised"),
}
PREVIEW_CHARS = 160


@dataclass
class Rejection:
    """One input row that was not kept."""

    index: int
    reason: str
    detail: str = ""
    preview: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "detail": self.detail, "preview": self.preview}


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A one-line excerpt of a row or conversation for reports."""
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        text = " | ".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in value)
    else:
        text = repr(value) if not isinstance(value, str) else value
    head = " ".join(text[: 4 * limit].split())  # usually enough: the collapsed head starts like the whole
    if len(head) > limit:
        return head[: limit - 1] + "…"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class DataReport:
    """What preparation did to a dataset."""

    source: str
    input_rows: int = 0
    kept: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    fixes: Counter = field(default_factory=Counter)
    fix_examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    max_examples: int = 3

    def reject(self, index: int, reason: str, detail: str = "", row: Any = None) -> None:
        self.rejections.append(Rejection(index, reason, detail, preview(row) if row is not None else ""))

    def record_fixes(self, index: int, fixes: tuple[str, ...] | list[str], before: Any, after: Any) -> None:
        for fix in fixes:
            self.fixes[fix] += 1
            examples = self.fix_examples.setdefault(fix, [])
            if len(examples) < self.max_examples:
                examples.append({"index": index, "before": preview(before), "after": preview(after)})

    @property
    def dropped(self) -> Counter:
        return Counter(r.reason for r in self.rejections)

    def check_complete(self) -> None:
        """Every input row is kept or rejected exactly once (the pipeline's contract)."""
        rejected = [r.index for r in self.rejections]
        if len(set(rejected)) != len(rejected) or self.kept + len(rejected) != self.input_rows:
            raise AssertionError(f"report does not account for every row: {self.input_rows} rows, {self.kept} kept, "
                                 f"{len(rejected)} rejected ({len(set(rejected))} distinct)")

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (rejections: the examples per reason; all of them are in rejected.jsonl)."""
        dropped = self.dropped
        examples: dict[str, list[dict[str, Any]]] = {}
        for r in self.rejections:
            bucket = examples.setdefault(r.reason, [])
            if len(bucket) < self.max_examples:
                bucket.append(r.to_dict())
        return {
            "source": self.source,
            "input_rows": self.input_rows,
            "kept": self.kept,
            "dropped": sum(dropped.values()),
            "kept_fraction": round(self.kept / self.input_rows, 4) if self.input_rows else 0.0,
            "dropped_by_reason": dict(sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))),
            "fixed_by_kind": dict(sorted(self.fixes.items(), key=lambda kv: (-kv[1], kv[0]))),
            "examples_by_reason": examples,
            "examples_by_fix": self.fix_examples,
            "stats": self.stats,
            "options": self.options,
        }

    def card_data(self) -> dict[str, Any]:
        """The compact summary a model card shows (counts only, no row text)."""
        d = self.to_dict()
        return {k: d[k] for k in ("source", "input_rows", "kept", "dropped", "kept_fraction",
                                  "dropped_by_reason", "fixed_by_kind")} | {"stats": self.stats}

    def to_markdown(self) -> str:
        d = self.to_dict()
        lines = [
            "# Rapporto di preparazione dei dati / Data preparation report",
            "",
            f"- Sorgente / source: `{self.source}`",
            f"- Righe in ingresso / input rows: **{self.input_rows}**",
            f"- Conservate / kept: **{self.kept}** ({d['kept_fraction']:.1%})",
            f"- Scartate / dropped: **{d['dropped']}**",
            "",
        ]
        if d["dropped_by_reason"]:
            lines += ["## Righe scartate per motivo / Dropped rows by reason", "",
                      "| motivo / reason | righe / rows |", "| --- | ---: |"]
            for reason, count in d["dropped_by_reason"].items():
                it, en = REASON_LABELS.get(reason, (reason, reason))
                lines.append(f"| {it} / {en} (`{reason}`) | {count} |")
            lines.append("")
        if d["fixed_by_kind"]:
            lines += ["## Correzioni applicate / Fixes applied", "",
                      "| correzione / fix | righe / rows |", "| --- | ---: |"]
            for fix, count in d["fixed_by_kind"].items():
                it, en = FIX_LABELS.get(fix, (fix, fix))
                lines.append(f"| {it} / {en} | {count} |")
            lines.append("")
        if self.stats:
            lines += ["## Statistiche / Statistics", "", "| | |", "| --- | ---: |"]
            lines += [f"| {k} | {_cell(v)} |" for k, v in self.stats.items()]
            lines.append("")
        if d["examples_by_reason"]:
            lines += ["## Esempi per motivo / Examples by reason", ""]
            for reason, examples in d["examples_by_reason"].items():
                it, en = REASON_LABELS.get(reason, (reason, reason))
                lines.append(f"### {it} / {en}")
                lines.append("")
                for ex in examples:
                    shown = f" — `{_md(ex['preview'])}`" if ex["preview"] else ""
                    lines.append(f"- riga / row {ex['index']}: {_md(ex['detail'])}{shown}")
                lines.append("")
        if self.fix_examples:
            lines += ["## Esempi di correzioni / Examples of fixes", ""]
            for fix, examples in self.fix_examples.items():
                it, en = FIX_LABELS.get(fix, (fix, fix))
                lines.append(f"### {it} / {en}")
                lines.append("")
                for ex in examples:
                    lines.append(f"- riga / row {ex['index']}: `{_md(ex['before'])}` → `{_md(ex['after'])}`")
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _md(text: str) -> str:
    return str(text).replace("`", "'").replace("|", "\\|")
