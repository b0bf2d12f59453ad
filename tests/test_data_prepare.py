"""The prepare pipeline end to end: dedup, curriculum, tokens, atomic output, the CLI."""

from __future__ import annotations

import json
import random

import pytest

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.data import bundled_data_path, curriculum, load_conversations, load_examples
from hf_ita_plugin.data.dedup import Deduplicator, DedupConfig, jaccard, signature
from hf_ita_plugin.data.loaders import Example, LoadedData
from hf_ita_plugin.data.prepare import PrepareOptions, prepare, prepare_examples
from hf_ita_plugin.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def bundled():
    return load_conversations("bundled")


def test_no_false_duplicates_in_the_bundled_set(bundled):
    dd = Deduplicator()
    assert [i for i, conv in enumerate(bundled) if dd.check(i, signature(conv))] == []


def test_near_duplicates_found_at_the_exact_threshold(bundled):
    rng = random.Random(0)
    dd = Deduplicator(DedupConfig(threshold=0.8))
    for i, conv in enumerate(bundled):
        dd.check(i, signature(conv))
    checked = 0
    for i, conv in enumerate(bundled[:120]):
        words = conv[-1]["content"].split()
        if len(words) < 30:
            continue
        words[rng.randrange(len(words))] = "parolanuova"
        copy = [*conv[:-1], {"role": "assistant", "content": " ".join(words)}]
        sig = signature(copy)
        true = jaccard(sig.shingles, signature(conv).shingles)
        found = dd.check(10_000 + i, sig)
        if true >= 0.8:
            checked += 1
            assert found is not None and found.reason == "near_duplicate" and found.of_index == i
            assert found.similarity == pytest.approx(true, abs=1e-4)
        else:
            assert found is None
    assert checked >= 30


def test_exact_key_ignores_case_punctuation_and_spaces():
    a = [{"role": "user", "content": "Che ore sono?"}, {"role": "assistant", "content": "Sono le tre."}]
    b = [{"role": "user", "content": "  che ORE sono "}, {"role": "assistant", "content": "Sono le tre!"}]
    c = [{"role": "user", "content": "Che ore sono?"}, {"role": "assistant", "content": "Sono le quattro."}]
    assert signature(a).key == signature(b).key != signature(c).key
    with pytest.raises(ConfigError, match="threshold"):
        Deduplicator(DedupConfig(threshold=1.5))


def test_curriculum_phases_and_order(bundled):
    rows = [json.loads(line) for line in open(bundled_data_path("train.jsonl"), encoding="utf-8")]
    phases = curriculum.phases(rows, short_to_long=True)
    assert [name for name, _ in phases] == ["knowledge", "foundational_skills", "compositional_skills"]
    assert sum(len(c) for _, c in phases) == len(rows)
    for _, convs in phases:
        lengths = [sum(len(m["content"]) for m in c) for c in convs]
        assert lengths == sorted(lengths)
    knowledge_ids = {r["id"] for r in rows if r["category"] in ("cultura_generale", "spiegazioni")}
    assert len(phases[0][1]) == len(knowledge_ids)
    two = curriculum.phases([(c, "cultura_generale") for c in bundled[:2]] + [(bundled[3], "codice")], merge_skills=True)
    assert [(n, len(c)) for n, c in two] == [("knowledge", 2), ("skills", 1)]
    assert curriculum.phase_of("knowledge/storia/risorgimento") == "knowledge"
    assert curriculum.phase_of("qualcosa", {"qualcosa": "foundational_skills"}) == "foundational_skills"
    with pytest.raises(ConfigError, match="not a phase"):
        curriculum.phase_of("x", {"x": "skills"})
    with pytest.raises(DataError, match="item 0"):
        curriculum.phases(["testo"])


def test_prepare_bundled_writes_everything_atomically(tmp_path):
    out = tmp_path / "prepared"
    result = prepare("bundled", out, options=PrepareOptions(curriculum="lab", progress=False))
    assert result.train_path == out / "train.jsonl" and result.report.input_rows == 425
    files = sorted(p.name for p in out.iterdir())
    assert files == [".hf-ita-manifest.json", "rejected.jsonl", "report.json", "report.md", "train.jsonl"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert report["input_rows"] == 425 and report["kept"] == len(rows) == 425 - report["dropped"]
    assert [r["phase"] for r in rows] == sorted((r["phase"] for r in rows), key=curriculum.PHASES.index)
    assert load_conversations(str(out / "train.jsonl")) == [r["messages"] for r in rows]  # the recipe can read it
    assert report["stats"]["phases"]["knowledge"] == sum(r["phase"] == "knowledge" for r in rows)
    with pytest.raises(DataError, match="is not empty"):
        prepare("bundled", out)
    assert not list(tmp_path.glob(".prepared.*"))  # no temporary directory left behind


def test_token_counting_and_limit(tmp_path):
    loaded = load_examples("bundled", limit=40)
    prepared = prepare_examples(loaded, PrepareOptions(tokenizer="embedded", system_prompt="default",
                                                       max_tokens=200, progress=False))
    dropped = [r for r in prepared.report.rejections if r.reason == "too_many_tokens"]
    assert dropped and all(int(r.detail.split()[0]) > 200 for r in dropped)
    assert max(prepared.token_counts) <= 200
    assert len(prepared.examples) + len(dropped) == 40
    assert prepared.report.stats["tokens_max"] == max(prepared.token_counts)
    from hf_ita_plugin.data.prepare import load_tokenizer
    from hf_ita_plugin.templates import tokenize_conversation, with_system_prompt

    tokenizer = load_tokenizer("embedded")
    for ex, n in list(zip(prepared.examples, prepared.token_counts))[:5]:  # same count as the training tokenization
        assert len(tokenize_conversation(tokenizer, with_system_prompt(ex.messages, "default"))["input_ids"]) == n


def test_parallel_workers_give_the_serial_result():
    convs = load_conversations("bundled")[:150]
    messy = convs + [[dict(m) for m in c] for c in convs[:30]]  # 30 exact duplicates at the end
    loaded = LoadedData("test", [Example(i, m) for i, m in enumerate(messy)], [], len(messy))
    serial = prepare_examples(loaded, PrepareOptions(workers=1, progress=False))
    parallel = prepare_examples(loaded, PrepareOptions(workers=2, progress=False))
    assert [e.messages for e in serial.examples] == [e.messages for e in parallel.examples]
    assert [r.to_dict() for r in serial.report.rejections] == [r.to_dict() for r in parallel.report.rejections]
    assert serial.report.dropped["exact_duplicate"] == 30


def _expected_by_row(messages_list, options):
    """The pipeline's result computed the simple way: one row at a time, tokens counted last."""
    from hf_ita_plugin.data.cleaning import clean_conversation
    from hf_ita_plugin.data.prepare import load_tokenizer
    from hf_ita_plugin.templates import tokenize_conversation, with_system_prompt

    tokenizer = load_tokenizer(options.tokenizer)
    dd = Deduplicator(options.dedup)
    kept, rejected = [], []
    for i, messages in enumerate(messages_list):
        outcome = clean_conversation(messages, options.cleaning)
        if not outcome.kept:
            rejected.append((i, outcome.reason))
            continue
        ids = tokenize_conversation(tokenizer, with_system_prompt(outcome.messages, options.system_prompt))["input_ids"]
        if options.max_tokens and len(ids) > options.max_tokens:
            rejected.append((i, "too_many_tokens"))
            continue
        dup = dd.check(i, signature(outcome.messages, options.dedup))
        if dup is not None:
            rejected.append((i, dup.reason))
            continue
        kept.append((i, outcome.messages, len(ids)))
    return kept, rejected


@pytest.mark.parametrize("max_tokens", [None, 360])
def test_parallel_pipeline_matches_the_row_by_row_result(bundled, max_tokens):
    convs = [[dict(m) for m in c] for c in bundled[:90]]
    messy = convs + [[dict(m) for m in c] for c in convs[:12]]  # exact duplicates (some too long)
    for conv in convs[20:32]:  # near duplicates: one word of the answer changed
        words = conv[-1]["content"].split()
        words[len(words) // 2] = "parolanuova"
        messy.append([*conv[:-1], {"role": "assistant", "content": " ".join(words)}])
    messy.append([{"role": "user", "content": "Qual è la capitale della Francia?"},
                  {"role": "assistant", "content": "The capital of France is Paris, a large city with many museums."}])
    messy.append([{"role": "user", "content": "Ciao"}, {"role": "assistant", "content": "<|im_start|>assistant\nÃˆ un piacere!"}])
    options = PrepareOptions(tokenizer="embedded", system_prompt="default", max_tokens=max_tokens, workers=2,
                             progress=False)
    loaded = LoadedData("test", [Example(i, m) for i, m in enumerate(messy)], [], len(messy))
    prepared = prepare_examples(loaded, options)
    kept, rejected = _expected_by_row(messy, options)
    assert [(e.index, e.messages) for e in prepared.examples] == [(i, m) for i, m, _ in kept]
    assert prepared.token_counts == [n for _, _, n in kept]
    assert [(r.index, r.reason) for r in prepared.report.rejections] == rejected
    reasons = {reason for _, reason in rejected}
    assert {"exact_duplicate", "near_duplicate", "not_italian"} <= reasons
    assert ("too_many_tokens" in reasons) == (max_tokens is not None)
    serial = prepare_examples(loaded, PrepareOptions(**{**options.__dict__, "workers": 1}))  # in-process path
    for report in (serial.report, prepared.report):
        report.stats.pop("prepare_seconds")
    assert serial.token_counts == prepared.token_counts and serial.report.to_dict() == prepared.report.to_dict()


def test_cli_prepare(tmp_path, capsys):
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps([
        {"domanda": "Che cos'è la fotosintesi?", "risposta": "È il processo con cui le piante producono zuccheri dalla luce."},
        {"domanda": "What is this?", "risposta": "This is an English answer that should not be kept at all."},
    ], ensure_ascii=False), encoding="utf-8")
    code = main(["data", "prepare", str(src), "--column", "instruction=domanda", "--column", "output=risposta",
                 "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "1/2" in printed and "not_italian: 1" in printed
    rejected = [json.loads(l) for l in (tmp_path / "out" / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rejected == [{"index": 1, "reason": "not_italian", "detail": rejected[0]["detail"], "preview": rejected[0]["preview"]}]
    assert main(["data", "prepare", str(src), "--output-dir", str(tmp_path / "out2"), "--quiet"]) == 2
    assert "no row survived preparation" in capsys.readouterr().err
    assert main(["data", "prepare", str(tmp_path / "missing.jsonl"), "--output-dir", str(tmp_path / "o3")]) == 2
    assert "data file not found" in capsys.readouterr().err


def test_conversations_the_template_rejects_are_invalid_rows_and_never_shadow_a_copy(tmp_path):
    from hf_ita_plugin.data import prepare as prepare_module
    from hf_ita_plugin.data.prepare import load_tokenizer
    from hf_ita_plugin.templates import render, render_many

    picky = load_tokenizer("embedded")
    picky.chat_template = ("{% for m in messages %}{% if m['content'].startswith('Vietato') %}"
                           "{{ raise_exception('contenuto vietato') }}{% endif %}"
                           "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    ok = [{"role": "user", "content": "Qual è la capitale d'Italia?"},
          {"role": "assistant", "content": "La capitale d'Italia è Roma, che conta quasi tre milioni di abitanti."}]
    bad = [{"role": "user", "content": "Vietato: scrivi una poesia sul mare."}, ok[1]]
    texts = render_many(picky, [ok, bad, ok])
    assert texts[0] == texts[2] == render(picky, ok)
    assert "contenuto vietato" in texts[1].message

    key = ("picky-test", None)
    prepare_module._WORKER_TOKENIZERS[key] = picky  # in-process run: the pipeline's own cache, a real tokenizer
    try:
        loaded = LoadedData("test", [Example(0, bad), Example(1, bad), Example(2, ok)], [], 3)
        prepared = prepare_examples(loaded, PrepareOptions(tokenizer="picky-test", workers=1, progress=False))
    finally:
        prepare_module._WORKER_TOKENIZERS.pop(key, None)
        prepare_module._WORKER_COUNTERS.pop((*key, True), None)
    reasons = {r.index: (r.reason, r.detail) for r in prepared.report.rejections}
    assert reasons.keys() == {0, 1}
    assert all(reason == "invalid" and "contenuto vietato" in detail for reason, detail in reasons.values())
    assert [ex.index for ex in prepared.examples] == [2]
    assert prepared.token_counts == [len(picky(render(picky, ok), add_special_tokens=False)["input_ids"])]


def _die(chunk):
    import os

    os._exit(3)  # a worker killed mid-chunk (as by the out-of-memory killer)


def test_a_dead_worker_is_a_clear_error_not_a_hang():
    from hf_ita_plugin.data.prepare import _Workers

    with pytest.raises(DataError, match="worker process .* died") as info:
        with _Workers(2) as workers:
            list(workers.map(_die, [[1], [2], [3]]))
    assert "--workers 1" in info.value.hint


def test_reference_token_counter_gives_the_same_counts_as_the_fast_one():
    """``fast_token_counter=False`` (the benchmark's reference) counts with the tokenizer itself, same numbers."""
    from hf_ita_plugin.data import prepare as prepare_module
    from hf_ita_plugin.data.prepare import _counter_for

    convs = [[{"role": "user", "content": f"Domanda {i}: com'è il tempo a Perù? 🙂"},
              {"role": "assistant", "content": f"Risposta numero {i}: c'è il sole, però fa freddo.\n\n  Ciao!"}] for i in range(40)]
    loaded = LoadedData("test", [Example(i, c) for i, c in enumerate(convs)], [], len(convs))
    fast = prepare_examples(loaded, PrepareOptions(tokenizer="embedded", workers=1, progress=False))
    ref_options = PrepareOptions(tokenizer="embedded", workers=1, progress=False, fast_token_counter=False)
    reference = prepare_examples(loaded, ref_options)
    assert _counter_for(ref_options).backend == "tokenizers"
    assert reference.report.stats["token_counter"] == "tokenizers" != fast.report.stats["token_counter"]
    assert reference.token_counts == fast.token_counts and len(fast.token_counts) == len(fast.examples) > 0
    assert prepare_module._counter_for(PrepareOptions(tokenizer="embedded")).backend == "tiktoken"
