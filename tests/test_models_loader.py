"""hf_ita_plugin.models.loader: one way to load a base model (full precision or 4-bit) and an adapter on top."""

from __future__ import annotations

import bitsandbytes.nn.modules as bnb_modules
import pytest
import torch
from bitsandbytes.nn import Linear4bit

from gguf_models import tiny_mistral_spm
from hf_ita_plugin.errors import ConfigError, ModelError
from hf_ita_plugin.models import attach_adapter, load_base, load_tokenizer, quantization_config
from hf_ita_plugin.models.quant_layout import can_pack

IDS = torch.tensor([[1, 300, 301, 302, 303, 304]])


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_mistral_spm(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture(scope="module")
def adapter_dir(base_dir, tmp_path_factory):
    """A LoRA adapter trained (well, perturbed) on the tiny base, saved with a tokenizer that has one token more."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("adapter") / "adapter"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(3.0)
    peft_model.save_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|fine|>"]})
    tokenizer.save_pretrained(str(out))
    return out


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS.to(model.device)).logits.float().cpu()


def _similarity(model, other) -> float:
    return float(torch.nn.functional.cosine_similarity(_logits(model).flatten(), _logits(other).flatten(), dim=0))


def test_full_precision_matches_transformers(base_dir):
    from transformers import AutoModelForCausalLM

    model = load_base(base_dir, dtype="float32", device="cpu")
    assert model.dtype == torch.float32 and not getattr(model, "is_loaded_in_4bit", False)
    assert not any(isinstance(m, Linear4bit) for m in model.modules())
    reference = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    torch.testing.assert_close(_logits(model), _logits(reference), rtol=0, atol=0)


@pytest.mark.parametrize("quant", ["nf4", "fp4"])
def test_four_bit_with_double_quant(base_dir, quant):
    full = load_base(base_dir, dtype="float32")
    model = load_base(base_dir, quantization=quant, compute_dtype="float32")
    assert model.is_loaded_in_4bit
    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert layers and all(m.weight.quant_type == quant and m.weight.compress_statistics for m in layers)
    assert model.config.quantization_config.bnb_4bit_use_double_quant
    assert 0 < float((_logits(model) - _logits(full)).abs().max()) and _similarity(model, full) > 0.8  # close, not equal
    single = load_base(base_dir, quantization=quant, double_quant=False, compute_dtype="float32")
    assert not any(m.weight.compress_statistics for m in single.modules() if isinstance(m, Linear4bit))


def test_quantization_config_refuses_unknown_types():
    cfg = quantization_config("nf4", compute_dtype="float32")
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_compute_dtype == torch.float32
    with pytest.raises(ConfigError, match="nf4 or fp4.*'int3'"):
        quantization_config("int3")


def test_four_bit_inference_packs_only_shapes_the_cpu_kernel_handles(tmp_path, monkeypatch):
    """Inference goes through quant_layout.for_inference; training leaves the layout to the recipe's for_training."""
    from transformers import AutoModelForCausalLM, MistralConfig

    config = MistralConfig(vocab_size=600, hidden_size=64, intermediate_size=80, num_hidden_layers=1,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "odd")  # 80-wide MLP: not packable
    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)  # as on AVX512-BF16 servers
    base_dir = tmp_path / "odd"
    model = load_base(base_dir, quantization="nf4", compute_dtype="float32")
    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert {m.support_avx512bf16_for_cpu for m in layers} == {True, False}  # the tiny model has both kinds
    assert all(m.support_avx512bf16_for_cpu == can_pack(m) for m in layers)
    assert torch.isfinite(_logits(model)).all()  # packable layers packed, the others not: no shape crash
    training = load_base(base_dir, quantization="nf4", compute_dtype="float32", training=True)
    assert all(m.support_avx512bf16_for_cpu for m in training.modules() if isinstance(m, Linear4bit))


def test_attach_adapter_resizes_and_matches_peft(base_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(base_dir, adapter_dir=adapter_dir)
    assert "<|fine|>" in tokenizer.get_vocab()  # the adapter's tokenizer wins over the base's
    assert "<|fine|>" not in load_tokenizer(base_dir).get_vocab()
    base = load_base(base_dir, dtype="float32")
    rows = base.get_input_embeddings().weight.shape[0]
    assert len(tokenizer) == rows + 1
    model = attach_adapter(base, adapter_dir, tokenizer=tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert not any(p.requires_grad for p in model.parameters())

    reference = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    plain = _logits(reference)
    reference = PeftModel.from_pretrained(reference, str(adapter_dir))
    tuned = _logits(model)[..., :rows]
    torch.testing.assert_close(tuned, _logits(reference), rtol=0, atol=1e-6)
    assert float((tuned - plain).abs().max()) > 0.1  # the adapter is really applied

    trainable = attach_adapter(load_base(base_dir, dtype="float32"), adapter_dir, trainable=True)
    names = {n for n, p in trainable.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)


def test_adapter_on_a_four_bit_base(base_dir, adapter_dir):
    full = attach_adapter(load_base(base_dir, dtype="float32"), adapter_dir)
    model = attach_adapter(load_base(base_dir, quantization="nf4", compute_dtype="float32"), adapter_dir)
    assert model.base_model.model.is_loaded_in_4bit
    assert _similarity(model, full) > 0.9


def test_bad_paths_and_pickle_weights_are_readable_errors(base_dir, tmp_path):
    with pytest.raises(ModelError, match=r"model '/nonexistent/model': caricamento fallito / cannot load it"):
        load_base("/nonexistent/model")
    with pytest.raises(ModelError, match=r"teacher 'x': .*cannot load") as info:
        load_base(tmp_path / "empty", what="teacher 'x'", hint="pass a folder")
    assert info.value.hint == "pass a folder"
    with pytest.raises(ModelError, match=r"adapter '.*no-adapter'.*cannot load"):
        attach_adapter(load_base(base_dir, dtype="float32"), tmp_path / "no-adapter")
    with pytest.raises(ModelError, match="tokenizer '/nonexistent/model'"):
        load_tokenizer("/nonexistent/model")

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    pickled = tmp_path / "pickled"
    AutoModelForCausalLM.from_pretrained(str(base_dir)).save_pretrained(str(pickled))
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="pickled"):
        load_base(pickled)  # pickle files can run code: safetensors only unless allowed
    loaded = load_base(pickled, allow_pickle=True, dtype="float32")
    torch.testing.assert_close(_logits(loaded), _logits(load_base(base_dir, dtype="float32")), rtol=0, atol=0)
