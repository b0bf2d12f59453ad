"""Benchmark: data preparation throughput (clean + near-dedup + template + tokenize) and its scaling.

Rows are synthetic but realistic: recombinations of the bundled Italian conversations (prompts
with varied openings, answers assembled from sentences of the same category), with injected
exact duplicates, near duplicates, mojibake, template leaks and English answers, at rates typical
of machine-translated Alpaca data.

For every size (default 10k and 100k rows) the whole pipeline of ``hf-ita data prepare`` runs
(tokens counted for the embedded SmolLM2 tokenizer and its ChatML template) in three variants, and
two baselines do the trainer's floor on the same work, all alternated inside each repeat (medians):

- ``pipeline``: as users run it, one worker per core, tokens counted by tiktoken (verified equal);
- ``pipeline, 1 process``: the same without the worker pool;
- ``pipeline, 1 process, tokenizers``: also counting with the transformers tokenizer itself;
- ``baseline``: transformers' ``apply_chat_template`` + the pipeline's counter (tiktoken) on the rows
  the pipeline KEPT (cleaned messages), one process: the same rendering and counting, without
  cleaning, language ID and dedup;
- ``baseline, tokenizers``: the same rows rendered and tokenized with the transformers tokenizer.

``pipeline / baseline`` compares the same kept rows with the same counter; the split says where the
difference comes from: the pool (``1 process / pipeline``), tiktoken (``tokenizers / tiktoken``, in
the pipeline and in the baseline) and the pipeline's own stages (``1 process / baseline``). Scaling:
time(largest)/time(smallest) against the row ratio (1.0 = linear).

Per-stage breakdown: each stage of the pipeline run alone, in this process, on the smallest size
(CPU seconds, median of the repeats): text cleaning (ftfy, template leaks, whitespace), language
ID (which also finds the words dedup reuses), dedup signatures (normalisation, shingles, MinHash),
the LSH index, template rendering and token counting. The machine's load average is recorded
with every run: the 2 cores are shared, so compare ratios, not absolute seconds.

    python bench/bench_data.py [--sizes 10000,100000] [--repeats 3] [--stage-rows 5000]

Prints one JSON line and a table; writes bench/results/data.json (``bench/common.py``: commit, CPU, load).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
from pathlib import Path

from hf_ita_plugin.data import bundled_data_path
from hf_ita_plugin.data.loaders import Example, LoadedData
from hf_ita_plugin.data.prepare import PrepareOptions, load_tokenizer, prepare_examples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_now, save_result  # noqa: E402

TARGET_ROWS_PER_S = 5000
VARIANTS = ("pipeline", "pipeline, 1 process", "pipeline, 1 process, tokenizers", "baseline", "baseline, tokenizers")
ENGLISH = [
    "The capital of the country is a large city with many museums and parks.",
    "You should drink enough water every day and get regular exercise.",
    "This function sorts the list in place and returns None.",
    "Here is a short summary of the text you provided, focusing on the main points.",
    "Dear Sir or Madam, I am writing to ask for information about the course.",
]
OPENINGS = ["", "Per favore, ", "Mi potresti aiutare? ", "Domanda: ", "Ciao! ", "Scusa, ", "Una curiosità: "]
LEAKS = ["### Risposta:\n", "Output: ", "<|im_start|>assistant\n", "Risposta: "]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _pools():
    rows = [json.loads(line) for line in open(bundled_data_path("train.jsonl"), encoding="utf-8")]
    prompts, sentences = {}, {}
    for row in rows:
        cat = row["category"]
        msgs = row["messages"]
        prompts.setdefault(cat, []).extend(m["content"] for m in msgs if m["role"] == "user")
        for m in msgs:
            if m["role"] == "assistant" and "```" not in m["content"]:
                sentences.setdefault(cat, []).extend(s for s in _SENTENCE.split(m["content"]) if len(s) > 20)
    code_answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant" and "```" in m["content"]]
    return prompts, sentences, code_answers


def synthetic_rows(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """``n`` conversations: ~70% clean, 6% exact dups, 6% near dups, 5% mojibake, 5% leaks, 4% English, 4% code."""
    rng = random.Random(seed)
    prompts, sentences, code_answers = _pools()
    cats = sorted(prompts)
    out: list[list[dict[str, str]]] = []
    for i in range(n):
        kind = rng.random()
        if out and kind < 0.06:
            out.append([dict(m) for m in rng.choice(out)])  # exact duplicate
            continue
        if out and kind < 0.12:
            src = rng.choice(out)
            words = src[-1]["content"].split()
            if len(words) > 25:
                words[rng.randrange(len(words))] = rng.choice(["davvero", "anche", "inoltre"])
            out.append([*src[:-1], {"role": "assistant", "content": " ".join(words)}])  # near duplicate
            continue
        cat = rng.choice(cats)
        prompt = rng.choice(OPENINGS) + rng.choice(prompts[cat]) + f" (caso {rng.randrange(10**6)})"
        if kind < 0.16 or not sentences.get(cat):
            answer = rng.choice(code_answers)
        else:
            answer = " ".join(rng.sample(sentences[cat], k=min(len(sentences[cat]), rng.randint(2, 6))))
        if kind > 0.96:
            answer = " ".join(rng.sample(ENGLISH, k=3))
        elif kind > 0.91:
            answer = rng.choice(LEAKS) + answer
        elif kind > 0.86:
            answer = answer.encode("utf-8").decode("latin-1", errors="replace")  # mojibake
        out.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
    return out


def _loaded(convs) -> LoadedData:
    return LoadedData("synthetic", [Example(i, c) for i, c in enumerate(convs)], [], len(convs))


def time_pipeline(convs, workers: int, fast_counter: bool = True):
    """Wall seconds of the whole pipeline, its report and the kept conversations."""
    started = time.perf_counter()
    prepared = prepare_examples(_loaded(convs), PrepareOptions(tokenizer="embedded", workers=workers, progress=False,
                                                               fast_token_counter=fast_counter))
    return time.perf_counter() - started, prepared.report.to_dict(), [ex.messages for ex in prepared.examples]


def time_baseline(kept, tokenizer, counter=None) -> float:
    """Template + count the tokens of the kept rows only (no cleaning, no dedup), in this process.

    transformers' own batched ``apply_chat_template`` renders 512 conversations at a time; ``counter``
    (the pipeline's :class:`TokenCounter`) counts them, or without it the tokenizer tokenizes them (its
    Rust thread pool may use both cores).
    """
    started = time.perf_counter()
    for i in range(0, len(kept), 512):
        texts = tokenizer.apply_chat_template(kept[i : i + 512], tokenize=False)
        if counter is not None:
            counter.counts(texts)
        else:
            tokenizer(texts, add_special_tokens=False)
    return time.perf_counter() - started


def _cpu_seconds(func, repeats: int) -> float:
    """Median CPU seconds of ``func()`` in this process (less sensitive to other jobs than wall time)."""
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        func()
        runs.append(time.process_time() - started)
    return statistics.median(runs)


def stage_breakdown(convs, tokenizer, repeats: int) -> list[dict]:
    """CPU time of each pipeline stage run alone on ``convs``, in microseconds per input row."""
    from hf_ita_plugin.data.cleaning import CleaningConfig, clean_conversation
    from hf_ita_plugin.data.dedup import (Deduplicator, DedupConfig, band_keys, lsh_bands, minhashes,
                                          normalized_text_and_words, signatures, word_shingle_hash_sets)
    from hf_ita_plugin.data.language import answers_look_italian, identify
    from hf_ita_plugin.data.token_count import token_counter
    from hf_ita_plugin.templates import render, render_many

    no_language = CleaningConfig(require_italian=False)
    cleaned = [o.messages for o in (clean_conversation(c, no_language) for c in convs) if o.kept]
    answers = ["\n".join(m["content"] for m in c if m["role"] == "assistant") for c in cleaned]
    # the language check finds the messages' words (plain short answers), dedup reuses them
    found = [answers_look_italian(c, a)[1] for c, a in zip(cleaned, answers)]
    words = [normalized_text_and_words(c, w)[1] for c, w in zip(cleaned, found)]
    shingles = [s for i in range(0, len(words), 256) for s in word_shingle_hash_sets(words[i : i + 256])]
    sigs = [sig for i in range(0, len(cleaned), 256) for sig in signatures(cleaned[i : i + 256])]
    rendered = [render(tokenizer, c) for c in cleaned]
    fresh = Deduplicator()
    survivors = [r for i, (r, s) in enumerate(zip(rendered, sigs)) if fresh.check(i, s) is None]
    config = DedupConfig()
    layout = lsh_bands(config.threshold, config.num_perm)

    def dedup_all():
        dd = Deduplicator()
        for i, s in enumerate(sigs):
            dd.check(i, s)

    counter = token_counter(tokenizer)

    def count_tokens(batch):
        for i in range(0, len(batch), 256):
            counter.counts(batch[i : i + 256])

    stages = [
        ("cleaning (ftfy, leaks, whitespace)", len(convs), lambda: [clean_conversation(c, no_language) for c in convs]),
        ("language ID (words, marker words, py3langid)", len(answers),
         lambda: [answers_look_italian(c, a)[0] or identify(a) for c, a in zip(cleaned, answers)]),
        ("dedup: normalise text (words from the language ID)", len(cleaned),
         lambda: [normalized_text_and_words(c, w) for c, w in zip(cleaned, found)]),
        ("dedup: word 3-gram hashes (256 rows at a time)", len(words),
         lambda: [word_shingle_hash_sets(words[i : i + 256]) for i in range(0, len(words), 256)]),
        ("dedup: MinHash + LSH band keys (numpy, 256 rows at a time)", len(shingles),
         lambda: [band_keys(minhashes(shingles[i : i + 256], config.num_perm), *layout) for i in range(0, len(shingles), 256)]),
        ("dedup: LSH lookup/insert + exact Jaccard", len(sigs), dedup_all),
        ("template rendering (256 rows at a time)", len(cleaned),
         lambda: [render_many(tokenizer, cleaned[i : i + 256]) for i in range(0, len(cleaned), 256)]),
        (f"token counts ({counter.backend}, kept rows)", len(survivors), lambda: count_tokens(survivors)),
    ]
    out = []
    for name, rows, func in stages:
        seconds = _cpu_seconds(func, repeats)
        out.append({"stage": name, "rows": rows, "cpu_s": round(seconds, 3),
                    "us_per_input_row": round(seconds / len(convs) * 1e6, 1)})
    total = sum(s["cpu_s"] for s in out)
    for s in out:
        s["share"] = round(s["cpu_s"] / total, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    parser.add_argument("--stage-rows", type=int, default=5000, help="rows of the per-stage breakdown (0 = skip it)")
    parser.add_argument("--result-name", default="data", help="bench/results/NAME.json (default data)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    load_before = load_now()
    tokenizer = load_tokenizer("embedded")
    from hf_ita_plugin.data.token_count import token_counter

    counter = token_counter(tokenizer)
    time_pipeline(synthetic_rows(500, seed=99), args.workers)  # warm-up: language model, tokenizer, imports
    rows_table = []
    for size in sizes:
        convs = synthetic_rows(size)
        times = {name: [] for name in VARIANTS}
        loads, report, kept = [], None, None
        for _ in range(args.repeats):  # all variants alternate: each sees the same load
            seconds, report, kept = time_pipeline(convs, args.workers)
            times["pipeline"].append(seconds)
            times["pipeline, 1 process"].append(time_pipeline(convs, 1)[0])
            times["pipeline, 1 process, tokenizers"].append(time_pipeline(convs, 1, fast_counter=False)[0])
            times["baseline"].append(time_baseline(kept, tokenizer, counter))
            times["baseline, tokenizers"].append(time_baseline(kept, tokenizer))
            loads.append(round(os.getloadavg()[0], 2))
        med = {name: statistics.median(runs) for name, runs in times.items()}
        rows_table.append({
            "rows": size, "kept": report["kept"], "token_counter": report["stats"].get("token_counter"),
            "median_s": {k: round(v, 3) for k, v in med.items()},
            "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "rows_per_s": round(size / med["pipeline"], 1),
            "pipeline_s": round(med["pipeline"], 3),
            "pipeline_over_baseline": round(med["pipeline"] / med["baseline"], 2),
            "split": {
                "pool_gain": round(med["pipeline, 1 process"] / med["pipeline"], 2),
                "tiktoken_gain_in_pipeline": round(med["pipeline, 1 process, tokenizers"] / med["pipeline, 1 process"], 2),
                "tiktoken_gain_in_baseline": round(med["baseline, tokenizers"] / med["baseline"], 2),
                "stages_cost_over_baseline_1_process": round(med["pipeline, 1 process"] / med["baseline"], 2),
            },
            "load_average_1m": loads, "dropped_by_reason": report["dropped_by_reason"],
        })
    stages = stage_breakdown(synthetic_rows(args.stage_rows), tokenizer, args.repeats) if args.stage_rows else []
    first, last = rows_table[0], rows_table[-1]
    time_ratio = last["pipeline_s"] / first["pipeline_s"]
    row_ratio = last["rows"] / first["rows"]
    result = {
        "bench": "data_prepare",
        "sizes": sizes,
        "repeats": args.repeats,
        "workers": args.workers or os.cpu_count(),
        "rows_per_s_largest": last["rows_per_s"],
        "pipeline_over_baseline_largest": last["pipeline_over_baseline"],
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "meets_target": last["rows_per_s"] >= TARGET_ROWS_PER_S,
        "scaling_time_ratio": round(time_ratio, 2),
        "scaling_row_ratio": row_ratio,
        "scaling_exponent": round(math.log(time_ratio) / math.log(row_ratio), 3) if row_ratio > 1 else None,
        "per_size": rows_table,
        "stage_rows": args.stage_rows,
        "stages": stages,
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
    }
    path = save_result(args.result_name, result, load_before=load_before)
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_size", "stages")}))
    print()
    print(f"{'rows':>8} {'kept':>7} " + " ".join(f"{name[:24]:>24}" for name in VARIANTS))
    for r in rows_table:
        print(f"{r['rows']:>8} {r['kept']:>7} " + " ".join(f"{r['median_s'][name]:>23.2f}s" for name in VARIANTS))
    for r in rows_table:
        sp = r["split"]
        print(f"{r['rows']} rows: {r['rows_per_s']:.0f} rows/s; pipeline / baseline (same kept rows, same counter) "
              f"{r['pipeline_over_baseline']}x; pool {sp['pool_gain']}x, tiktoken {sp['tiktoken_gain_in_pipeline']}x "
              f"(baseline {sp['tiktoken_gain_in_baseline']}x), stages in 1 process {sp['stages_cost_over_baseline_1_process']}x the baseline")
    print(f"\nscaling {first['rows']} -> {last['rows']} rows: time ×{time_ratio:.2f} for rows ×{row_ratio:.0f} "
          f"(exponent {result['scaling_exponent']}, 1.0 = linear); target {TARGET_ROWS_PER_S} rows/s: "
          f"{'met' if result['meets_target'] else 'NOT met'} ({last['rows_per_s']:.0f} rows/s)")
    if stages:
        print(f"\nper stage, each run alone on {args.stage_rows} rows (CPU, median of {args.repeats}):")
        print(f"{'stage':<40} {'rows':>6} {'CPU s':>7} {'µs/row':>8} {'share':>6}")
        for s in stages:
            print(f"{s['stage']:<40} {s['rows']:>6} {s['cpu_s']:>7.2f} {s['us_per_input_row']:>8.0f} {s['share']:>6.1%}")
        total_us, cores = sum(s["us_per_input_row"] for s in stages), os.cpu_count() or 1
        print(f"{'total':<40} {'':>6} {'':>7} {total_us:>8.0f}   -> at most {cores * 1e6 / total_us:.0f} rows/s on {cores} idle cores")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
