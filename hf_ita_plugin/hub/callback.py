"""A ``transformers.TrainerCallback`` that writes the model card when any Trainer run ends.

Works with ``Trainer``, TRL's ``SFTTrainer`` and the hf-ita recipe alike: the facts come from the
Trainer itself (training arguments, log history, the peft config of the model, the tokenizer's
chat template), so no hf-ita OUTPUT_DIR is needed.

Example::

    trainer = SFTTrainer(..., callbacks=[ModelCardCallback(base_model="Qwen/Qwen2.5-7B-Instruct")])
    trainer.train()          # -> <output_dir>/README.md
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .card import render_card
from .facts import CardFacts, render_chat_example
from .licenses import KNOWN_MODEL_LICENSES, decide_license
from .paths import public_model_id


def facts_from_trainer(args, state, model, tokenizer, *, base_model: str | None = None, repo_id: str | None = None,
                       datasets: list[str] | None = None, dataset_licenses: dict[str, str] | None = None) -> CardFacts:
    """Card facts of a live Trainer run (``args``: TrainingArguments, ``state``: TrainerState)."""
    peft_config = None
    configs = getattr(model, "peft_config", None)
    if isinstance(configs, dict) and configs:
        peft_config = next(iter(configs.values()))
    name_or_path = getattr(peft_config, "base_model_name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    base = public_model_id(base_model, name_or_path) or "unknown"
    quant_config = getattr(getattr(model, "config", None), "quantization_config", None)
    quantized = bool(quant_config) and (getattr(quant_config, "load_in_4bit", False)
                                        or (isinstance(quant_config, dict) and quant_config.get("load_in_4bit")))
    hyper: dict[str, Any] = {}
    if peft_config is not None:
        for key in ("r", "lora_alpha", "lora_dropout", "target_modules"):
            value = getattr(peft_config, key, None)
            if value is not None:
                hyper[key if key.startswith("lora_") or key == "target_modules" else f"lora_{key}"] = \
                    sorted(value) if isinstance(value, (set, list)) else value
    for key in ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
                "max_steps", "warmup_ratio", "lr_scheduler_type", "weight_decay", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            hyper[key] = getattr(value, "value", value)
    history = list(getattr(state, "log_history", []) or [])
    losses = [h for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    summary = next((h for h in reversed(history) if "train_runtime" in h), {})
    eval_before, eval_after, eval_data = {}, {}, {}
    if evals:
        eval_after["eval_loss"] = evals[-1]["eval_loss"]
        if len(evals) > 1:
            eval_before["eval_loss"] = evals[0]["eval_loss"]
        eval_data["eval_loss"] = f"eval_dataset (step {evals[0].get('step')} -> {evals[-1].get('step')})"
    licenses = dict(dataset_licenses or {})
    facts = CardFacts(
        base_model=base,
        repo_id=repo_id,
        method="QLoRA" if quantized else ("LoRA" if peft_config is not None else "full fine-tuning"),
        quantization="nf4" if quantized else "none",
        chat_template=getattr(tokenizer, "chat_template", None) if tokenizer is not None else None,
        chat_example=render_chat_example(tokenizer),
        datasets=list(datasets or []),
        data={"train_source": ", ".join(datasets) if datasets else None},
        hyperparameters=hyper,
        training={"steps": getattr(state, "global_step", None), "epochs": getattr(state, "epoch", None),
                  "final_loss": losses[-1]["loss"] if losses else None,
                  "train_runtime_s": summary.get("train_runtime"), "wall_time_s": None, "tokens_per_second": None,
                  "peak_memory_mb": None},
        eval_before=eval_before,
        eval_after=eval_after,
        eval_data=eval_data,
    )
    facts.license = decide_license(base, licenses, model_license=KNOWN_MODEL_LICENSES.get(base, "unknown"))
    return facts


class ModelCardCallback(TrainerCallback):
    """Write ``README.md`` (a model card) into ``card_dir`` (default: the Trainer's ``output_dir``) at train end."""

    def __init__(self, card_dir: str | os.PathLike | None = None, *, base_model: str | None = None,
                 repo_id: str | None = None, datasets: list[str] | None = None,
                 dataset_licenses: dict[str, str] | None = None):
        self.card_dir = Path(card_dir) if card_dir is not None else None
        self.base_model = base_model
        self.repo_id = repo_id
        self.datasets = datasets
        self.dataset_licenses = dataset_licenses
        self.card_path: Path | None = None

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not getattr(state, "is_world_process_zero", True):
            return
        from ..utils.atomic import write_text

        facts = facts_from_trainer(args, state, model, processing_class, base_model=self.base_model, repo_id=self.repo_id,
                                   datasets=self.datasets, dataset_licenses=self.dataset_licenses)
        kind = "adapter" if getattr(model, "peft_config", None) else "merged"
        card = render_card(facts, kind, merged_path="" if kind == "merged" else None)
        target = (self.card_dir or Path(args.output_dir)) / "README.md"
        self.card_path = write_text(target, str(card))
