"""What to convert: a model directory, or a training OUTPUT_DIR / adapter merged into its base.

Finding the adapter and its base model is :mod:`hf_ita_plugin.models.resolve`'s job; this module merges.

The LoRA adapter is merged with peft into the base model loaded in full precision from the base
checkpoint (never the 4-bit copy used for QLoRA training); the adapter's tokenizer and chat
template travel with the merged model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..models.resolve import find_adapter_dir, resolve_base_dir

_TOKENIZER_FILES = ("tokenizer.model",)


@dataclass
class ModelSource:
    """A model directory ready for conversion, and where it came from."""

    model_dir: Path
    adapter_dir: Path | None = None
    base_dir: Path | None = None
    output_dir: Path | None = None

    @property
    def merged(self) -> bool:
        return self.adapter_dir is not None


def merge_adapter(adapter_dir: Path, base_dir: Path, out_dir: Path) -> Path:
    """Merge the LoRA adapter into the full-precision base and save it (with the adapter's tokenizer) in ``out_dir``."""
    import torch
    from transformers import AutoConfig

    from ..models.loader import attach_adapter, load_base, load_tokenizer
    from ..models.weights import check_adapter_weights

    check_adapter_weights(adapter_dir)  # before the (slow) base model loads
    base_config = AutoConfig.from_pretrained(str(base_dir))
    if getattr(base_config, "quantization_config", None):
        raise ModelError(
            f"{base_dir}: il modello base è quantizzato / the base checkpoint is quantized; merging needs the original weights",
            hint="point base_model_name_or_path at the unquantized base model",
        )
    dtype = getattr(base_config, "dtype", None) or getattr(base_config, "torch_dtype", None) or torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    base = load_base(base_dir, dtype=dtype, allow_pickle=True, what=f"base model {str(base_dir)!r} (merge)")
    model = attach_adapter(base, adapter_dir)
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tok_dir = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_dir
    load_tokenizer(base_dir, adapter_dir=adapter_dir).save_pretrained(str(out_dir))
    for name in _TOKENIZER_FILES:  # SentencePiece model, when transformers does not re-save it
        for src in (tok_dir / name, base_dir / name):
            if src.is_file() and not (out_dir / name).exists():
                shutil.copyfile(src, out_dir / name)
    del base, model, merged
    return out_dir


def resolve_source(path: str | Path, work_dir: Path) -> ModelSource:
    """Turn a user path into a convertible model directory, merging an adapter into ``work_dir`` if needed."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: percorso inesistente / path does not exist")
    adapter_dir = find_adapter_dir(path)
    if adapter_dir is None:
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{path}: né un modello né un OUTPUT_DIR di training / neither a model directory nor a training OUTPUT_DIR",
                hint="expected config.json + *.safetensors, or adapter/adapter_config.json",
            )
        return ModelSource(model_dir=path)
    base_dir = resolve_base_dir(adapter_dir)
    merged_dir = merge_adapter(adapter_dir, base_dir, work_dir / "merged")
    return ModelSource(model_dir=merged_dir, adapter_dir=adapter_dir, base_dir=base_dir, output_dir=path if adapter_dir != path else None)
