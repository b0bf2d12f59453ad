"""InstructLab-style taxonomy trees: seed questions and answers organised by kind.

Layout::

    TAXONOMY/
      knowledge/<branch>/.../qna.yaml                # facts, with context passages and documents
      foundational_skills/<branch>/.../qna.yaml      # language, reasoning, code...
      compositional_skills/<branch>/.../qna.yaml     # tasks that combine them (email, summaries...)

A leaf ``qna.yaml`` (InstructLab schema, version 3)::

    version: 3
    created_by: nome-utente
    task_description: Scrivere email formali in italiano     # skills
    domain: storia                                        # knowledge
    seed_examples:
      - question: ...            # skills: question/answer (+ optional context)
        answer: ...
        context: ...
      - context: ...             # knowledge: a passage and questions about it
        questions_and_answers:
          - {question: ..., answer: ...}
    document:                    # knowledge, optional: documents next to the qna.yaml
      patterns: ["*.md"]

Every problem (malformed YAML, missing key, wrong type) is a :class:`DataError` naming the file,
and the line or the seed index.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import DataError, bilingual, describe_yaml_error
from ..utils.text import read_text

KINDS = ("knowledge", "foundational_skills", "compositional_skills")
LEAF_FILE = "qna.yaml"


@dataclass
class SeedExample:
    question: str
    answer: str
    context: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The seed as a conversation (the context, if any, precedes the question)."""
        user = f"{self.context.strip()}\n\n{self.question.strip()}" if self.context else self.question.strip()
        return [{"role": "user", "content": user}, {"role": "assistant", "content": self.answer.strip()}]


@dataclass
class Document:
    path: Path
    text: str


@dataclass
class TaxonomyLeaf:
    path: Path
    """The leaf's ``qna.yaml``."""
    branch: str
    """Folder of the leaf relative to the taxonomy root, e.g. ``knowledge/storia/risorgimento``."""
    kind: str
    """``knowledge``, ``foundational_skills`` or ``compositional_skills``."""
    seeds: list[SeedExample]
    task_description: str = ""
    domain: str = ""
    documents: list[Document] = field(default_factory=list)

    @property
    def description(self) -> str:
        return self.task_description or self.domain or self.branch


def is_taxonomy(path: str | Path) -> bool:
    """Whether ``path`` is a directory laid out as a taxonomy (a kind folder, or any ``qna.yaml``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any((path / kind).is_dir() for kind in KINDS) or next(path.rglob(LEAF_FILE), None) is not None


def load_taxonomy(root: str | Path) -> list[TaxonomyLeaf]:
    """Every leaf of the taxonomy under ``root``, in a stable order (knowledge first, then by path)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(bilingual(f"cartella della tassonomia non trovata: {root}", f"taxonomy directory not found: {root}"))
    leaves = [_load_leaf(root, path) for path in sorted(root.rglob(LEAF_FILE))]
    if not leaves:
        raise DataError(bilingual(f"nessun {LEAF_FILE} trovato", f"no {LEAF_FILE} found", where=root), hint=f"a taxonomy has leaves like {KINDS[0]}/<topic>/{LEAF_FILE}")
    return sorted(leaves, key=lambda leaf: (KINDS.index(leaf.kind), leaf.branch))


def taxonomy_rows(root: str | Path) -> list[dict[str, Any]]:
    """The seeds of every leaf as rows ``{"id", "category", "messages"}`` (category = the leaf's kind)."""
    rows = []
    for leaf in load_taxonomy(root):
        for i, seed in enumerate(leaf.seeds):
            rows.append({"id": f"{leaf.branch}#{i}", "category": leaf.kind, "messages": seed.messages()})
    return rows


def _load_leaf(root: Path, path: Path) -> TaxonomyLeaf:
    branch = path.parent.relative_to(root).as_posix()
    kind = branch.split("/", 1)[0]
    if kind not in KINDS:
        dirs = ", ".join(f"{k}/" for k in KINDS)
        raise DataError(bilingual(f"una foglia deve stare sotto una tra {dirs}",
                                  f"a leaf must live under one of {dirs} (found under {kind!r})", where=path))
    data = _read_yaml(path)
    raw_seeds = data.get("seed_examples")
    if not isinstance(raw_seeds, list) or not raw_seeds:
        raise DataError(bilingual("la chiave 'seed_examples' deve essere una lista non vuota di esempi",
                                  "key 'seed_examples' must be a non-empty list of examples", where=path))
    seeds: list[SeedExample] = []
    for i, raw in enumerate(raw_seeds):
        where = f"{path}: seed_examples[{i}]"
        if not isinstance(raw, dict):
            raise DataError(bilingual("attesa una mappa", f"expected a mapping, got {type(raw).__name__}", where=where))
        context = _optional_text(raw, "context", where)
        if "questions_and_answers" in raw:
            qas = raw["questions_and_answers"]
            if not isinstance(qas, list) or not qas:
                raise DataError(bilingual("'questions_and_answers' deve essere una lista non vuota",
                                          "'questions_and_answers' must be a non-empty list", where=where))
            for j, qa in enumerate(qas):
                inner = f"{where}.questions_and_answers[{j}]"
                if not isinstance(qa, dict):
                    raise DataError(bilingual("attesa una mappa con 'question' e 'answer'",
                                              "expected a mapping with 'question' and 'answer'", where=inner))
                seeds.append(SeedExample(_text(qa, "question", inner), _text(qa, "answer", inner), context))
        else:
            seeds.append(SeedExample(_text(raw, "question", where), _text(raw, "answer", where), context))
    return TaxonomyLeaf(
        path=path, branch=branch, kind=kind, seeds=seeds,
        task_description=_optional_text(data, "task_description", str(path)) or "",
        domain=_optional_text(data, "domain", str(path)) or "",
        documents=_documents(path, data.get("document")),
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(read_text(path, error=DataError, option=None))
    except yaml.YAMLError as exc:
        raise DataError(describe_yaml_error(path, exc)) from None
    if not isinstance(data, dict):
        raise DataError(bilingual("il livello principale deve essere una mappa con 'seed_examples'",
                                  f"the top level must be a mapping with 'seed_examples', got {type(data).__name__}",
                                  where=path))
    return data


def _text(mapping: dict[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if value is None:
        raise DataError(bilingual(f"'{key}' mancante", f"missing '{key}'", where=where))
    if not isinstance(value, str):
        raise DataError(bilingual(f"'{key}' deve essere testo", f"'{key}' must be text, got {type(value).__name__}",
                                  where=where))
    if not value.strip():
        raise DataError(bilingual(f"'{key}' è vuoto", f"'{key}' is empty", where=where))
    return value


def _optional_text(mapping: dict[str, Any], key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(bilingual(f"'{key}' deve essere testo", f"'{key}' must be text, got {type(value).__name__}",
                                  where=where))
    return value


def _documents(path: Path, spec: Any) -> list[Document]:
    """Local documents of a leaf: ``document.patterns`` globbed next to the ``qna.yaml``."""
    if spec is None:
        return []
    if not isinstance(spec, dict):
        raise DataError(bilingual("'document' deve essere una mappa con 'patterns'",
                                  "'document' must be a mapping with 'patterns'", where=path))
    patterns = spec.get("patterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise DataError(bilingual("document.patterns deve essere una lista di pattern glob",
                                  "document.patterns must be a list of glob patterns", where=path))
    repo = spec.get("repo")
    base = path.parent
    if isinstance(repo, str) and repo and "://" not in repo and not repo.startswith("git@"):
        base = (path.parent / repo).resolve()  # a local folder of documents
    docs = []
    for pattern in patterns:
        for match in sorted(glob.glob(str(base / pattern), recursive=True)):
            p = Path(match)
            if p.is_file() and p.name != LEAF_FILE:
                docs.append(Document(p, p.read_text(encoding="utf-8", errors="replace")))
    return docs
