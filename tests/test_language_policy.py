"""Language policy (hf_ita_plugin/errors.py): every user-facing error message is "italiano / English".

Scans the package source with ``ast`` for ``raise X(<string literal or f-string>, ...)`` where X is an
HfItaError subclass, and requires the message to contain the bilingual separator " / " (messages
built with ``bilingual(...)`` or from a variable are not literals and pass by construction).
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import hf_ita_plugin
from hf_ita_plugin import errors

PACKAGE = Path(hf_ita_plugin.__file__).parent

# (file relative to the package, the message's literal text with placeholders dropped) -> why it is
# fine. Only for messages whose bilingual text comes from a placeholder the scan cannot see.
ALLOWLIST: dict[tuple[str, str], str] = {
    # f"{action}: {_refusal(...)}": _refusal() returns the bilingual reason ("italiano / English").
    ("jobs/client.py", ": "): "bilingual text built by _refusal()",
}


def _error_class_names() -> set[str]:
    """Names of HfItaError and every subclass defined in the package (found in errors.py or by source scan)."""
    names = {n for n, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, errors.HfItaError)}
    changed = True
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")]
    while changed:  # subclasses of subclasses, defined anywhere in the package
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in node.bases}
                    if bases & names:
                        names.add(node.name)
                        changed = True
    return names


def _literal_text(node: ast.expr) -> str | None:
    """The constant text of a string literal or f-string (placeholders dropped); None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        if any(_calls_bilingual(v.value) for v in node.values if isinstance(v, ast.FormattedValue)):
            return " / "  # f"{where}: {bilingual(...)}"
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "..." + "..." / implicit concatenation
        left, right = _literal_text(node.left), _literal_text(node.right)
        return None if left is None and right is None else (left or "") + (right or "")
    return None


def _calls_bilingual(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "bilingual"


def _offenders() -> list[str]:
    names = _error_class_names()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in names or not node.exc.args:
                continue
            text = _literal_text(node.exc.args[0])
            if text is not None and " / " not in text:
                relative = path.relative_to(PACKAGE).as_posix()
                if (relative, text) not in ALLOWLIST:
                    found.append(f"{relative}:{node.lineno}: {text[:70]!r}")
    return found


def test_error_class_scan_finds_the_subclasses():
    names = _error_class_names()
    assert {"HfItaError", "ConfigError", "DataError", "ModelError", "EvaluationError", "VerificationFailed"} <= names


def test_literal_text_sees_fstrings_and_concatenation():
    assert _literal_text(ast.parse('f"{a}: riga / " f"line {b}"', mode="eval").body) == ": riga / line "
    assert _literal_text(ast.parse('f"{a}: empty line"', mode="eval").body) == ": empty line"
    assert " / " in _literal_text(ast.parse('f"{a}: {bilingual(x, y)}"', mode="eval").body)
    assert _literal_text(ast.parse("bilingual('a', 'b')", mode="eval").body) is None


def test_scan_flags_an_english_only_raise(tmp_path, monkeypatch):
    (tmp_path / "bad.py").write_text('from x import DataError\nraise DataError(f"{p}: file not found")\n')
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert _offenders() == ["bad.py:2: ': file not found'"]


def test_every_user_facing_error_message_is_bilingual():
    offenders = _offenders()
    assert not offenders, "English-only error messages (use errors.bilingual):\n" + "\n".join(offenders)
