"""Patch: TRL's fused LM head scores only labelled positions on CPU too.

TRL's fused LM head projects only the labelled positions through the vocabulary on CUDA/XPU, but
every position elsewhere (to keep tile shapes fixed for compilers such as Neuron's). On a CPU
there is nothing to recompile, and with loss on assistant tokens only most of the 49k-wide
projections were thrown away. The patch makes the device check TRL's fused head consults
(``trl.trainer.utils._use_triton``, a private name) answer yes for CPU tensors as well; the
Triton kernels themselves are chosen elsewhere and untouched. Loss and gradients are the same
(``tests/test_cpu_training.py``).
"""

from __future__ import annotations

import contextlib

_COMPACT_DEVICE_TYPES = ("cpu",)
TARGET = "trl.trainer.utils._use_triton"


@contextlib.contextmanager
def compact_lm_head_on_cpu():
    """While active, TRL's fused LM head skips unlabelled positions on CPU; restored on exit.

    Yields True when the patch is in place, False when this TRL version has no such check
    (nothing to do). Nested uses share the outer patch.
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:  # pragma: no cover - trl is a hard dependency
        yield False
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield False
        return
    if getattr(original, "hf_ita_compact", False):
        yield True
        return

    def compact_on_cpu_too(device) -> bool:
        return device.type in _COMPACT_DEVICE_TYPES or original(device)

    compact_on_cpu_too.hf_ita_compact = True  # type: ignore[attr-defined]
    compact_on_cpu_too.original = original  # type: ignore[attr-defined]
    trl_utils._use_triton = compact_on_cpu_too
    try:
        yield True
    finally:
        trl_utils._use_triton = original
