"""The run config: YAML <-> Python, presets, overrides, and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hf_ita_plugin.cli.main import main as cli_main
from hf_ita_plugin.config import RunConfig, apply_overrides, list_presets
from hf_ita_plugin.errors import ConfigError


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_presets_cover_the_supported_families():
    assert {"smollm2-135m-cpu", "mistral-7b", "llama-3.1-8b", "qwen2.5-7b", "gemma-2-9b"} <= set(list_presets())
    for name in list_presets():
        cfg = RunConfig.from_preset(name)
        assert cfg.quantization.mode == "nf4" and cfg.quantization.double_quant
        assert cfg.lora.target_modules == "all-linear"


def test_gpu_presets_name_their_model_and_cpu_preset_uses_embedded():
    assert RunConfig.from_preset("mistral-7b").model.name_or_path.startswith("mistralai/")
    assert RunConfig.from_preset("smollm2-135m-cpu").model.name_or_path is None


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig.from_preset("qwen2.5-7b", ["lora.r=32", "training.learning_rate=5e-5"])
    again = RunConfig.from_yaml(write(tmp_path, cfg.to_yaml()))
    assert again == cfg
    assert again.lora.r == 32 and again.training.learning_rate == pytest.approx(5e-5)


def test_preset_plus_file_values_plus_overrides(tmp_path):
    path = write(tmp_path, "preset: smollm2-135m-cpu\ntraining:\n  max_steps: 7\n")
    cfg = RunConfig.from_yaml(path, ["training.max_steps=3", "data.system_prompt=none"])
    assert cfg.training.max_steps == 3
    assert cfg.training.max_seq_length == 256  # from the preset
    assert cfg.data.system_prompt == "none"


def test_scientific_notation_string_is_a_number(tmp_path):
    cfg = RunConfig.from_yaml(write(tmp_path, "training:\n  learning_rate: 2e-4\n"))
    assert cfg.training.learning_rate == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("training:\n  learnin_rate: 0.1\n", "unknown key 'training.learnin_rate'"),
        ("training:\n  per_device_batch_size: eight\n", "training.per_device_batch_size must be an integer"),
        ("quantization:\n  mode: int3\n", "quantization.mode must be one of nf4, fp4, none"),
        ("training:\n  gradient_checkpointing: 'yes'\n", "training.gradient_checkpointing must be true or false"),
        ("lora:\n  dropout: 1.5\n", "lora.dropout must be between 0.0 and 0.9"),
        ("training: [1, 2]\n", "training must be a mapping"),
        ("preset: mistral-8b\n", "unknown preset 'mistral-8b'"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("data:\n  curriculum: knowledge-first\n", "data.curriculum must be one of none, lab, lab-two-phase"),
        ("data:\n  curriculum: lab\ntraining:\n  batching: packed\n", "data.curriculum 'lab' needs training.batching"),
    ],
)
def test_errors_name_the_key_and_allowed_values(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value) or "preset" in str(info.value)


def test_unknown_key_suggests_the_close_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml(write(tmp_path, "training:\n  learnin_rate: 0.1\n"))
    assert "did you mean 'learning_rate'" in str(info.value)


def test_malformed_yaml_names_line(tmp_path):
    path = write(tmp_path, "training:\n  max_steps: 5\n lora: [\n")
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml(path)
    assert "malformed YAML at line" in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        RunConfig.from_yaml("/nonexistent/cfg.yaml")


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides({}, ["training.max_steps"])
    with pytest.raises(ConfigError, match="unknown key 'training.nope'"):
        RunConfig.from_preset("smollm2-135m-cpu", ["training.nope=1"])


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    path = write(tmp_path, "quantization:\n  mode: int3\n")
    out_dir = tmp_path / "out"
    code = cli_main(["train", str(path), "--output-dir", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "hf-ita: error:" in err and "quantization.mode must be one of" in err
    assert "Traceback" not in err
    assert not out_dir.exists()


def test_cli_presets_lists_and_prints(capsys):
    assert cli_main(["presets"]) == 0
    assert "mistral-7b" in capsys.readouterr().out
    assert cli_main(["presets", "gemma-2-9b"]) == 0
    assert "google/gemma-2-9b-it" in capsys.readouterr().out


def test_every_example_config_loads_and_keeps_its_preset_model():
    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert len(examples) >= 6
    for path in examples:
        cfg = RunConfig.from_yaml(path)
        preset = yaml.safe_load(path.read_text(encoding="utf-8"))["preset"]
        base = RunConfig.from_preset(preset)
        assert (cfg.model.name_or_path, cfg.model.embedded, cfg.model.template) == \
            (base.model.name_or_path, base.model.embedded, base.model.template), path.name
