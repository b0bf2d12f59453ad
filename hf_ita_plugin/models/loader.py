"""Loading models: compute dtype, base models in full precision or 4-bit, adapters on top."""

from __future__ import annotations


def resolve_compute_dtype(name: str):
    """``auto`` -> bfloat16 on GPUs that support it, float16 on older GPUs, float32 on CPU."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)
