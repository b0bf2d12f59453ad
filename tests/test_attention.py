"""Padding-free attention on CPU: per-sequence SDPA gives the same logits as running each sequence alone."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_ita_plugin.training.patches.varlen_sdpa import VARLEN_SDPA, register_varlen_sdpa


@pytest.fixture(scope="module")
def models():
    register_varlen_sdpa()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    varlen = LlamaForCausalLM._from_config(copy.deepcopy(cfg), attn_implementation=VARLEN_SDPA).eval()
    plain = LlamaForCausalLM._from_config(copy.deepcopy(cfg), attn_implementation="sdpa").eval()
    assert varlen.config._attn_implementation == VARLEN_SDPA
    plain.load_state_dict(varlen.state_dict())
    return varlen, plain


def packed_batch(seqs):
    ids = torch.tensor([sum(seqs, [])])
    pos = torch.tensor([sum((list(range(len(s))) for s in seqs), [])])
    bounds = torch.tensor([0] + torch.tensor([len(s) for s in seqs]).cumsum(0).tolist(), dtype=torch.int32)
    return ids, pos, bounds


def test_packed_row_equals_separate_sequences(models):
    varlen, plain = models
    seqs = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16, 17, 18, 19]]
    ids, pos, bounds = packed_batch(seqs)
    with torch.no_grad():
        packed = varlen(input_ids=ids, position_ids=pos, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds,
                        max_length_q=7, max_length_k=7).logits[0]
        alone = torch.cat([plain(input_ids=torch.tensor([s])).logits[0] for s in seqs])
    assert torch.allclose(packed, alone, atol=1e-5)


def test_without_boundaries_it_is_plain_sdpa_with_padding_mask(models):
    varlen, plain = models
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        a = varlen(input_ids=ids, attention_mask=mask).logits
        b = plain(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(a, b, atol=1e-6)


def test_gradients_match(models):
    varlen, plain = models
    seqs = [[1, 2, 3, 4], [5, 6, 7]]
    ids, pos, bounds = packed_batch(seqs)
    varlen.zero_grad(); plain.zero_grad()
    varlen(input_ids=ids, position_ids=pos, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds,
           max_length_q=4, max_length_k=4).logits.sum().backward()
    sum(plain(input_ids=torch.tensor([s])).logits.sum() for s in seqs).backward()
    g1 = varlen.model.layers[0].self_attn.q_proj.weight.grad
    g2 = plain.model.layers[0].self_attn.q_proj.weight.grad
    assert torch.allclose(g1, g2, atol=1e-4)
