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
    from hf_ita_plugin.cli.main import main

    assert main(["gguf", "convert", str(tmp_path / "nope"), "--quant", "f16"]) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(HfItaError, match="OUTPUT_DIR"):
        from hf_ita_plugin.gguf import convert

        convert(tmp_path / "empty", quant="f16")


# --- streaming conversion without torch/transformers -------------------------------------------------

def _tiny_llama_checkpoint(out: Path, dtype) -> dict:
    """A 2-layer Llama checkpoint saved with safetensors in ``dtype`` (a small Italian BPE tokenizer), with F16 edge values."""
    import torch
    from safetensors.torch import save_file

    from gguf_models import qwen2_bpe_tokenizer

    out.mkdir(parents=True)
    tok = qwen2_bpe_tokenizer(out)
    hidden, heads, kv_heads, inter, vocab = 64, 4, 2, 96, len(tok) + 4
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
              "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
              "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True}
    (out / "config.json").write_text(json.dumps(config))
    gen = torch.Generator().manual_seed(0)
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    for i in range(2):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (kv_heads * 16, hidden),
                       p + "self_attn.v_proj.weight": (kv_heads * 16, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
                       p + "mlp.gate_proj.weight": (inter, hidden), p + "mlp.up_proj.weight": (inter, hidden),
                       p + "mlp.down_proj.weight": (hidden, inter), p + "input_layernorm.weight": (hidden,),
                       p + "post_attention_layernorm.weight": (hidden,)})
    tensors = {name: torch.randn(shape, generator=gen) * 0.02 for name, shape in shapes.items()}
    edge = torch.tensor([0.0, -0.0, 1e-8, -3e-7, 6.1e-5, 6.0e-5, 65504.0, 65519.0, 65520.0, -7e4, 1.0, -2.5, 3.14159, 1e-4, 0.333333, 1e5])
    q = tensors["model.layers.0.self_attn.q_proj.weight"]
    q.view(-1)[: len(edge)] = edge
    tensors = {name: t.to(dtype).contiguous() for name, t in tensors.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return tensors


def _expected_bytes(name: str, tensor, out_type: str, config: dict) -> bytes:
    """What the old torch-based converter wrote for one tensor (float32 through torch, then numpy/gguf)."""
    import torch
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    from hf_ita_plugin.gguf.architectures import permute_rotary

    t = tensor
    if t.dim() == 1:
        return t.to(torch.float32).numpy().tobytes()
    if name.endswith("q_proj.weight"):
        t = permute_rotary(t, config["num_attention_heads"])
    elif name.endswith("k_proj.weight"):
        t = permute_rotary(t, config["num_key_value_heads"])
    if out_type == "F16":
        return t.to(torch.float16).numpy().tobytes()
    data = t.to(torch.float32).numpy()
    if out_type == "F32":
        return data.tobytes()
    return quantize(data, GGMLQuantizationType[out_type]).tobytes()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf edge values of the F16 source through Q8_0
@pytest.mark.parametrize("src_dtype, out_types", [
    ("float32", ["F32", "F16", "BF16", "Q8_0"]),
    ("bfloat16", ["F16", "F32", "BF16"]),
    ("float16", ["F16", "Q8_0"]),
])
def test_streamed_tensors_equal_torch_conversion(tmp_path, monkeypatch, src_dtype, out_types):
    """Chunked numpy conversion (several chunks per tensor), byte copies and q/k permutation give the old torch bytes."""
    import torch
    from gguf import GGUFReader

    from hf_ita_plugin.gguf import QUANT_TYPES, converter
    from hf_ita_plugin.gguf.architectures import ARCHITECTURES

    monkeypatch.setattr(converter, "CHUNK_ELEMENTS", 4000)  # several chunks of whole rows per large tensor
    model_dir = tmp_path / "llama"
    tensors = _tiny_llama_checkpoint(model_dir, getattr(torch, src_dtype))
    config = json.loads((model_dir / "config.json").read_text())
    names = ARCHITECTURES["LlamaForCausalLM"].tensor_name_map(config)
    for out_type in out_types:
        out = converter.write_gguf(model_dir, tmp_path / f"m-{out_type}.gguf", QUANT_TYPES[out_type], progress=False)
        by_name = {t.name: t for t in GGUFReader(str(out)).tensors}
        assert len(by_name) == len(tensors)
        for hf_name, tensor in tensors.items():
            gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            got = by_name[gguf_name]
            assert bytes(got.data.tobytes()) == _expected_bytes(hf_name, tensor, out_type, config), (src_dtype, out_type, hf_name)
        assert not list(tmp_path.glob(".*.tmp"))


def test_plain_conversion_imports_neither_torch_nor_transformers(tmp_path):
    import subprocess
    import sys

    import torch

    model_dir = tmp_path / "llama"
    _tiny_llama_checkpoint(model_dir, torch.bfloat16)
    code = (
        "import sys; from hf_ita_plugin.gguf import convert; "
        "r = convert(sys.argv[1], quant='f16,q8_0', out_dir=sys.argv[2], verify=False, modelfile=False, progress=False); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), [p.name for p in r.paths])"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, str(model_dir), str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "[] ['llama-F16.gguf', 'llama-Q8_0.gguf']"


def test_tokenizer_read_without_transformers_equals_transformers(tmp_path, monkeypatch):
    """Generic BPE tokenizer.json (SmolLM2, a Qwen2-style one): same GGUF metadata as through transformers."""
    from hf_ita_plugin.models.embedded import ensure_embedded_model
    from hf_ita_plugin.gguf import tokenizer_meta as tm

    from gguf_models import qwen2_bpe_tokenizer

    qwen_dir = tmp_path / "qwen-tok"
    qwen_dir.mkdir()
    qwen_tok = qwen2_bpe_tokenizer(qwen_dir)
    for model_dir, n_vocab in ((ensure_embedded_model(), 49152), (qwen_dir, len(qwen_tok) + 20)):
        reference = tm.tokenizer_meta(model_dir, n_vocab, use_transformers=True)
        with monkeypatch.context() as m:
            m.setattr(tm, "load_hf_tokenizer", lambda *_: pytest.fail("transformers tokenizer loaded"))
            direct = tm.tokenizer_meta(model_dir, n_vocab)
        assert direct == reference, model_dir
        assert direct.chat_template and direct.special_ids["eos"] == reference.special_ids["eos"]


# --- real conversions -----------------------------------------------------------------------------------

def _tensor_names(path: Path) -> dict[str, str]:
    from gguf import GGUFReader

    return {t.name: t.tensor_type.name for t in GGUFReader(str(path)).tensors}


@pytest.mark.slow
def test_embedded_smollm2_f16_via_cli(tmp_path, capsys):
    """BPE (gpt2) llama-architecture model: CLI convert, verify report, Modelfile, no temp files left."""
    from hf_ita_plugin.cli.main import main
    from hf_ita_plugin.models.embedded import ensure_embedded_model

    model_dir = ensure_embedded_model()
    out = tmp_path / "out"
    rc = main(["gguf", "convert", str(model_dir), "--quant", "f16", "--output-dir", str(out), "--name", "smol"])
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
    # the quant type's gate is applied: passing means the gated figure reached the threshold, and a
    # miss is reported as a failure of the file
    gated = q4.logits["top1_agreement_decisive" if q4.logits["gated_on"] == "decisive" else "top1_agreement"]
    assert q4.logits["ok"] == (gated >= q4.logits["threshold"]) and q4.logits["threshold"] > 0.5
    assert q4.logits["ok"] or any(f.startswith("top-1 agreement") for f in q4.failures)


@pytest.mark.slow
@pytest.mark.parametrize("version", [2, 3])
def test_tiny_gemma_sentencepiece_matches_transformers(tmp_path, version):
    """Gemma2/Gemma3: norm + 1, embedding scale, tied head, softcapping, per-layer sliding window, head_dim != hidden/heads."""
    from gguf import GGUFReader

    from hf_ita_plugin.gguf import convert

    from gguf_models import tiny_gemma

    model_dir = tiny_gemma(tmp_path / f"gemma{version}", version)
    result = convert(model_dir, quant="f16", out_dir=tmp_path / "out", progress=False, strict=False)
    (report,) = result.reports
    assert report.ok, report.failures
    assert report.tokenization["matched"] == report.tokenization["total"]
    # the suite's passages are far longer than the 16-token window: the sliding layer is exercised
    assert report.logits["positions"] > 1000 and report.logits["top1_agreement_decisive"] >= 0.99
    assert report.logits["max_abs_delta"] < 0.1
    reader = GGUFReader(str(result.paths[0]))
    arch = f"gemma{version}"
    value = lambda key: reader.fields[key].parts[-1].tolist()  # noqa: E731
    assert "output.weight" not in _tensor_names(result.paths[0])
    assert value(f"{arch}.attention.sliding_window") == [16]
    pattern = reader.fields[f"{arch}.attention.sliding_window_pattern"]
    assert [bool(pattern.parts[i][0]) for i in pattern.data] == [True, False]  # per layer, as the config's layer_types
    assert value(f"{arch}.attention.key_length") == [32]
    assert value("tokenizer.ggml.add_space_prefix") == [False]
    if version == 2:
        assert value("gemma2.final_logit_softcapping") == [30.0] and value("gemma2.attn_logit_softcapping") == [50.0]
    else:
        assert value("gemma3.rope.freq_base") == [1000000.0] and value("gemma3.rope.freq_base_swa") == [10000.0]


def test_gemma_query_scale_llama_cpp_cannot_represent_is_refused(tmp_path):
    from gguf import GGUFWriter

    from hf_ita_plugin.gguf.architectures import ARCHITECTURES

    config = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "num_hidden_layers": 2,
              "intermediate_size": 128, "query_pre_attn_scalar": 64, "sliding_window": 16}
    writer = GGUFWriter(str(tmp_path / "x.gguf"), "gemma2")
    with pytest.raises(ModelError, match="query_pre_attn_scalar"):
        ARCHITECTURES["Gemma2ForCausalLM"].write_hparams(writer, config)
    config["query_pre_attn_scalar"] = 32
    config["layer_types"] = ["sliding_attention"]  # 1 entry for 2 layers
    with pytest.raises(ModelError, match="layer_types"):
        ARCHITECTURES["Gemma2ForCausalLM"].write_hparams(writer, config)


def test_gguf_describes_itself_as_llama_cpp_converter_does(tmp_path):
    """general.* keys from the model card and the parameter count (gguf.Metadata, as convert_hf_to_gguf)."""
    from gguf import GGUFReader

    from hf_ita_plugin.gguf import QUANT_TYPES
    from hf_ita_plugin.gguf.converter import write_gguf

    model_dir = tiny_mistral_spm(tmp_path / "SmolLM2-135M-Instruct-ita")
    (model_dir / "README.md").write_text(
        "---\nlicense: apache-2.0\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlanguage: [it]\n---\n# ita\n",
        encoding="utf-8")
    out = write_gguf(model_dir, tmp_path / "m.gguf", QUANT_TYPES["F32"], name="SmolLM2-135M-Instruct-ita", progress=False)
    reader = GGUFReader(out)

    def value(key):
        field = reader.get_field(key)
        assert field is not None, key
        return field.contents()

    total = sum(int(t.n_elements) for t in reader.tensors)
    assert value("general.name") == "SmolLM2-135M-Instruct-ita"
    assert value("general.license") == "apache-2.0"
    assert value("general.base_model.count") == 1
    assert value("general.base_model.0.name") == "SmolLM2 135M Instruct"
    assert value("general.base_model.0.organization") == "HuggingFaceTB"
    assert value("general.base_model.0.repo_url") == "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct"
    assert value("general.basename") == "SmolLM2" and value("general.finetune") and value("general.size_label")
    from gguf import size_label

    assert value("general.size_label") in {size_label(total, 0, 0, 0), "135M"}


@pytest.mark.slow
def test_bos_is_added_once_by_llama_cpp_chat_path(tmp_path):
    """add_bos_token is true where the template writes BOS, and llama.cpp's chat path never doubles it."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from gguf import GGUFReader
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from hf_ita_plugin.gguf import QUANT_TYPES
    from hf_ita_plugin.gguf.converter import write_gguf

    model_dir = tiny_mistral_spm(tmp_path / "mistral")
    out = write_gguf(model_dir, tmp_path / "m.gguf", QUANT_TYPES["F32"], progress=False)
    reader = GGUFReader(out)
    assert reader.get_field("tokenizer.ggml.add_bos_token").contents() is True
    template = reader.get_field("tokenizer.chat_template").contents()
    llm = llama_cpp.Llama(model_path=str(out), vocab_only=True, verbose=False)
    bos = llm.token_bos()
    formatter = Jinja2ChatFormatter(template=template, eos_token="</s>", bos_token="<s>")
    messages = [{"role": "user", "content": "Qual è la capitale d'Italia?"},
                {"role": "assistant", "content": "Roma."}, {"role": "user", "content": "E della Francia?"}]
    result = formatter(messages=messages)
    assert result.prompt.startswith("<s>") and result.added_special  # the template writes BOS itself
    ids = llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
    assert ids[0] == bos and ids.count(bos) == 1, ids[:5]
