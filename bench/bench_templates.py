"""Benchmark of the chat-template masks (issue 3). Not a test: prints a JSON line and a table.

Conversations per second of :func:`hf_ita_plugin.templates.tokenize_conversation` on the embedded
SmolLM2 tokenizer, against a baseline in the same run: transformers'
``apply_chat_template(..., return_assistant_tokens_mask=True)`` on the same marked ChatML template
(the job done by transformers alone, without hf-ita's checks). Variants:

- ``markers``: registry ``chatml`` (``{% generation %}`` spans + offsets);
- ``prefix-diff``: SmolLM2's own template without markers (masks from rendered prefixes);
- ``recipe-row``: what the recipe does per row (system prompt + validation + markers masks).

Each variant runs ``--repeats`` times over the same conversations, alternating order; medians are
compared as ratios to the baseline. Results go to ``bench/results/templates.json``.

Usage::

    python bench/bench_templates.py [--conversations 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

_QUESTIONS = ["Qual è la capitale d'Italia?", "Perché il cielo è azzurro? 🌤️", "Scrivi una funzione che inverta una lista.",
              "Come si prepara il ragù alla bolognese?", "Chi ha scritto 'I promessi sposi'?", "Cos'è l'IVA?"]
_ANSWERS = ["La capitale d'Italia è Roma, città ricca di storia e di monumenti.",
            "Per la diffusione di Rayleigh: la luce blu viene diffusa più di quella rossa.",
            "Ecco:\n```python\ndef inverti(lista):\n    return lista[::-1]\n```",
            "Si soffrigge il battuto, si aggiunge la carne e si cuoce a lungo con il pomodoro.",
            "Alessandro Manzoni, nel 1827 (edizione definitiva nel 1840-1842).",
            "È l'imposta sul valore aggiunto, applicata a quasi tutti i beni e servizi."]


def make_conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    convs = []
    for _ in range(n):
        conv = [{"role": "system", "content": "Rispondi in italiano."}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 4)):
            conv.append({"role": "user", "content": rng.choice(_QUESTIONS)})
            conv.append({"role": "assistant", "content": rng.choice(_ANSWERS)})
        convs.append(conv)
    return convs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from tqdm import tqdm
    from transformers import AutoTokenizer

    from hf_ita_plugin.models.embedded import ensure_embedded_model
    from hf_ita_plugin.templates import apply_template, tokenize_conversation, validate_messages, with_system_prompt

    model_dir = ensure_embedded_model()
    marked = apply_template(AutoTokenizer.from_pretrained(model_dir), "chatml")
    own = apply_template(AutoTokenizer.from_pretrained(model_dir), None)
    convs = make_conversations(args.conversations)
    with_system = [with_system_prompt(c, "Rispondi in italiano.") for c in convs]  # own template == chatml then

    def baseline():
        for c in with_system:
            marked.apply_chat_template(c, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)

    def markers():
        for c in with_system:
            tokenize_conversation(marked, c)

    def prefix_diff():
        for c in with_system:
            tokenize_conversation(own, c)

    def recipe_row():
        for c in convs:
            msgs = validate_messages(with_system_prompt(c, "default"), for_training=True)
            tokenize_conversation(marked, msgs, max_length=1024)

    # Same ids and masks as transformers' own mask on these conversations (sanity check, not timed).
    for c in with_system[:50]:
        ref = marked.apply_chat_template(c, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ours = tokenize_conversation(marked, c)
        assert ours["input_ids"] == list(ref["input_ids"]) and ours["assistant_masks"] == list(ref["assistant_masks"])
        assert tokenize_conversation(own, c) == ours

    variants = {"baseline (transformers)": baseline, "markers": markers, "prefix-diff": prefix_diff,
                "recipe-row": recipe_row}
    for fn in variants.values():  # warm-up (template compilation caches)
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for rep in tqdm(range(args.repeats), desc="bench templates", unit="round"):
        for name in (order if rep % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["baseline (transformers)"])
    rows = []
    for name, values in times.items():
        med = statistics.median(values)
        rows.append({"variant": name, "median_s": round(med, 4), "conversations_per_s": round(len(convs) / med, 1),
                     "ratio_vs_baseline": round(med / base, 3)})
    result = {"bench": "templates_masks", "conversations": len(convs), "repeats": args.repeats, "results": rows}
    print(json.dumps(result, ensure_ascii=False))
    print(f"\n{'variant':<26}{'median s':>10}{'conv/s':>10}{'x baseline':>12}")
    for row in rows:
        print(f"{row['variant']:<26}{row['median_s']:>10.3f}{row['conversations_per_s']:>10.1f}{row['ratio_vs_baseline']:>12.2f}")
    save_result("templates", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
