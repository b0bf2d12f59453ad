"""Write the README's "Measured figures" table from the committed results in ``bench/results/``.

Every row names the result file it comes from, the CPU it ran on and the load; a figure with no
result file does not appear. ``python bench/readme_table.py`` prints the table;
``--write`` replaces the block between the ``<!-- figures:start -->`` / ``<!-- figures:end -->``
markers in README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, read_results  # noqa: E402

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _pct(x) -> str:
    return f"{x:+.1%}" if isinstance(x, (int, float)) else "-"


def _quickstart_name(q: dict) -> str:
    """How the rows name a quickstart: by its command, and by its model when not the default one."""
    model = q.get("model", "smollm2-135m")
    name = "quickstart (`make demo`)" if model == "smollm2-135m" else f"{model} quickstart (`make demo-gemma`)"
    path = (q.get("cpu_path") or {}).get("name")
    return name if not path else f"{name.split(' (')[0]} down the {path} CPU path (fp32, padded, torch and oneDNN capped at AVX2)"


def recipe_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    t = r.get("throughput")
    if t:
        d = t.get("recipe_defaults", {})
        where = (f"down the {t['cpu_path']['name']} CPU path (torch and oneDNN capped at AVX2)" if t.get("cpu_path")
                 else "on this CPU")
        rows.append((f"QLoRA trained tokens/s, recipe defaults {where} ({d.get('compute_dtype', '?')}, "
                     f"{d.get('batching', '?')} batches) vs plain TRL `SFTTrainer` (SmolLM2-135M, batch 8 x <=256, "
                     f"{t['repeats']} fresh-process repeats x {t['steps']} steps, medians)",
                     f"{t['recipe_tokens_per_s']} vs {t['trl_tokens_per_s']} (**{t['speedup_vs_trl']}x**); mean loss "
                     f"{t['recipe_mean_loss']} vs {t['trl_mean_loss']}", ">= 1.5x, equal loss"))
        if "recipe-fp32-padding-free_tokens_per_s" in t:
            rows.append(("same, fp32 compute: padding-free vs padded batches",
                         f"{t['recipe-fp32-padding-free_tokens_per_s']} vs {t['recipe-padded_tokens_per_s']} tok/s "
                         f"(padding-free {t['speedup_padding_free_only']}x)", "-"))
        if "speedup_bf16_vs_fp32_compute" in t:
            rows.append(("same, bf16 vs fp32 compute, padding-free (CPU with native bf16)",
                         f"{t['recipe-bf16_tokens_per_s']} vs {t['recipe-fp32-padding-free_tokens_per_s']} tok/s "
                         f"({t['speedup_bf16_vs_fp32_compute']}x)", "-"))
    q = r.get("quickstart")
    if q:
        runs = q.get("runs", [q])
        changes = ", ".join(_pct(x["response_loss_change"]) for x in runs)
        walls = ", ".join(f"{x['wall_time_s']:.0f}" for x in runs)
        rows.append((f"{_quickstart_name(q)}: held-out response loss change, {len(runs)} fresh run{'s' if len(runs) != 1 else ''}",
                     f"**{changes}** ({runs[0]['response_loss_before']} -> {runs[0]['response_loss_after']}); "
                     f"prose bits/byte {', '.join(_pct(x['bpb_change']) for x in runs)}", "<= -10%; not worse"))
        rows.append((f"{_quickstart_name(q).split(' (')[0]} wall time, s (2 cores)", walls, "< 900"))
    return rows


def templates_rows(r: dict) -> list[tuple[str, str, str]]:
    by = {row["variant"]: row for row in r["results"]}
    base = by.pop("baseline (transformers)", None)
    return [(f"assistant masks: {name} vs transformers' `return_assistant_tokens_mask`",
             f"{row['conversations_per_s']} vs {base['conversations_per_s'] if base else '-'} conversations/s "
             f"({row['ratio_vs_baseline']}x the time)", "-") for name, row in by.items()]


def chat_rows(r: dict) -> list[tuple[str, str, str]]:
    engines = r["engines"]
    best = engines[r["best_llama_cpp"]]
    base = next(v for k, v in engines.items() if k.startswith("transformers"))
    return [(f"chat on CPU, SmolLM2: {r['best_llama_cpp']} vs transformers fp32",
             f"{best['tokens_per_s']:.1f} vs {base['tokens_per_s']:.1f} tokens/s (**{r['speedup_tokens_per_s']:.2f}x**), "
             f"first token {best['ttft_s']:.2f} s vs {base['ttft_s']:.2f} s", ">= 3x")]


def hub_rows(r: dict) -> list[tuple[str, str, str]]:
    m = r["median_s"]
    return [(f"Hub push vs `HfApi.upload_folder` (local Hub), {r['adapter_mb']} MB adapter",
             " vs ".join(f"{v:.2f} s" for v in m.values()) + f" ({', '.join(m)})", "-")]


def answer_rows(r: dict) -> list[tuple[str, str, str]]:
    q = r["quickstart"]
    aq = q.get("answer_quality") or {}
    before, after = aq.get("before", {}), aq.get("after", {})
    rows = []
    for suffix, label in (("", "with the Italian system prompt"), ("_no_system", "without a system prompt")):
        cells = []
        for key, name in (("italian_rate", "Italian answers"), ("dictionary_rate", "dictionary words"),
                          ("loop_rate", "answers in a loop"), ("echo_rate", "answers repeating the prompt")):
            k = key + suffix
            if k in before or k in after:
                cells.append(f"{name} {before.get(k, '-')} -> {after.get(k, '-')}")
        if cells:
            prompts = q.get("answer_prompts") or 8  # results before the field: the first 8 held-out prompts
            spread = ", one per category" if q.get("answer_prompts") else ", 5 of them code questions"
            rows.append((f"{_quickstart_name(q).split(' (')[0]} answers, {prompts} held-out prompts{spread}, greedy, {label} "
                         "(before -> after)",
                         "; ".join(cells), "-"))
    return rows


def data_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    for size in r["per_size"]:
        sp, med = size["split"], size["median_s"]
        rows.append((f"`hf-ita data prepare`, {size['rows']:,} synthetic rows ({size['kept']:,} kept), {r['workers']} workers, "
                     f"{r['repeats']} repeats (medians)",
                     f"{size['rows_per_s']:,.0f} rows/s; **{size['pipeline_over_baseline']}x** the time of template + "
                     f"token counts of the kept rows alone ({med['pipeline']} vs {med['baseline']} s, same counter)", ">= 5,000 rows/s"))
        rows.append((f"same, {size['rows']:,} rows: where the time goes",
                     f"worker pool {sp['pool_gain']}x faster than 1 process; tiktoken counting {sp['tiktoken_gain_in_pipeline']}x "
                     f"faster than the tokenizer (baseline alone {sp['tiktoken_gain_in_baseline']}x); cleaning + language ID + "
                     f"dedup make 1 process {sp['stages_cost_over_baseline_1_process']}x the baseline", "-"))
    return rows


def distributed_rows(r: dict) -> list[tuple[str, str, str]]:
    s = r["summary"]
    one, two = s["one_process"], s["two_processes"]
    return [(f"2 CPU processes (gloo) vs 1, same global batch {r['global_batch']} x {r['seq']} tokens, {r['steps']} steps, "
             f"{r['repeats']} alternating repeats (medians)",
             f"{two['tokens_per_s']} vs {one['tokens_per_s']} tokens/s ({s['ratio_tokens_per_s']}x); final loss "
             f"{two['final_loss']} vs {one['final_loss']}, largest per-step loss difference {s['max_step_loss_rel_diff']}",
             "same loss (about 1x expected on 2 cores)")]


def quickstart_rows(r: dict) -> list[tuple[str, str, str]]:
    return recipe_rows(r) + answer_rows(r)


EXTRACTORS = {"recipe": quickstart_rows, "recipe-throughput": recipe_rows, "recipe-quickstart": quickstart_rows,
              "templates": templates_rows, "data": data_rows, "distributed": distributed_rows, "chat": chat_rows, "hub_push": hub_rows}


def table() -> str:
    lines = ["| what | figure | target | source (CPU, load) |", "| --- | --- | --- | --- |"]
    for name, result in read_results().items():
        extract = EXTRACTORS.get(name) or (quickstart_rows if name.startswith("recipe-quickstart-") else
                                           recipe_rows if name.startswith("recipe-throughput-") else None)
        if extract is None:
            continue
        env = result.get("environment", {})
        machine = env.get("machine", {})
        flags = machine.get("cpu_flags", [])
        cpu = f"{machine.get('cpu_count', '?')} cores, " + ("AVX512-BF16/AMX" if "avx512_bf16" in flags else
                                                           "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "baseline x86-64")
        load = env.get("load_before")
        source = f"`bench/results/{name}.json` ({cpu}, load {load[0] if load else '?'}, {str(env.get('commit') or '?')[:8]})"
        for what, figure, target in extract(result):
            lines.append(f"| {what} | {figure} | {target} | {source} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the figures block in README.md")
    args = parser.parse_args()
    text = table()
    if not args.write:
        print(text)
        return 0
    readme = ROOT / "README.md"
    content = readme.read_text(encoding="utf-8")
    if START not in content or END not in content:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 1
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
