"""Padding-free attention without FlashAttention: SDPA run sequence by sequence.

Padding-free batches concatenate the conversations of a batch into one row and mark the
boundaries with ``cu_seq_lens_q`` (TRL's collator does this). FlashAttention's varlen kernels
use those boundaries directly, but they need a CUDA GPU. With plain SDPA, transformers turns the
packed row into one dense block-diagonal mask of ``total_tokens**2`` entries, so attention costs
grow with the square of the *batch* length and the math kernel stores the full attention matrix of
every layer for the backward pass: on a CPU that is slower than padding.

:data:`VARLEN_SDPA` is an attention implementation that, for such packed rows, runs causal SDPA on
each sequence's slice (cost: the sum of squares of the sequence lengths, no mask tensor) and, for
ordinary padded batches or generation, falls back to transformers' own SDPA with its mask.
Select it with ``attn_implementation="hf_ita_varlen_sdpa"`` after :func:`register_varlen_sdpa`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VARLEN_SDPA = "hf_ita_varlen_sdpa"


def varlen_sdpa_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                                  scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """Attention for ``(batch, heads, seq, dim)`` tensors; see the module docstring."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_seq_lens = kwargs.get("cu_seq_lens_q")
    packed = (
        cu_seq_lens is not None
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2]  # no KV cache: training or a full forward
        and getattr(module, "is_causal", True)
        and (attention_mask is None or attention_mask.dim() == 4)
    )
    if not packed:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    bounds = cu_seq_lens.tolist()
    enable_gqa = query.shape[1] != key.shape[1]
    dropout_p = dropout if module.training else 0.0
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end <= start:
            continue
        pieces.append(F.scaled_dot_product_attention(
            query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
            dropout_p=dropout_p, is_causal=True, scale=scaling, enable_gqa=enable_gqa,
        ))
    out = torch.cat(pieces, dim=2)
    if out.shape[2] < query.shape[2]:  # tail padding after the last sequence: attend to itself only
        tail = F.scaled_dot_product_attention(
            query[:, :, out.shape[2]:], key[:, :, out.shape[2]:], value[:, :, out.shape[2]:],
            is_causal=True, scale=scaling, enable_gqa=enable_gqa)
        out = torch.cat([out, tail], dim=2)
    return out.transpose(1, 2).contiguous(), None


def register_varlen_sdpa() -> str:
    """Register :data:`VARLEN_SDPA` with transformers (idempotent) and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(VARLEN_SDPA, varlen_sdpa_attention_forward)
    # Padded batches and generation still get SDPA's own masks.
    ALL_MASK_ATTENTION_FUNCTIONS.register(VARLEN_SDPA, sdpa_mask)
    return VARLEN_SDPA
