"""GPU benchmark of the ItalianSFT recipe (issue 15): QLoRA on a 7B-shaped model against plain TRL.

A model with Mistral-7B's shapes (hidden 4096, intermediate 14336, 32 layers, 32 heads, 8 KV heads,
vocab 32768) is built from its config with random weights and saved once as a sharded bf16
checkpoint in a temporary directory (nothing is downloaded); every variant loads it in 4-bit NF4
with the recipe's ``BitsAndBytesConfig`` and trains a LoRA on all linear layers on the same
synthetic data (random token ids, the first part of each sequence a prompt masked out of the loss,
the rest an answer), fed in the same order.

Variants, each in a fresh process, at 2k and 8k tokens per sequence:

* ``recipe`` / ``recipe-padded``: :class:`~hf_ita_plugin.training.recipe.ItalianSFT`'s model loading
  and trainer, padding-free batches (the recipe's per-sequence SDPA,
  :mod:`hf_ita_plugin.training.patches.varlen_sdpa`) or padded ones;
* ``trl`` / ``trl-padding-free``: a plain TRL ``SFTTrainer`` + peft as a user writes it (SDPA;
  padded, or TRL's ``padding_free=True``).

Per variant: trained (non-pad) tokens per second and median step time over the steps after the
warm-up, and peak GPU memory (``torch.cuda.max_memory_allocated``). Output: one JSON line, a table,
and ``bench/results/gpu.json`` (:func:`common.save_result`). FlashAttention is not used.

Usage::

    python bench/bench_gpu.py --steps 6           # one H100/H200, about 10 minutes
    python bench/bench_gpu.py --toy               # tiny llama on CPU, seconds (what the test runs)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

VARIANTS = {
    "recipe": "ItalianSFT: padding-free batches, per-sequence SDPA",
    "recipe-padded": "ItalianSFT's loading and trainer, padded batches",
    "trl": "plain TRL SFTTrainer + peft, padded batches, SDPA",
    "trl-padding-free": "plain TRL SFTTrainer + peft, padding_free=True, SDPA (one block-diagonal mask)",
}
PADDED = {"recipe-padded", "trl"}

MISTRAL_7B_SHAPES = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=32768, max_position_embeddings=32768)
TOY_SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=512, max_position_embeddings=1024)
SPECIAL = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}

# Rough H100/H200 figures for the printed plan (not measurements): per-process start + 4-bit load,
# and 7B QLoRA throughput with gradient checkpointing.
_EST_LOAD_S, _EST_TOKENS_PER_S, _EST_CHECKPOINT_S = 45.0, 3000.0, 90.0


# ---------------------------------------------------------------------- the model and the data
def make_checkpoint(directory: Path, toy: bool) -> None:
    """A randomly initialised model (Mistral-7B shapes, or a tiny llama) + a minimal tokenizer in ``directory``."""
    import torch
    from tokenizers import Tokenizer, models
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, PreTrainedTokenizerFast

    torch.manual_seed(0)
    if toy:
        config = LlamaConfig(**TOY_SHAPES, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    else:
        config = MistralConfig(**MISTRAL_7B_SHAPES, rope_theta=1e6, sliding_window=None, bos_token_id=1,
                               eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(directory, max_shard_size="2GB")
    vocab = {**SPECIAL, **{f"t{i}": i for i in range(len(SPECIAL), config.vocab_size)}}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(directory)


def synthetic_rows(n: int, seq: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """``n`` sequences of ``seq/4..seq`` tokens: a prompt (mask 0, ~30%) then an answer (mask 1) ending in EOS."""
    rng = random.Random(seed * 1_000_003 + seq)
    rows = []
    for _ in range(n):
        length = rng.randint(max(8, seq // 4), seq)
        prompt = max(1, int(length * 0.3))
        ids = [1] + [rng.randrange(len(SPECIAL), vocab) for _ in range(length - 2)] + [2]
        rows.append({"input_ids": ids, "assistant_masks": [0] * prompt + [1] * (length - prompt)})
    return rows


# ---------------------------------------------------------------------- one variant
class StepTimer:
    """Wall time of every optimizer step (the GPU synchronised at both ends)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._sync()
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer._sync()
                timer.seconds.append(time.perf_counter() - timer._start)

        self.seconds: list[float] = []
        self._start = 0.0
        self.callback = _Callback()

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def bench_config(checkpoint: Path, variant: str, seq: int, batch: int, steps: int, out_dir: Path, toy: bool):
    """The recipe's config for one run (the mistral-7b preset, pointed at the random checkpoint)."""
    from hf_ita_plugin.config import RunConfig

    return RunConfig.from_preset("mistral-7b", [
        f"model.name_or_path={checkpoint}", "model.template=null",
        *(["quantization.compute_dtype=float32"] if toy else []),
        f"training.output_dir={out_dir}", f"training.max_steps={steps}", f"training.max_seq_length={seq}",
        f"training.per_device_batch_size={batch}", "training.gradient_accumulation_steps=1",
        f"training.batching={'padded' if variant in PADDED else 'padding_free'}", "training.warmup_ratio=0.0",
        "training.logging_steps=1", "training.save_steps=100000", "data.eval=null",
    ])


def plain_trl_trainer(cfg, checkpoint: Path, rows, out_dir: Path, padding_free: bool, callback):
    """The baseline as a user writes it: 4-bit load, prepare_model_for_kbit_training, LoRA, SFTTrainer."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from hf_ita_plugin.models.loader import resolve_compute_dtype

    q, t, lora = cfg.quantization, cfg.training, cfg.lora
    dtype = resolve_compute_dtype(q.compute_dtype)
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint, dtype=dtype, attn_implementation="sdpa",
        device_map={"": 0} if torch.cuda.is_available() else {"": "cpu"},
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.mode,
                                               bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=dtype))
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                             target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    # TRL refuses max_length with padding_free unless packing; the rows are already within max_seq_length
    args = SFTConfig(output_dir=str(out_dir), max_length=None if padding_free else t.max_seq_length, per_device_train_batch_size=t.per_device_batch_size,
                     learning_rate=t.learning_rate, max_steps=t.max_steps, lr_scheduler_type=t.lr_scheduler,
                     logging_steps=1, save_strategy="no", seed=t.seed, data_seed=t.seed, report_to="none",
                     bf16=dtype == torch.bfloat16, activation_checkpointing=False, padding_free=padding_free,
                     train_sampling_strategy="sequential")
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                      processing_class=AutoTokenizer.from_pretrained(checkpoint), callbacks=[callback])


def measure_variant(checkpoint: Path, variant: str, seq: int, batch: int, steps: int, warmup: int, toy: bool) -> dict:
    """Train ``steps`` steps of one variant in this process; throughput after ``warmup`` steps, peak memory."""
    import torch
    from transformers import AutoTokenizer

    from hf_ita_plugin.training.patches import training_patches
    from hf_ita_plugin.training.recipe import ItalianSFT, PreparedData

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    vocab = (TOY_SHAPES if toy else MISTRAL_7B_SHAPES)["vocab_size"]
    rows = synthetic_rows(steps * batch, seq, vocab)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_config(checkpoint, variant, seq, batch, steps, Path(tmp) / "out", toy)
        started = time.perf_counter()
        if variant.startswith("recipe"):
            recipe = ItalianSFT(cfg, callbacks=[timer.callback])
            model = recipe.load_model()
            # one curriculum-like phase: the recipe's trainer feeds rows in order, as the baseline does
            data = PreparedData(train=rows, eval=[], dropped_truncated=0, train_tokens=0, phases=[("bench", len(rows))])
            trainer = recipe._build_trainer(model, AutoTokenizer.from_pretrained(checkpoint), data, Path(tmp) / "ckpt")
        else:
            trainer = plain_trl_trainer(cfg, checkpoint, rows, Path(tmp) / "ckpt", variant == "trl-padding-free",
                                        timer.callback)
        load_s = time.perf_counter() - started
        with training_patches() if variant.startswith("recipe") else contextlib.nullcontext():
            out = trainer.train()
    step_tokens = [sum(len(r["input_ids"]) for r in rows[i * batch:(i + 1) * batch]) for i in range(steps)]
    measured = timer.seconds[warmup:]
    tokens = sum(step_tokens[warmup:len(timer.seconds)])
    return {
        "variant": variant, "seq": seq, "batch": batch, "steps": len(timer.seconds), "warmup_steps": warmup,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "trained_tokens_measured": tokens,
        "tokens_per_s": round(tokens / sum(measured), 2) if measured else None,
        "median_step_s": round(statistics.median(measured), 4) if measured else None,
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "load_s": round(load_s, 2), "mean_loss": round(out.training_loss, 5),
    }


# ---------------------------------------------------------------------- the whole run
def batch_for(seq: int, tokens_per_step: int) -> int:
    """Sequences per step: ``tokens_per_step`` worth of full-length sequences, at least 2 (so padding matters)."""
    return max(2, tokens_per_step // seq)


def plan(seqs: list[int], tokens_per_step: int, steps: int, toy: bool) -> dict:
    runs = len(seqs) * len(VARIANTS)
    step_tokens = [0.62 * seq * batch_for(seq, tokens_per_step) for seq in seqs]  # mean length 5/8 of seq
    est = None if toy else round(_EST_CHECKPOINT_S + len(VARIANTS) * sum(
        _EST_LOAD_S + steps * tok / _EST_TOKENS_PER_S for tok in step_tokens))
    return {"runs": runs, "fresh_processes": runs + 1, "steps_per_run": steps, "estimated_s": est}


def run_all(args) -> dict:
    seqs = [int(s) for s in args.seqs.split(",")]
    p = plan(seqs, args.tokens_per_step, args.steps, args.toy)
    print(f"[gpu] plan: {p['runs']} runs ({len(VARIANTS)} variants x seq {args.seqs}), {args.steps} steps each "
          f"({args.warmup} warm-up), + one process writing the random checkpoint; "
          + (f"estimated ~{p['estimated_s'] / 60:.1f} min on one H100/H200; " if p["estimated_s"] else "")
          + f"hard budget {args.budget_s} s (runs that would start after it are skipped)", file=sys.stderr)
    deadline = time.monotonic() + args.budget_s
    work = Path(tempfile.mkdtemp(prefix="hf-ita-bench-gpu-", dir=args.workdir))
    runs: list[dict] = []
    try:
        checkpoint = work / "model"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make-checkpoint", str(checkpoint), *(["--toy"] if args.toy else [])],
                       check=True, timeout=max(1, deadline - time.monotonic()))
        checkpoint_s = round(time.perf_counter() - started, 1)
        print(f"[gpu] random checkpoint written in {checkpoint_s} s", file=sys.stderr)
        for seq, variant in run_order(seqs):
            left = deadline - time.monotonic()
            if left < 5:
                runs.append({"variant": variant, "seq": seq, "skipped": "budget"})
                continue
            runs.append(_run_one(args, checkpoint, variant, seq, left))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    devices = sorted({r["device"] for r in runs if "device" in r})
    return {"shapes": "toy llama" if args.toy else "Mistral-7B (random weights)", "devices": devices,
            "model_shapes": TOY_SHAPES if args.toy else MISTRAL_7B_SHAPES, "quantization": "nf4 + double quant",
            "steps": args.steps, "warmup_steps": args.warmup, "tokens_per_step": args.tokens_per_step,
            "variants": VARIANTS, "checkpoint_s": checkpoint_s, "plan": p, "runs": runs,
            "summary": summarize(runs, seqs)}


def run_order(seqs: list[int]) -> list[tuple[int, str]]:
    """The headline pair (recipe vs plain TRL, both at their defaults) at every length first, so a run cut
    short by the budget still has it; then the padded recipe and TRL's padding-free. Order alternates."""
    order = []
    for pair in (("recipe", "trl"), ("recipe-padded", "trl-padding-free")):
        for seq in seqs:
            order += [(seq, v) for v in (pair if len(order) % 4 == 0 else pair[::-1])]
    return order


def _run_one(args, checkpoint: Path, variant: str, seq: int, left: float) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--checkpoint", str(checkpoint), "--seq", str(seq),
           "--batch", str(batch_for(seq, args.tokens_per_step)), "--steps", str(args.steps),
           "--warmup", str(args.warmup), *(["--toy"] if args.toy else [])]
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        return {"variant": variant, "seq": seq, "skipped": "budget (killed)"}
    if done.returncode:
        # e.g. out of GPU memory: recorded, the other variants still run
        print(f"[gpu] seq {seq:>5} {variant:17s} FAILED (exit {done.returncode}, traceback above)", file=sys.stderr)
        return {"variant": variant, "seq": seq, "failed": f"exit {done.returncode}"}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"[gpu] seq {seq:>5} {variant:17s} {row['tokens_per_s']} tok/s, median step {row['median_step_s']} s, "
          f"peak {row['peak_gpu_memory_mb']} MB", file=sys.stderr)
    return row


def summarize(runs: list[dict], seqs: list[int]) -> dict:
    """Per sequence length: each variant's figures and the recipe's speed-up over plain TRL."""
    out = {}
    for seq in seqs:
        by = {r["variant"]: r for r in runs if r["seq"] == seq and r.get("tokens_per_s")}
        entry = {v: {k: by[v][k] for k in ("tokens_per_s", "median_step_s", "peak_gpu_memory_mb")} for v in by}
        for base in ("trl", "trl-padding-free"):
            if "recipe" in by and base in by:
                entry[f"speedup_recipe_vs_{base}"] = round(by["recipe"]["tokens_per_s"] / by[base]["tokens_per_s"], 3)
        if "recipe" in by and "recipe-padded" in by:
            entry["speedup_padding_free_only"] = round(by["recipe"]["tokens_per_s"] / by["recipe-padded"]["tokens_per_s"], 3)
        out[str(seq)] = entry
    return out


def print_table(report: dict) -> None:
    header = f"{'seq':>5}  {'variant':17s}  {'tok/s':>10}  {'median step s':>13}  {'peak GPU MB':>11}"
    print(header)
    print("-" * len(header))
    for r in report["runs"]:
        if "tokens_per_s" in r:
            print(f"{r['seq']:>5}  {r['variant']:17s}  {r['tokens_per_s']:>10}  {r['median_step_s']:>13}  "
                  f"{str(r['peak_gpu_memory_mb']):>11}")
        else:
            print(f"{r['seq']:>5}  {r['variant']:17s}  {r.get('skipped') or r.get('failed')}")
    for seq, entry in report["summary"].items():
        speedups = ", ".join(f"{k.replace('speedup_', '')} {v}x" for k, v in entry.items() if k.startswith("speedup"))
        if speedups:
            print(f"seq {seq}: {speedups}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny llama on CPU, short sequences (for the test)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (default 6)")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the figures (default 2)")
    parser.add_argument("--seqs", help="tokens per sequence, comma-separated (default 2048,8192; toy 64,128)")
    parser.add_argument("--tokens-per-step", type=int, help="sequences per step = this / seq, at least 2 "
                                                             "(default 8192; toy 256)")
    parser.add_argument("--budget-s", type=int, default=570, help="stop starting runs after this many seconds")
    parser.add_argument("--workdir", help="where the random checkpoint is written (default: the temp dir; 15 GB)")
    parser.add_argument("--results-dir", help="write the result here instead of bench/results")
    parser.add_argument("--make-checkpoint", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.seqs = args.seqs or ("64,128" if args.toy else "2048,8192")
    args.tokens_per_step = args.tokens_per_step or (256 if args.toy else 8192)
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")
    if args.make_checkpoint:
        make_checkpoint(Path(args.make_checkpoint), args.toy)
        return 0
    if args.variant:
        print(json.dumps(measure_variant(Path(args.checkpoint), args.variant, args.seq, args.batch, args.steps,
                                         args.warmup, args.toy)))
        return 0
    load_before = common.load_now()
    report = {"bench": "gpu", **run_all(args)}
    common.publish("gpu-toy" if args.toy else "gpu", report, print_table, load_before=load_before,
                   results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
