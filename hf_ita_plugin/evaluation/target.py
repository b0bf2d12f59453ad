"""What :func:`~hf_ita_plugin.evaluation.suite.run_eval` evaluates, and loading it.

An :class:`EvalTarget` is a base model, optionally with a fine-tune adapter on it;
:func:`load_target` loads it (float32, the adapter wrapped with peft).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class EvalTarget:
    """What :func:`run_eval` evaluates: a base model, optionally a fine-tune adapter on it."""

    base_path: str
    base_id: str
    adapter_dir: Path | None = None
    output_dir: Path | None = None
    """A training OUTPUT_DIR (results go into its metrics.json)."""
    tokenizer_path: str | None = None
    system_prompt: str | None = "default"


def load_target(target: EvalTarget):
    """``(model, tokenizer)``: the base model (float32), wrapped with the adapter if there is one."""
    from ..models.loader import attach_adapter, load_base, load_tokenizer

    tokenizer = load_tokenizer(target.tokenizer_path or target.base_path)
    model = load_base(target.base_path, dtype="float32", device="auto", allow_pickle=True,
                      what=f"evaluation model {target.base_path!r}")
    if target.adapter_dir is not None:
        model = attach_adapter(model, target.adapter_dir, tokenizer=tokenizer)
    if not getattr(tokenizer, "chat_template", None):
        from ..templates import apply_template

        tokenizer = apply_template(tokenizer, "chatml")
    return model.eval(), tokenizer