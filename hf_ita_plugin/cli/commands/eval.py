"""``hf-ita eval``: bits per byte, response loss, Italian-rate and lm-eval tasks; base vs fine-tune."""

from __future__ import annotations

import argparse

from ..options import add_json, add_output_file, add_quiet


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "eval", help="evaluate a model or a training run (base vs fine-tune) / valuta un modello",
        description="Valuta un modello, o una cartella di addestramento (base contro fine-tune): bits per byte, "
                    "loss sulle risposte, percentuale di risposte in italiano, task di lm-evaluation-harness. "
                    "/ Evaluate a model, or a training OUTPUT_DIR (base vs fine-tune).")
    ev.add_argument("target", metavar="MODEL_OR_OUTPUT_DIR",
                    help="OUTPUT_DIR of hf-ita train, an adapter folder, a model folder or Hub id, or 'embedded'")
    ev.add_argument("--tasks", default="bpb,responses,italian-rate",
                    help="comma-separated: bpb, responses, italian-rate, lm-eval:TASK (arc_it, hellaswag_it, m_mmlu_it)")
    add_output_file(ev, "also write the results as JSON to this file")
    add_json(ev, "print the metrics as JSON instead of the table")
    ev.add_argument("--bpb-text", help="text file for bits per byte (default: the bundled Italian prose)")
    ev.add_argument("--bpb-max-chars", type=int, help="only the first N characters of the text")
    ev.add_argument("--prompts", type=int, default=16, help="Italian prompts answered for italian-rate (default 16)")
    ev.add_argument("--max-new-tokens", type=int, default=96)
    ev.add_argument("--sample", action="store_true", help="sampled instead of greedy answers")
    g = ev.add_argument_group("lm-evaluation-harness")
    g.add_argument("--lm-eval-python", help="Python interpreter of an environment with lm-eval (default: this one)")
    g.add_argument("--lm-eval-limit", type=float, help="examples per task (lm-eval --limit)")
    g.add_argument("--lm-eval-fewshot", type=int, help="few-shot examples (lm-eval --num_fewshot)")
    g.add_argument("--lm-eval-device", default="cpu", help="device for lm-eval (cpu, cuda...)")
    add_quiet(ev)
    ev.set_defaults(func=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    import json

    from ...evaluation.suite import run_eval

    lm_opts = {"python": args.lm_eval_python, "limit": args.lm_eval_limit, "num_fewshot": args.lm_eval_fewshot,
               "device": args.lm_eval_device}
    result = run_eval(args.target, args.tasks, out=args.output, lm_eval_options=lm_opts, progress=not args.quiet,
                      bpb_text=args.bpb_text, bpb_max_chars=args.bpb_max_chars, prompts=args.prompts,
                      max_new_tokens=args.max_new_tokens, do_sample=args.sample)
    if "table" in result and not args.json:
        print(result["table"], end="")
    else:
        print(json.dumps(result["metrics"], indent=2, ensure_ascii=False))
    return 0
