"""What :func:`~hf_ita_plugin.evaluation.suite.run_eval` evaluates, and loading it.

An :class:`EvalTarget` is a base model, optionally with a fine-tune adapter on it;
:func:`load_target` loads it (float32, the adapter wrapped with peft).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError


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
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path or target.base_path)
        model = AutoModelForCausalLM.from_pretrained(target.base_path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot load {target.base_path!r} for evaluation: {first}") from None
    if torch.cuda.is_available():
        model = model.to("cuda")
    if target.adapter_dir is not None:
        from peft import PeftModel

        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, str(target.adapter_dir))
    if not getattr(tokenizer, "chat_template", None):
        from ..templates import apply_template

        tokenizer = apply_template(tokenizer, "chatml")
    return model.eval(), tokenizer
