"""LoRA: OUTPUT_DIR merged in full precision before conversion, and the adapter as a GGUF applied by llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gguf_models import tiny_mistral_spm
from hf_ita_plugin.rundir import RunDir, RunMetrics


def _training_output_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A training OUTPUT_DIR as the recipe writes it (adapter/ with tokenizer, metrics.json), built with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = tiny_mistral_spm(tmp_path / "base")
    out = tmp_path / "run"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # make the update large enough to move the logits clearly
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(3.0)
    run = RunDir(out)
    peft_model.save_pretrained(str(run.adapter_dir))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(run.adapter_dir))
    cfg_file = run.adapter_config_path
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = "someone/not-on-this-machine"  # resolved through metrics.json
    cfg_file.write_text(json.dumps(cfg))
    run.write_metrics(RunMetrics(base_model="someone/not-on-this-machine", base_model_path=str(base_dir)))
    return out, base_dir


@pytest.mark.slow
def test_output_dir_merge_and_adapter_gguf_match(tmp_path):
    import numpy as np

    from hf_ita_plugin.cli.main import main
    from hf_ita_plugin.gguf import convert, export_adapter, verify
    from hf_ita_plugin.gguf.merge import merge_adapter
    from hf_ita_plugin.gguf.verify import _gguf_logits, _load_llama

    run, base_dir = _training_output_dir(tmp_path)

    # 1. convert OUTPUT_DIR: the adapter is merged first, verification is against the merged model
    result = convert(run, quant="f32", progress=False)
    assert result.merged_adapter == run / "adapter"
    assert result.paths == [run / "gguf" / "run-F32.gguf"] and result.reports[0].ok, result.reports[0].failures
    assert not [p for p in (run / "gguf").iterdir() if p.name.startswith(".")]  # work dir cleaned

    # 2. adapter GGUF through the CLI, applied by llama.cpp on top of the base GGUF, with its Ollama Modelfile
    base_result = convert(base_dir, quant="f32", out_dir=tmp_path / "base-gguf", verify=False, modelfile=False, progress=False)
    assert main(["gguf", "adapter", str(run), "--base-gguf", str(base_result.paths[0])]) == 0
    lora = run / "adapter" / "adapter-lora.gguf"
    modelfile = run / "adapter" / "adapter-lora.Modelfile"
    lines = modelfile.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["FROM ../../base-gguf/base-F32.gguf", "ADAPTER ./adapter-lora.gguf"]
    # Ollama resolves both paths from the Modelfile's folder: they name the files just written
    assert (modelfile.parent / lines[0].split(" ", 1)[1]).resolve() == base_result.paths[0].resolve()
    assert (modelfile.parent / lines[1].split(" ", 1)[1]).resolve() == lora.resolve()
    assert any(line.startswith('TEMPLATE """') for line in lines) and "PARAMETER stop \"</s>\"" in lines
    merged_dir = merge_adapter(run / "adapter", base_dir, tmp_path / "merged")
    report = verify(base_result.paths[0], against=merged_dir, lora_path=lora)
    assert report.ok, report.failures
    assert report.logits["top1_agreement"] >= 0.99
    # the suite scores thousands of positions up to ~1k tokens deep: rounding of the runtime LoRA accumulates a little
    assert report.logits["mean_abs_delta"] < 0.01 and report.logits["max_abs_delta"] < 0.5

    # the adapter really changes the logits (the base alone does not match the merged model)
    ids = [1, 300, 301, 302, 303]
    plain = _load_llama(base_result.paths[0], None, None)
    with_lora = _load_llama(base_result.paths[0], lora, None)
    assert float(np.abs(_gguf_logits(plain, ids) - _gguf_logits(with_lora, ids)).max()) > 0.5
    plain.close()
    with_lora.close()

    # 3. on-demand verify against the OUTPUT_DIR merges again and agrees with the saved verdict
    assert main(["gguf", "verify", str(result.paths[0]), "--against", str(run)]) == 0


def test_adapter_modelfile_refuses_a_missing_or_adapter_base_and_writes_nothing(tmp_path):
    from hf_ita_plugin.cli.main import main

    run, _ = _training_output_dir(tmp_path)
    lora = run / "adapter" / "adapter-lora.gguf"
    assert main(["gguf", "adapter", str(run), "--base-gguf", str(tmp_path / "missing.gguf")]) != 0
    assert not lora.exists() and not lora.with_suffix(".Modelfile").exists()
    assert main(["gguf", "adapter", str(run)]) == 0  # the LoRA alone, then offered as the "base"
    other = tmp_path / "other-lora.gguf"
    other.write_bytes(lora.read_bytes())
    lora.unlink()
    assert main(["gguf", "adapter", str(run), "--base-gguf", str(other)]) != 0
    (tmp_path / "not.gguf").write_text("ciao")
    assert main(["gguf", "adapter", str(run), "--base-gguf", str(tmp_path / "not.gguf")]) != 0
    assert not lora.exists() and not lora.with_suffix(".Modelfile").exists()
