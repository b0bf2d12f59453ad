"""bitsandbytes' packed 4-bit CPU layout never reaches training, and inference uses it only where it fits.

On CPUs with AVX512-BF16, bitsandbytes packs a ``Linear4bit`` for CPU inference the first time it
runs in eval mode without grad, and the packed layout has no backward. Where the CPU lacks the
instruction set, these tests make bitsandbytes believe it has it (its ``has_avx512bf16`` check,
read when a layer is built), so the conversion happens on every machine.
"""

from __future__ import annotations

import bitsandbytes.functional as bnb_functional
import bitsandbytes.nn.modules as bnb_modules
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_ita_plugin.models import quant_layout
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.training.recipe import ItalianSFT

CPU_HAS_PACKED_KERNEL = bool(bnb_functional.has_avx512bf16())


@pytest.fixture()
def packing_cpu(monkeypatch):
    """Layers built from now on believe the CPU has AVX512-BF16 (as real servers do)."""
    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)


def four_bit_layer(in_features: int, out_features: int, seed: int = 0):
    torch.manual_seed(seed)
    layer = bnb_modules.Linear4bit(in_features, out_features, bias=False, compute_dtype=torch.float32,
                                   quant_type="nf4", compress_statistics=True)
    layer.weight = bnb_modules.Params4bit(torch.randn(out_features, in_features) / in_features ** 0.5,
                                          requires_grad=False, quant_type="nf4", compress_statistics=True,
                                          module=layer).to("cpu")
    return layer


def input_grad(layer, x):
    x = x.clone().requires_grad_(True)
    layer.train()
    layer(x).pow(2).sum().backward()
    return x.grad


def eval_pass(layer, x):
    layer.eval()
    with torch.no_grad():
        return layer(x)


def test_bare_layer_loses_its_gradient_once_packed_and_for_training_prevents_it(packing_cpu):
    """The upstream bug in miniature, and the fix: an eval pass must not cut the backward."""
    x = torch.randn(4, 256)
    reference = input_grad(four_bit_layer(256, 128), x)
    assert reference is not None and reference.norm() > 0

    guarded = four_bit_layer(256, 128)
    counts = quant_layout.for_training(guarded)
    assert counts == {"layers": 1, "packable": 0, "unpacked": 0}
    eval_pass(guarded, x)
    assert not quant_layout.is_packed(guarded)
    grad = input_grad(guarded, x)
    assert grad is not None and torch.allclose(grad, reference)


def test_for_training_converts_back_a_layer_an_evaluation_already_packed(packing_cpu):
    layer = four_bit_layer(256, 128)
    before = layer.weight.data.clone()
    with torch.no_grad():  # the conversion itself is plain torch: it runs on every CPU
        layer.weight.data, state = bnb_functional._convert_weight_packed_for_cpu(layer.weight.data,
                                                                                 layer.weight.quant_state)
    layer.weight.quant_state = state
    assert quant_layout.is_packed(layer)
    with pytest.warns(UserWarning, match="converted back"):
        counts = quant_layout.for_training(layer)
    assert counts["unpacked"] == 1 and not quant_layout.is_packed(layer)
    assert torch.equal(layer.weight.data, before)  # the 4-bit codes are restored exactly
    grad = input_grad(layer, torch.randn(4, 256))
    assert grad is not None and grad.norm() > 0


def test_for_inference_packs_only_shapes_the_kernel_handles(packing_cpu):
    fits, too_narrow, odd_rows = four_bit_layer(256, 128), four_bit_layer(32, 128), four_bit_layer(256, 48)
    assert quant_layout.can_pack(fits)
    assert not quant_layout.can_pack(too_narrow)  # fewer inputs than one quantization block
    assert not quant_layout.can_pack(odd_rows)  # outputs not a multiple of 32
    net = torch.nn.Sequential(too_narrow, torch.nn.Linear(128, 256), odd_rows)
    counts = quant_layout.for_inference(net)
    assert counts == {"layers": 2, "packable": 0, "unpacked": 0}
    out = eval_pass(net, torch.randn(3, 32))  # these shapes crash bitsandbytes when packed
    assert out.shape == (3, 48) and torch.isfinite(out).all()
    assert not quant_layout.is_packed(too_narrow) and not quant_layout.is_packed(odd_rows)
    assert quant_layout.for_inference(fits)["packable"] == 1


@pytest.mark.skipif(not CPU_HAS_PACKED_KERNEL, reason="bitsandbytes' packed CPU kernel needs AVX512-BF16")
def test_packed_inference_agrees_with_the_standard_path():
    """On CPUs that have it, the packed path (bf16 scales) stays close to the standard one."""
    x = torch.randn(5, 256)
    standard = four_bit_layer(256, 128)
    quant_layout.for_training(standard)
    packed = four_bit_layer(256, 128)
    quant_layout.for_inference(packed)
    expected, got = eval_pass(standard, x), eval_pass(packed, x)
    assert quant_layout.is_packed(packed)
    assert torch.allclose(got, expected, rtol=0.05, atol=0.05)


def tiny_packable_llama(path):
    """A llama whose every linear layer fits the packed CPU kernel (so an eval would pack it)."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def load_with_nonzero_lora_b(config):
    """The recipe's model, seeded; LoRA B starts at zero (so A gets no gradient): give it values."""
    torch.manual_seed(2)
    model = ItalianSFT(config).load_model()
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    return model


def lora_grads(model, ids):
    model.train()
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def test_recipe_gradients_after_the_before_evaluation_equal_those_without_it(packing_cpu, tmp_path):
    """The recipe evaluates before training: that pass must not change any LoRA gradient."""
    base = tiny_packable_llama(tmp_path / "base")
    config = RunConfig.from_dict({"model": {"name_or_path": str(base)},
                                  "lora": {"dropout": 0.0}, "training": {"gradient_checkpointing": False}})
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))

    fresh = load_with_nonzero_lora_b(config)
    expected = lora_grads(fresh, ids)
    evaluated = load_with_nonzero_lora_b(config)
    evaluated.eval()
    with torch.no_grad():  # what the "before" evaluation and the trainer's periodic evals do
        evaluated(input_ids=ids)
    layers = [m for m in evaluated.modules() if isinstance(m, bnb_modules.Linear4bit)]
    assert len(layers) == 14 and all(quant_layout.can_pack(m) for m in layers)
    assert not any(quant_layout.is_packed(m) for m in layers)
    got = lora_grads(evaluated, ids)
    assert got.keys() == expected.keys() and len(got) == 28  # A and B of 7 linear layers x 2 blocks
    first_block = [n for n in got if ".layers.0." in n]
    assert first_block and all(got[n].norm() > 0 for n in first_block)
    for name in got:
        assert torch.allclose(got[name], expected[name], atol=1e-5), name
