"""Make TRL's SFTTrainer train QLoRA at full speed on CPUs.

Two TRL 1.x defaults are tuned for GPUs and cost most of a CPU training step (measured on
SmolLM2-135M, batch 8 x 256, 2 cores: 48 s/step before, see bench/bench_recipe.py for after):

* SFTTrainer casts the LoRA weights of a 4-bit model to bfloat16. Without native bf16
  (AVX512-BF16/AMX) a bf16 matmul runs ~60x slower than fp32, so the small LoRA matmuls took
  longer than the model's own layers. :func:`keep_adapter_in_compute_dtype` puts them back in the
  run's compute dtype.
* TRL's fused LM head projects only the labelled positions through the vocabulary on CUDA/XPU,
  but every position elsewhere (to keep tile shapes fixed for compilers such as Neuron's). On a
  CPU there is nothing to recompile, and with loss on assistant tokens only, most of the
  49k-wide projections were thrown away. :func:`score_only_labelled_positions` makes the CPU use
  the compact path too; the loss and gradients are the same.
"""

from __future__ import annotations

_COMPACT_DEVICE_TYPES = ("cpu",)


def keep_adapter_in_compute_dtype(model, compute_dtype) -> int:
    """Cast trainable parameters back to ``compute_dtype`` (no-op for bfloat16); returns how many."""
    import torch

    if compute_dtype == torch.bfloat16:
        return 0
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != compute_dtype:
            param.data = param.data.to(compute_dtype)
            cast += 1
    return cast


def score_only_labelled_positions() -> bool:
    """Let TRL's fused LM head skip unlabelled positions on CPU as it does on GPU.

    Patches the device check TRL's fused head consults (``trl.trainer.utils._use_triton``) so it
    also answers yes for CPU tensors; the Triton kernels themselves are chosen elsewhere and are
    untouched. Returns False when this TRL version has no such check (nothing to do).
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:  # pragma: no cover - trl is a hard dependency
        return False
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        return False
    if getattr(original, "hf_ita_compact", False):
        return True

    def compact_on_cpu_too(device) -> bool:
        return device.type in _COMPACT_DEVICE_TYPES or original(device)

    compact_on_cpu_too.hf_ita_compact = True  # type: ignore[attr-defined]
    compact_on_cpu_too.original = original  # type: ignore[attr-defined]
    trl_utils._use_triton = compact_on_cpu_too
    return True
