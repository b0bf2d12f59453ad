"""A hf-ita run config as an AutoTrain Advanced ``llm-sft`` YAML config (``autotrain --config FILE``).

The layout is the one ``autotrain.parser.AutoTrainConfigParser`` reads (AutoTrain 0.8.36): top-level
``task``, ``base_model``, ``project_name``, ``log``, ``backend``; ``data`` (``path``, splits,
``chat_template``, ``column_mapping``); ``params`` (fields of ``LLMTrainingParams``); ``hub``
(``username``/``token`` as ``${HF_USERNAME}``/``${HF_TOKEN}``, which AutoTrain reads from the
environment: a token is never written). The data is a Hub dataset repo with a ``messages`` column,
as ``hf-ita data prepare`` writes it. AutoTrain is never imported here.

What AutoTrain cannot express (assistant-only loss, padding-free batches, curriculum, the system
prompt added at training time...) is returned in :attr:`AutoTrainExport.unsupported`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import RunConfig
from ..errors import ConfigError, bilingual

AUTOTRAIN_VERSION = "0.8.36"
"""The AutoTrain Advanced release whose config format this bridge writes (and its test checks)."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".yaml", ".yml", ".txt")
# AutoTrain renders conversations itself with these; anything else uses the tokenizer's own template.
_AUTOTRAIN_TEMPLATES = ("chatml", "zephyr")
_MIXED_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": None, "auto": "bf16"}


@dataclass
class AutoTrainExport:
    """An AutoTrain config (``config``, the YAML mapping) and what it could not carry over."""

    config: dict[str, Any]
    unsupported: list[str] = field(default_factory=list)

    def to_yaml(self, source: str | None = None) -> str:
        """The YAML text, with a header naming the source config and how to run it."""
        header = [f"# AutoTrain Advanced {AUTOTRAIN_VERSION} llm-sft config, exported by hf-ita"
                  + (f" from {source}" if source else ""),
                  "# Run: autotrain --config THIS_FILE  (HF_USERNAME and HF_TOKEN read from the environment)"]
        header += [f"# not expressible in AutoTrain: {line}" for line in self.unsupported]
        body = yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True)
        return "\n".join(header) + "\n" + body


def autotrain_config(cfg: RunConfig, *, data_repo: str | None = None) -> AutoTrainExport:
    """The AutoTrain ``llm-sft`` config equivalent to ``cfg``.

    ``data_repo`` is the Hub dataset repo (``OWNER/NAME``, a ``messages`` column) AutoTrain trains
    on; without it ``data.train`` must itself be a Hub dataset id.
    """
    from ..models.embedded import embedded_model

    notes: list[str] = []
    m, q, lora, d, t = cfg.model, cfg.quantization, cfg.lora, cfg.data, cfg.training
    path = _data_path(d.train, data_repo)

    template = m.template if m.template in _AUTOTRAIN_TEMPLATES else "tokenizer"
    if m.template not in (None, "auto") and template == "tokenizer":
        notes.append(f"model.template {m.template!r}: AutoTrain only knows chatml/zephyr, so it renders with the "
                     "tokenizer's own chat template (chat_template: tokenizer); make sure that is the same template")
    if m.revision:
        notes.append(f"model.revision {m.revision!r}: AutoTrain always loads the default branch")
    if m.attn_implementation:
        notes.append(f"model.attn_implementation {m.attn_implementation!r}: AutoTrain only has use_flash_attention_2")

    quantization = {"nf4": "int4", "fp4": "int4", "none": None}[q.mode]
    if q.mode == "fp4":
        notes.append("quantization.mode fp4: AutoTrain's int4 is always NF4")
    if q.mode != "none":
        notes.append(f"quantization: AutoTrain's int4 uses float16 compute and no double quantization "
                     f"(here: compute {q.compute_dtype}, double_quant {str(q.double_quant).lower()})")
    mixed_precision = _MIXED_PRECISION[q.compute_dtype]

    epochs = max(1, math.ceil(t.num_epochs))
    if epochs != t.num_epochs:
        notes.append(f"training.num_epochs {t.num_epochs}: AutoTrain counts whole epochs, exported as {epochs}")
    if t.max_steps > 0:
        notes.append(f"training.max_steps {t.max_steps}: AutoTrain has no step limit, it trains {epochs} epoch(s)")
    if t.batching != "packed":
        notes.append(f"training.batching {t.batching}: AutoTrain's SFT always packs the rendered text into "
                     f"blocks of block_size tokens (no padding-free batches of whole conversations)")
    notes.append("assistant-only loss: AutoTrain's SFT trains on every token of the rendered text, prompts "
                 "included (hf-ita masks all but the assistant replies, from the template's generation markers)")
    if d.system_prompt not in (None, "none"):
        notes.append("data.system_prompt: hf-ita adds the Italian system prompt at training time; for AutoTrain it "
                     "must already be the first message of every conversation in the dataset")
    if d.curriculum != "none":
        notes.append(f"data.curriculum {d.curriculum!r}: AutoTrain shuffles the data, no curriculum phases")
    if d.max_train_examples:
        notes.append(f"data.max_train_examples {d.max_train_examples}: AutoTrain trains on the whole split")
    if d.eval:
        notes.append(f"data.eval {d.eval!r}: not exported (valid_split: null); push it as a split of the dataset "
                     "repo and set data.valid_split to evaluate")
    if cfg.evaluation.before_after:
        notes.append("evaluation before/after (response loss, bits per byte): not run by AutoTrain")

    params: dict[str, Any] = {
        "block_size": t.max_seq_length,
        "model_max_length": t.max_seq_length,
        "padding": "right",
        "add_eos_token": True,
        "epochs": epochs,
        "batch_size": t.per_device_batch_size,
        "gradient_accumulation": t.gradient_accumulation_steps,
        "lr": t.learning_rate,
        "warmup_ratio": t.warmup_ratio,
        "scheduler": t.lr_scheduler,
        "optimizer": "adamw_torch",
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
        "save_total_limit": t.save_total_limit,
        "disable_gradient_checkpointing": not t.gradient_checkpointing,
        "mixed_precision": mixed_precision,
        "peft": True,
        "quantization": quantization,
        "target_modules": lora.target_modules if isinstance(lora.target_modules, str) else ",".join(lora.target_modules),
        "lora_r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "merge_adapter": False,
    }
    config = {
        "task": "llm-sft",
        "base_model": m.name_or_path or embedded_model(m.embedded).hub_id,
        "project_name": project_name(t.output_dir),
        "log": t.report_to if t.report_to in ("tensorboard", "wandb") else "none",
        "backend": "local",
        "data": {"path": path, "train_split": d.split, "valid_split": None, "chat_template": template,
                 "column_mapping": {"text_column": "messages"}},
        "params": params,
        "hub": {"username": "${HF_USERNAME}", "token": "${HF_TOKEN}", "push_to_hub": True},
    }
    return AutoTrainExport(config=config, unsupported=notes)


def project_name(output_dir: str) -> str:
    """AutoTrain's project name (letters, digits and hyphens, at most 50) from ``training.output_dir``."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", Path(output_dir).name).strip("-")[:50].strip("-")
    return name or "hf-ita"


def _data_path(train: str, data_repo: str | None) -> str:
    if data_repo is not None:
        if not _HUB_ID.match(data_repo):
            raise ConfigError(bilingual("--data-repo deve essere un repo di dataset del Hub OWNER/NOME",
                                        f"--data-repo must be a Hub dataset repo OWNER/NAME, got {data_repo!r}"))
        return data_repo
    if _HUB_ID.match(train) and not train.lower().endswith(_FILE_SUFFIXES) and not Path(train).exists():
        return train
    raise ConfigError(
        bilingual(f"data.train {train!r} non è un dataset del Hub: AutoTrain legge i dati da un repo del Hub",
                  f"data.train {train!r} is not a Hub dataset: AutoTrain reads its data from a Hub repo"),
        hint="hf-ita data prepare SOURCE --output-dir DIR, upload DIR/train.jsonl to a dataset repo, "
             "then pass --data-repo OWNER/NAME")
