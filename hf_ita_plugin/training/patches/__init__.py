"""Every change this project makes to another library's private behaviour, one module each.

* :mod:`.trl_compact_head`: TRL's fused LM head skips unlabelled positions on CPU (a context).
* :mod:`.varlen_sdpa`: an attention kernel registered with transformers by name (padding-free
  batches without FlashAttention); adding a name changes nothing else.

:func:`training_patches` applies the contextual ones around a training run and restores them after.
"""

from __future__ import annotations

import contextlib

from .trl_compact_head import compact_lm_head_on_cpu


@contextlib.contextmanager
def training_patches():
    """Apply the training-time patches for the duration of the ``with`` block."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(compact_lm_head_on_cpu())
        yield
