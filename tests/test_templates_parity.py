"""Parity between transformers and llama.cpp (llama-cpp-python's Jinja chat formatter) on real GGUFs."""

from __future__ import annotations

import json

import pytest

from hf_ita_plugin.models.embedded import embedded_gguf_path, ensure_embedded_model
from hf_ita_plugin.errors import ModelError
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT, apply_template, check_gguf_template_parity, get_template

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")
from transformers import AutoTokenizer  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "Qual è la capitale d'Italia?"},
     {"role": "assistant", "content": "La capitale è Roma. 🇮🇹"}],
    [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
     {"role": "user", "content": "Scrivi una funzione Python."},
     {"role": "assistant", "content": "```python\ndef saluta():\n    print('Ciao, mondo! 👋')\n```"},
     {"role": "user", "content": "Perché così?"},
     {"role": "assistant", "content": "Perché è più leggibile: così è più facile capirla."}],
]


@pytest.fixture(scope="module")
def smol_dir():
    return ensure_embedded_model(verbose=False)


@pytest.fixture(scope="module")
def gguf_metadata():
    """The embedded GGUF's architecture and key/value fields, read once with gguf-py."""
    reader = gguf.GGUFReader(embedded_gguf_path(), "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    fields = []
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        fields.append((field.name, field.contents(), value_type, sub_type))
    return arch, fields


def vocab_gguf_with_template(metadata, target, template: str | None):
    """A vocabulary-only GGUF (no tensors) with the embedded model's tokenizer and ``template``."""
    arch, fields = metadata
    writer = gguf.GGUFWriter(str(target), arch=arch)
    for name, value, value_type, sub_type in fields:
        if name == gguf.Keys.Tokenizer.CHAT_TEMPLATE:
            continue
        writer.add_key_value(name, value, value_type, sub_type=sub_type)
    if template is not None:
        writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return target


def test_embedded_gguf_renders_like_transformers(smol_dir):
    tok = AutoTokenizer.from_pretrained(smol_dir)
    report = check_gguf_template_parity(embedded_gguf_path(), tok, CONVERSATIONS)
    assert report.template_found and report.template_equal
    assert report.gguf_bos_token == "<|im_start|>" and report.gguf_eos_token == "<|im_end|>"
    # one training rendering + one inference prompt per conversation
    assert [(r.index, r.add_generation_prompt) for r in report.results] == [(0, False), (0, True), (1, False), (1, True)]
    assert report.ok, report.summary()
    for r in report.results:
        assert r.hf_text == r.gguf_text and r.hf_ids == r.gguf_ids and len(r.hf_ids) > 10
        assert not r.hf_double_bos and not r.gguf_double_bos
    assert report.results[1].gguf_text.endswith("<|im_start|>assistant\n")
    assert "4/4" in report.summary()
    summary = report.to_dict()
    assert summary["ok"] is True and summary["renderings"] == 4 and summary["failures"] == []
    json.dumps(summary)


def test_parity_detects_a_template_that_differs_from_the_gguf(smol_dir):
    tok = apply_template(AutoTokenizer.from_pretrained(smol_dir), "zephyr")
    report = check_gguf_template_parity(embedded_gguf_path(), tok, CONVERSATIONS[:1])
    assert not report.template_equal
    assert not report.ok
    assert "text differs at character" in report.failures[0].first_difference()
    assert report.to_dict()["failures"][0]["problem"].startswith("text differs")
    with pytest.raises(ModelError, match="parity check failed"):
        report.raise_for_mismatch()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chatml", "smollm2", "qwen2.5", "zephyr", "llama-2", "alpaca-it"])
def test_registry_template_embedded_in_a_gguf_matches_training(smol_dir, gguf_metadata, tmp_path, name):
    """The registry Jinja (without markers) written into a GGUF renders and tokenizes like training."""
    tok = apply_template(AutoTokenizer.from_pretrained(smol_dir), name)
    path = vocab_gguf_with_template(gguf_metadata, tmp_path / f"{name}.gguf", get_template(name).inference_source)
    report = check_gguf_template_parity(path, tok, CONVERSATIONS)
    assert report.template_equal
    assert report.ok, report.summary()


@pytest.mark.slow
def test_llama_cpp_python_tolerates_generation_markers_in_a_gguf(smol_dir, gguf_metadata, tmp_path):
    """If a GGUF carries the marked template, llama-cpp-python still renders it like training
    (its formatter passes {% generation %} through); other engines may not: prefer inference_source."""
    tok = apply_template(AutoTokenizer.from_pretrained(smol_dir), "chatml")
    path = vocab_gguf_with_template(gguf_metadata, tmp_path / "marked.gguf", get_template("chatml").source)
    report = check_gguf_template_parity(path, tok, CONVERSATIONS)
    assert report.ok, report.summary()


@pytest.mark.slow
def test_tokens_added_to_the_tokenizer_but_missing_from_the_gguf_are_caught(smol_dir, gguf_metadata, tmp_path):
    """Same text, different ids: the Llama 3 control tokens were added to the tokenizer, not to the GGUF."""
    with pytest.warns(UserWarning, match="added 3 token"):
        tok = apply_template(AutoTokenizer.from_pretrained(smol_dir), "llama-3")
    path = vocab_gguf_with_template(gguf_metadata, tmp_path / "l3.gguf", get_template("llama-3").inference_source)
    report = check_gguf_template_parity(path, tok, CONVERSATIONS[:1])
    assert not report.ok
    assert all(r.text_equal and not r.ids_equal for r in report.results)
    assert "token ids differ at position 1" in report.summary()


@pytest.mark.slow
def test_gguf_without_template_is_reported(smol_dir, gguf_metadata, tmp_path):
    path = vocab_gguf_with_template(gguf_metadata, tmp_path / "notemplate.gguf", None)
    report = check_gguf_template_parity(path, AutoTokenizer.from_pretrained(smol_dir), CONVERSATIONS)
    assert not report.template_found and not report.ok
    assert "no chat template" in report.summary()


def test_parity_input_errors(smol_dir, tmp_path):
    with pytest.raises(ModelError, match="GGUF file not found"):
        check_gguf_template_parity(tmp_path / "nope.gguf", smol_dir, CONVERSATIONS)
    with pytest.raises(ModelError, match="at least one conversation"):
        check_gguf_template_parity(embedded_gguf_path(), smol_dir, [])
