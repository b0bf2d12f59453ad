"""Trainer assembly: the recipe's config turned into TRL's ``SFTConfig`` + ``SFTTrainer``.

Rows arrive tokenized, with assistant-only masks (``assistant_masks``), so TRL neither renders nor
masks anything. Batching follows ``training.batching`` (padding-free, BFD packing or padded).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..config import RunConfig
from ..models.loader import resolve_compute_dtype
from ..utils import atomic
from . import distributed


class SkipFinalEval(TrainerCallback):
    """Drops transformers' automatic eval after the last step.

    The recipe scores the same held-out conversations right after training (response loss,
    ``eval.after``), so the trainer's extra pass only doubled the time (~3 min on 2 cores).
    Periodic evals every ``training.eval_steps`` still run.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps and state.global_step % args.eval_steps:
            control.should_evaluate = False
        return control


class AtomicCheckpoints:
    """Trainer mixin: ``checkpoint-N`` appears in the output folder only once it is complete.

    transformers writes a checkpoint file by file into ``OUTPUT/checkpoint-N``; a crash (``kill -9``,
    out of memory, a preempted machine) in the middle left a folder that ``--resume`` chose and could
    not load. Here each checkpoint is written into a temporary folder beside it
    (``.checkpoint-N.hf-ita-PID-….tmp``, cleared by the next run once this process is gone) and
    renamed into place when the trainer has written its last file; old checkpoints are then rotated.
    In a multi-process run the main process makes the folder and renames it; the others write their
    own parts of the checkpoint (their RNG state, FSDP shards) into the same folder.
    """

    _hf_ita_staging: Path | None = None

    def _get_output_dir(self, trial):
        if self._hf_ita_staging is not None:
            return str(self._hf_ita_staging)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        final = Path(super()._get_output_dir(trial))
        if self.args.should_save:
            final.mkdir(parents=True, exist_ok=True)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        with _shared_staging(final, name, self.args.should_save) as staging:
            self._hf_ita_staging = staging
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self._hf_ita_staging = None
            distributed.barrier()  # every process has written its part
            if self.args.should_save:
                atomic.normal_permissions(staging / name)
                target = final / name
                if target.exists():  # the same step saved again (a resumed run)
                    shutil.rmtree(target)
                os.replace(staging / name, target)
        if self.args.should_save:
            rotate_checkpoints(output_dir=str(final), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)


@contextlib.contextmanager
def _shared_staging(final: Path, name: str, main: bool):
    """The main process's temporary checkpoint folder, its path told to every process."""
    if not main:
        yield Path(distributed.broadcast(None))
        return
    with atomic.temp_directory(final, name) as staging:
        distributed.broadcast(str(staging))
        yield staging


@functools.cache
def _trainer_class():
    from trl import SFTTrainer

    return type("HfItaSFTTrainer", (AtomicCheckpoints, SFTTrainer), {"__doc__": "SFTTrainer with atomic checkpoints."})


def keep_adapter_in_compute_dtype(model, compute_dtype) -> int:
    """Cast trainable parameters back to ``compute_dtype`` (no-op for bfloat16); returns how many.

    SFTTrainer casts the LoRA weights of a 4-bit model to bfloat16. Without native bf16
    (AVX512-BF16/AMX) a bf16 matmul runs ~60x slower than fp32 on a CPU, so the small LoRA
    matmuls took longer than the model's own layers.
    """
    import torch

    if compute_dtype == torch.bfloat16:
        return 0
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != compute_dtype:
            param.data = param.data.to(compute_dtype)
            cast += 1
    return cast


def resolve_batching(name: str) -> str:
    """``auto`` -> ``padded`` without a GPU, ``padding_free`` on one; other values as given.

    On CPUs padding-free batches (per-sequence attention) did not win: 0.974x padded with native bf16
    (``bench/results/recipe-throughput.json``), 1.035x down the path of CPUs without it, inside the
    spread of its repeats (``bench/results/recipe-throughput-no-native-bf16.json``)."""
    if name != "auto":
        return name
    import torch

    return "padding_free" if torch.cuda.is_available() else "padded"


def build_trainer(config: RunConfig, model, tokenizer, train_rows: list[dict[str, Any]],
                  eval_rows: list[dict[str, Any]], ckpt_dir: Path, *, callbacks=None, sequential: bool = False):
    """An ``SFTTrainer`` for ``model`` on pre-tokenized rows; checkpoints go to ``ckpt_dir``, each one
    visible only once complete (:class:`AtomicCheckpoints`).

    ``sequential`` feeds the rows in their given order (a curriculum) instead of shuffling them.
    """
    from datasets import Dataset
    from trl import SFTConfig

    import torch

    t = config.training
    batching = resolve_batching(t.batching)
    compute_dtype = str(resolve_compute_dtype(config.quantization.compute_dtype, training=True))
    # transformers accepts bf16 on a CPU (native on AVX512-BF16/AMX) only when told it is a CPU run
    cpu_bf16 = compute_dtype.endswith("bfloat16") and not torch.cuda.is_available()
    has_eval = bool(eval_rows)
    multi = distributed.trainer_arguments(config)  # DDP or FSDP settings; empty for one process
    multi_cpu = multi.pop("use_cpu", False)
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        # sequences are already truncated by tokenize_conversation; packing uses it as block size
        max_length=None if batching == "padding_free" else t.max_seq_length,
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        lr_scheduler_type=t.lr_scheduler,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        report_to=t.report_to,
        activation_checkpointing=False,  # already set up on the model (prepare_model_for_kbit_training)
        bf16=compute_dtype.endswith("bfloat16"),
        use_cpu=cpu_bf16 or multi_cpu,
        fp16=compute_dtype.endswith("float16") and not compute_dtype.endswith("bfloat16"),
        padding_free=batching == "padding_free",
        packing=batching == "packed",
        packing_strategy="bfd",
        assistant_only_loss=False,  # masks come pre-computed in `assistant_masks`
        dataset_num_proc=None,
        remove_unused_columns=True,
        dataloader_num_workers=0,
        save_only_model=False,
        disable_tqdm=False,
        include_num_input_tokens_seen="no",
        # curriculum: the rows are already in phase order, feed them as they are
        train_sampling_strategy="sequential" if sequential else "random",
        **multi,
    )
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(eval_rows) if has_eval else None
    callbacks = list(callbacks or [])
    if has_eval and config.evaluation.before_after and config.evaluation.response_loss:
        callbacks.append(SkipFinalEval())
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, callbacks=callbacks or None)
    keep_adapter_in_compute_dtype(trainer.model, resolve_compute_dtype(config.quantization.compute_dtype, training=True))
    return trainer
