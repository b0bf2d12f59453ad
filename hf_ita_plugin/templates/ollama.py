"""Ollama TEMPLATEs (Go ``text/template``) written for registry families the generic derivation cannot express.

``templates/go/<name>.gotmpl`` renders, with Ollama's variables (``.Messages``; Ollama's ``currentDate`` for
dated families), exactly what ``templates/jinja/<name>.jinja`` renders for a conversation that ends on a user
turn with the generation prompt, without the leading BOS (Ollama and llama.cpp add it). Shared pieces
(``strip``/``trim`` as Python's ``str.strip``, month names...) are ``{{ define }}`` blocks in
``templates/go/lib/``, included when a template calls them. ``%BOS%`` and ``%EOS%`` in a template stand for
the tokenizer's own BOS/EOS strings; the newline that ends each file is not part of the template. ``tests/test_modelfile_go.py`` renders each file with Go's own
``text/template`` over the Italian suite and compares with transformers.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

_DEFINE_RE = re.compile(r'\{\{-?\s*define\s+"([^"]+)"')
_CALL_RE = re.compile(r'\{\{-?\s*template\s+"([^"]+)"')
# Families whose registry Jinja renders like another's (Gemma 2's accepts the system text Gemma 3's way).
_SAME_AS = {"gemma-2": "gemma-3"}
BOS_PLACEHOLDER = "%BOS%"
EOS_PLACEHOLDER = "%EOS%"


def _go_dir() -> Path:
    return Path(str(resources.files("hf_ita_plugin") / "templates" / "go"))


def _read(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


@lru_cache(maxsize=1)
def _library() -> dict[str, str]:
    """Each ``{{ define }}`` name of ``go/lib/*.gotmpl`` -> the text of the file that defines it."""
    lib = {}
    for path in sorted((_go_dir() / "lib").glob("*.gotmpl")):
        text = _read(path)
        for name in _DEFINE_RE.findall(text):
            lib[name] = text
    return lib


def families_with_go_template() -> list[str]:
    """Registry names that have their own Ollama TEMPLATE, sorted."""
    own = {p.stem for p in _go_dir().glob("*.gotmpl")}
    return sorted(own | {name for name, same in _SAME_AS.items() if same in own})


def go_template_source(name: str) -> str | None:
    """The Go template of registry family ``name`` with the library blocks it calls, placeholders kept
    (``None`` when the family has none and the generic derivation serves it)."""
    path = _go_dir() / f"{_SAME_AS.get(name, name)}.gotmpl"
    if not path.is_file():
        return None
    body = _read(path)
    return library_blocks(body) + body


def library_blocks(template: str) -> str:
    """The ``go/lib`` blocks ``template`` calls (``{{ template "trim" ... }}``), and those they call, to put
    before it: an Ollama TEMPLATE is one text."""
    lib = _library()
    included: list[str] = []
    pending = [template]
    while pending:
        for called in _CALL_RE.findall(pending.pop()):
            text = lib.get(called)
            if text is not None and text not in included:
                included.append(text)
                pending.append(text)
    return "".join(included)
