"""Loading every supported row format into canonical conversations, with row-level errors."""

from __future__ import annotations

import json

import pytest

from hf_ita_plugin.data import load_conversations
from hf_ita_plugin.errors import DataError


def jsonl(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def test_bundled_sets_are_large_valid_and_disjoint():
    train = load_conversations("bundled")
    held = load_conversations("bundled-heldout")
    assert len(train) >= 400 and len(held) >= 80
    for conv in train + held:
        assert conv[-1]["role"] == "assistant" and conv[-1]["content"].strip()
    key = lambda c: json.dumps(c, ensure_ascii=False)  # noqa: E731
    assert not {key(c) for c in train} & {key(c) for c in held}
    assert sum(1 for c in train if c[0]["role"] == "system") >= 20
    assert sum(1 for c in train if sum(m["role"] == "user" for m in c) > 1) >= 20


def test_every_format(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "Ciao"}, {"role": "assistant", "content": "Ciao! Come posso aiutarti?"}]},
        {"instruction": "Traduci in italiano", "input": "Good morning", "output": "Buongiorno"},
        {"conversations": [{"from": "system", "value": "Sii breve."}, {"from": "human", "value": "Capitale d'Italia?"},
                           {"from": "gpt", "value": "Roma."}]},
        {"prompt": "Scrivi un saluto.", "completion": "Un caro saluto a tutti!"},
    ]
    convs = load_conversations(jsonl(tmp_path, rows))
    assert convs[0][1]["content"] == "Ciao! Come posso aiutarti?"
    assert convs[1] == [{"role": "user", "content": "Traduci in italiano\n\nGood morning"},
                        {"role": "assistant", "content": "Buongiorno"}]
    assert [m["role"] for m in convs[2]] == ["system", "user", "assistant"]
    assert convs[3][0] == {"role": "user", "content": "Scrivi un saluto."}


def test_csv_and_json_files(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("instruction,input,output\nDi' ciao,,Ciao!\n", encoding="utf-8")
    assert load_conversations(str(csv))[0][-1]["content"] == "Ciao!"
    js = tmp_path / "d.json"
    js.write_text(json.dumps([{"prompt": "a", "completion": "b"}]), encoding="utf-8")
    assert load_conversations(str(js))[0][1]["content"] == "b"


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"instruction": "Fai X"}, "row 1: cannot tell the format"),
        ({"instruction": "Fai X", "output": ""}, "row 1: field 'output' is empty"),
        ({"instruction": "Fai X", "output": 3}, "row 1: field 'output' must be text"),
        ({"conversations": [{"from": "robot", "value": "x"}]}, "row 1: conversations[0].from = 'robot'"),
        ({"messages": [{"role": "user"}]}, "row 1: messages[0] must have 'role' and 'content'"),
    ],
)
def test_bad_rows_name_row_and_field(tmp_path, row, expected):
    good = {"prompt": "Ciao", "completion": "Ciao a te"}
    with pytest.raises(DataError) as info:
        load_conversations(jsonl(tmp_path, [good, row]))
    where, _, english = expected.partition(": ")  # "row 1: <italiano> / <English>"
    assert f"{where}: " in str(info.value) and f" / {english}" in str(info.value)


def test_empty_and_missing_and_malformed(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="the dataset is empty"):
        load_conversations(str(empty))
    with pytest.raises(DataError, match="data file not found"):
        load_conversations(str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_conversations(str(bad))
