"""CPU fixes for TRL's SFTTrainer: the compact fused LM head gives the same loss and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
import trl.trainer.utils as trl_utils
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.utils import add_fused_lm_head

from hf_ita_plugin.training.patches import training_patches
from hf_ita_plugin.training.patches.trl_compact_head import compact_lm_head_on_cpu
from hf_ita_plugin.training.trainer import keep_adapter_in_compute_dtype


@pytest.fixture()
def model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    m = LlamaForCausalLM(cfg)
    add_fused_lm_head(m, outputs=("log_probs", "entropy", "is_top1"))
    return m


def labelled_batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 300, (2, 24))
    labels = ids.clone()
    labels[:, :15] = -100  # prompt: no loss
    labels[1, 20:] = -100  # padding
    return ids, labels


class RowCounter:
    """Records how many positions the real chunked log-prob function is given."""

    def __init__(self, real):
        self.real, self.rows = real, []

    def apply(self, hidden, *args):
        self.rows.append(hidden.shape[0])
        return self.real.apply(hidden, *args)


def run(model, ids, labels):
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def test_compact_head_scores_only_labelled_positions_with_same_loss_and_grads(model, monkeypatch):
    ids, labels = labelled_batch()
    counter = RowCounter(trl_utils._ChunkedLogProbFunction)
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", counter)

    with training_patches():
        assert getattr(trl_utils._use_triton, "hf_ita_compact", False)
        compact_out, compact_grads = run(model, ids, labels)
    full_out, full_grads = run(model, ids, labels)  # the patch is gone: TRL's stock CPU path

    labelled = int((labels[:, 1:] != -100).sum())
    assert counter.rows == [labelled, 2 * 23]  # compact: labelled positions only; stock CPU path: all of them
    assert torch.allclose(compact_out.loss, full_out.loss, atol=1e-6)
    assert torch.allclose(compact_out.entropy, full_out.entropy, atol=1e-5)
    assert torch.equal(compact_out.is_top1, full_out.is_top1)
    assert compact_grads.keys() == full_grads.keys() and compact_grads
    for name in full_grads:
        assert torch.allclose(compact_grads[name], full_grads[name], atol=1e-6), name


def test_patch_nests_and_is_restored_on_exit():
    original = trl_utils._use_triton
    assert not original(torch.device("cpu"))
    with compact_lm_head_on_cpu() as applied:
        assert applied
        first = trl_utils._use_triton
        with compact_lm_head_on_cpu() as again:
            assert again and trl_utils._use_triton is first
        assert trl_utils._use_triton is first and first(torch.device("cpu"))
    assert trl_utils._use_triton is original


def test_patch_is_restored_when_training_fails():
    original = trl_utils._use_triton
    with pytest.raises(RuntimeError):
        with training_patches():
            raise RuntimeError("training failed")
    assert trl_utils._use_triton is original


def test_adapter_dtype_follows_compute_dtype():
    lora = torch.nn.Linear(4, 4).to(torch.bfloat16)
    frozen = torch.nn.Linear(4, 4).to(torch.bfloat16).requires_grad_(False)
    net = torch.nn.Sequential(lora, frozen)
    assert keep_adapter_in_compute_dtype(net, torch.float32) == 2
    assert lora.weight.dtype == torch.float32 and frozen.weight.dtype == torch.bfloat16
    assert keep_adapter_in_compute_dtype(copy.deepcopy(net).to(torch.bfloat16), torch.bfloat16) == 0


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_compute_dtype_and_batching_follow_the_cpu(monkeypatch, native_bf16):
    """On CPUs with native bf16 the recipe trains in bf16, elsewhere in fp32; padded batches on every CPU
    (padding-free was measured slower on both kinds), padding-free on a GPU. Explicit choices are kept."""
    from hf_ita_plugin.models.loader import resolve_compute_dtype
    from hf_ita_plugin.training.trainer import resolve_batching
    from hf_ita_plugin.utils import hardware

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "has_native_bf16", lambda: native_bf16)
    assert resolve_compute_dtype("auto", training=True) == (torch.bfloat16 if native_bf16 else torch.float32)
    assert resolve_compute_dtype("auto") == torch.float32  # inference on a CPU: as the card's snippets load it
    assert resolve_batching("auto") == "padded"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_batching("auto") == "padding_free"
    assert resolve_compute_dtype("float32") == torch.float32 and resolve_batching("packed") == "packed"
