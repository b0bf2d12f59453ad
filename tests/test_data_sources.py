"""Loading every source and format: yaml, parquet, column mapping, taxonomy trees, lenient loads."""

from __future__ import annotations

import json
import textwrap

import pytest

from hf_ita_plugin.data import load_conversations, load_examples
from hf_ita_plugin.data.taxonomy import is_taxonomy, load_taxonomy, taxonomy_rows
from hf_ita_plugin.errors import DataError

ROWS = [
    {"messages": [{"role": "user", "content": "Ciao"}, {"role": "assistant", "content": "Ciao! Come posso aiutarti?"}]},
    {"instruction": "Traduci in italiano", "input": "Good morning", "output": "Buongiorno"},
    {"conversations": [{"from": "human", "value": "Capitale d'Italia?"}, {"from": "gpt", "value": "Roma."}]},
    {"prompt": "Scrivi un saluto.", "completion": "Un caro saluto a tutti!"},
]


def write_taxonomy(root, *, broken: str | None = None):
    """A small InstructLab-style tree with one leaf of each kind and a knowledge document."""
    leaves = {
        "knowledge/storia/risorgimento/qna.yaml": """
            version: 3
            domain: storia d'Italia
            document_outline: Il Risorgimento e l'unità d'Italia
            seed_examples:
              - context: |
                  Il Regno d'Italia fu proclamato il 17 marzo 1861 a Torino.
                questions_and_answers:
                  - question: Quando fu proclamato il Regno d'Italia?
                    answer: Il 17 marzo 1861.
                  - question: In quale città fu proclamato?
                    answer: A Torino, allora capitale.
            document:
              repo: .
              patterns: ["*.md"]
            """,
        "foundational_skills/grammatica/congiuntivo/qna.yaml": """
            version: 3
            task_description: Usare correttamente il congiuntivo
            created_by: redazione
            seed_examples:
              - question: Correggi la frase "Penso che è tardi".
                answer: La forma corretta è "Penso che sia tardi", perché "pensare che" regge il congiuntivo.
            """,
        "compositional_skills/scrittura/email/qna.yaml": """
            version: 3
            task_description: Scrivere email formali in italiano
            seed_examples:
              - question: Scrivi un'email per chiedere un giorno di ferie.
                answer: |
                  Gentile dottoressa Rossi,
                  le scrivo per chiederle un giorno di ferie venerdì 12. Resto a disposizione.
                  Cordiali saluti,
                  Marco
            """,
    }
    for rel, text in leaves.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    (root / "knowledge/storia/risorgimento/unita.md").write_text(
        "# L'unità d'Italia\n\nNel 1861 nacque il Regno d'Italia, con Vittorio Emanuele II re.\n", encoding="utf-8")
    if broken:
        (root / broken).parent.mkdir(parents=True, exist_ok=True)
        (root / broken).write_text("version: 3\nseed_examples:\n  - question: [aperta\n    answer: x\n", encoding="utf-8")
    return root


def test_yaml_parquet_and_json_sources(tmp_path):
    import yaml
    from datasets import Dataset

    y = tmp_path / "d.yaml"
    y.write_text(yaml.safe_dump({"data": ROWS}, allow_unicode=True), encoding="utf-8")
    from_yaml = load_conversations(str(y))
    assert [c[-1]["content"] for c in from_yaml] == ["Ciao! Come posso aiutarti?", "Buongiorno", "Roma.", "Un caro saluto a tutti!"]
    pq = tmp_path / "d.parquet"
    Dataset.from_list([{"prompt": "Dimmi un colore.", "completion": "Verde."}] * 2).to_parquet(str(pq))
    assert load_conversations(str(pq))[1] == [{"role": "user", "content": "Dimmi un colore."},
                                              {"role": "assistant", "content": "Verde."}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- prompt: a\n  completion: [b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.yaml: YAML non valido alla riga \d+.* / malformed YAML at line \d+"):
        load_conversations(str(bad))


def test_column_mapping(tmp_path):
    path = tmp_path / "it.jsonl"
    rows = [{"domanda": "Che cos'è un haiku?", "risposta": "Un breve componimento giapponese di tre versi.", "tema": "poesia"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    convs = load_conversations(str(path), columns={"instruction": "domanda", "output": "risposta"})
    assert convs == [[{"role": "user", "content": "Che cos'è un haiku?"},
                      {"role": "assistant", "content": "Un breve componimento giapponese di tre versi."}]]
    loaded = load_examples(str(path), columns={"prompt": "domanda", "completion": "risposta", "category": "tema"})
    assert loaded.examples[0].category == "poesia"
    with pytest.raises(DataError, match=r"row 0: .* / missing column 'domande' \(mapped to 'instruction'\)"):
        load_conversations(str(path), columns={"instruction": "domande", "output": "risposta"})
    with pytest.raises(DataError, match="unknown canonical column 'istruzione'"):
        load_conversations(str(path), columns={"istruzione": "domanda"})


def test_lenient_load_reports_bad_rows_with_index(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = ROWS + [["not", "a", "row"], {"instruction": "x"}, {"prompt": "a", "completion": 7}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    loaded = load_examples(str(path))
    assert [e.index for e in loaded.examples] == [0, 1, 2, 3]
    assert [(b.index, b.reason) for b in loaded.invalid] == [(4, "invalid"), (5, "invalid"), (6, "invalid")]
    assert "expected an object" in loaded.invalid[0].problem
    assert "cannot tell the format" in loaded.invalid[1].problem
    assert "field 'completion' must be text" in loaded.invalid[2].problem
    assert loaded.total_rows == 7
    with pytest.raises(DataError, match="row 4: .* / expected an object"):
        load_examples(str(path), strict=True)


def test_taxonomy_tree(tmp_path):
    root = write_taxonomy(tmp_path / "tax")
    assert is_taxonomy(root) and not is_taxonomy(tmp_path / "nope")
    leaves = load_taxonomy(root)
    assert [leaf.kind for leaf in leaves] == ["knowledge", "foundational_skills", "compositional_skills"]
    knowledge = leaves[0]
    assert knowledge.branch == "knowledge/storia/risorgimento" and len(knowledge.seeds) == 2
    assert knowledge.seeds[1].context.startswith("Il Regno d'Italia")
    assert [d.path.name for d in knowledge.documents] == ["unita.md"]
    rows = taxonomy_rows(root)
    assert rows[0]["id"] == "knowledge/storia/risorgimento#0" and rows[0]["category"] == "knowledge"
    assert rows[0]["messages"][0]["content"].endswith("Quando fu proclamato il Regno d'Italia?")
    convs = load_conversations(str(root), format="taxonomy")
    assert len(convs) == 4 and convs[3][1]["content"].startswith("Gentile dottoressa Rossi")
    loaded = load_examples(str(root))  # auto: a directory is a taxonomy
    assert [e.category for e in loaded.examples] == ["knowledge", "knowledge", "foundational_skills", "compositional_skills"]


def test_taxonomy_errors_name_file_and_place(tmp_path):
    root = write_taxonomy(tmp_path / "tax", broken="compositional_skills/rotta/qna.yaml")
    with pytest.raises(DataError, match=r"rotta/qna.yaml: .* / malformed YAML at line \d+, column \d+"):
        load_taxonomy(root)
    other = write_taxonomy(tmp_path / "tax2")
    (other / "foundational_skills/vuoto").mkdir()
    (other / "foundational_skills/vuoto/qna.yaml").write_text("version: 3\nseed_examples:\n  - question: Ciao?\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"vuoto/qna.yaml: seed_examples\[0\]: .* / missing 'answer'"):
        load_taxonomy(other)
    third = tmp_path / "tax3"
    (third / "altro").mkdir(parents=True)
    (third / "altro/qna.yaml").write_text("seed_examples: []\n", encoding="utf-8")
    with pytest.raises(DataError, match="must live under one of knowledge/"):
        load_taxonomy(third)
    with pytest.raises(DataError, match="is not a directory"):
        load_conversations(str(tmp_path / "file.jsonl"), format="taxonomy")
