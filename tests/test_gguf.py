"""GGUF export: real conversions on CPU, loaded by llama.cpp (llama-cpp-python), compared with transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_ita_plugin.errors import ConfigError, HfItaError, ModelError

from gguf_models import tiny_mistral_spm, tiny_qwen2_tied


# --- fast checks: input errors ---------------------------------------------------------------------------

def test_unknown_quant_type_is_a_clear_error():
    from hf_ita_plugin.gguf import parse_quant_types

    assert [q.name for q in parse_quant_types("q8_0, Q4_K_M,q8_0")] == ["Q8_0", "Q4_K_M"]
    with pytest.raises(ConfigError, match="Q9_Z"):
        parse_quant_types("f16,Q9_Z")


def test_unsupported_architecture_lists_supported_ones(tmp_path):
    import torch
    from safetensors.torch import save_file

    from hf_ita_plugin.gguf import QUANT_TYPES
    from hf_ita_plugin.gguf.converter import write_gguf

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    save_file({"wte.weight": torch.zeros(4, 4)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelError) as err:
        write_gguf(tmp_path, tmp_path / "out.gguf", QUANT_TYPES["F16"], progress=False)
    assert "GPT2LMHeadModel" in str(err.value) and "LlamaForCausalLM" in str(err.value) and "Qwen2ForCausalLM" in str(err.value)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*tmp"))


def test_unknown_bpe_pre_tokenizer_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from hf_ita_plugin.gguf.tokenizer_meta import tokenizer_meta

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Whitespace()  # no llama.cpp equivalent
    tk.train_from_iterator(["ciao mondo, come stai?"] * 10, trainer=trainers.BpeTrainer(vocab_size=60, show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="</s>").save_pretrained(str(tmp_path))
    with pytest.raises(ModelError, match="pre-tokenizer") as err:
        tokenizer_meta(tmp_path, n_vocab=100)
    assert "Whitespace" in str(err.value) and "qwen2" in str(err.value)


def test_missing_source_and_non_model_dir(tmp_path):
    from hf_ita_plugin.cli import main

    assert main(["gguf", "convert", str(tmp_path / "nope"), "--quant", "f16"]) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(HfItaError, match="OUTPUT_DIR"):
        from hf_ita_plugin.gguf import convert

        convert(tmp_path / "empty", quant="f16")


# --- real conversions -----------------------------------------------------------------------------------

def _tensor_names(path: Path) -> dict[str, str]:
    from gguf import GGUFReader

    return {t.name: t.tensor_type.name for t in GGUFReader(str(path)).tensors}


@pytest.mark.slow
def test_embedded_smollm2_f16_via_cli(tmp_path, capsys):
    """BPE (gpt2) llama-architecture model: CLI convert, verify report, Modelfile, no temp files left."""
    from hf_ita_plugin.cli import main
    from hf_ita_plugin.embedded import ensure_embedded_model

    model_dir = ensure_embedded_model()
    out = tmp_path / "out"
    rc = main(["gguf", "convert", str(model_dir), "--quant", "f16", "--out", str(out), "--name", "smol"])
    assert rc == 0, capsys.readouterr()
    gguf_file = out / "smol-F16.gguf"
    report = json.loads((out / "smol-F16.verify.json").read_text())
    assert report["ok"] and report["loaded"]
    assert report["tokenization"]["matched"] == report["tokenization"]["total"] > 10
    assert report["logits"]["top1_agreement"] >= 0.99 and report["logits"]["max_abs_delta"] < 0.5
    assert report["chat_template"]["ok"]
    assert report["generation"]["exact_matches"] == report["generation"]["total"]
    types = _tensor_names(gguf_file)
    assert "output.weight" not in types  # tied embeddings
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    modelfile = (out / "smol-F16.Modelfile").read_text()
    assert "FROM ./smol-F16.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "<|im_start|>assistant\n" in modelfile and "SYSTEM" in modelfile
    assert sorted(p.name for p in out.iterdir()) == ["smol-F16.Modelfile", "smol-F16.gguf", "smol-F16.verify.json"]


@pytest.mark.slow
def test_tiny_mistral_sentencepiece_q8_and_f32(tmp_path):
    """SentencePiece (tokenizer.ggml.model = llama) with scores/types, rotary permute, BOS added, [INST] template."""
    from gguf import GGUFReader

    from hf_ita_plugin.gguf import convert

    model_dir = tiny_mistral_spm(tmp_path / "mistral")
    result = convert(model_dir, quant="f32,q8_0", out_dir=tmp_path / "out", progress=False, strict=False)
    f32, q8 = result.reports
    assert f32.ok, f32.failures
    assert f32.tokenization["matched"] == f32.tokenization["total"]
    assert f32.logits["top1_agreement"] >= 0.99 and f32.logits["max_abs_delta"] < 0.05
    assert q8.tokenization["ok"] and q8.logits["top1_agreement_decisive"] >= 0.97
    reader = GGUFReader(str(result.paths[0]))
    fields = reader.fields
    assert bytes(fields["tokenizer.ggml.model"].parts[-1]).decode() == "llama"
    assert bool(fields["tokenizer.ggml.add_bos_token"].parts[-1][0]) is True
    assert "tokenizer.ggml.scores" in fields
    assert "[INST]" in (tmp_path / "out" / "mistral-F32.Modelfile").read_text()


@pytest.mark.slow
def test_tiny_qwen2_tied_bpe_and_kquant(tmp_path):
    """Qwen2 BPE (pre = qwen2), tied embeddings, padded vocabulary, K-quant through llama.cpp's quantizer."""
    from gguf import GGUFReader

    from hf_ita_plugin.gguf import convert

    model_dir = tiny_qwen2_tied(tmp_path / "qwen")
    result = convert(model_dir, quant="f16,Q4_K_M", out_dir=tmp_path / "out", progress=False, strict=False)
    f16, q4 = result.reports
    assert f16.ok, f16.failures
    assert f16.logits["top1_agreement_decisive"] >= 0.99
    assert "output.weight" not in _tensor_names(result.paths[0])
    fields = GGUFReader(str(result.paths[0])).fields
    assert bytes(fields["tokenizer.ggml.pre"].parts[-1]).decode() == "qwen2"
    assert len(fields["tokenizer.ggml.tokens"].data) == json.loads((model_dir / "config.json").read_text())["vocab_size"]
    assert q4.loaded and q4.file_type == "Q4_K_M" and q4.tokenization["ok"]
    assert q4.logits["top1_agreement_decisive"] >= 0.5  # far above a broken file (~1/vocab)
