"""``hf-ita autotrain-config``: the AutoTrain llm-sft config, checked against AutoTrain's own code.

The slow test downloads the autotrain-advanced wheel (never installed here: it pins transformers
4.48, peft 0.14, trl 0.13), builds a virtualenv with only the light libraries its parameter module
needs (pydantic, loguru, pyyaml: the versions the wheel pins), and runs AutoTrain's own code there:
``LLMTrainingParams`` and its base class, and ``AutoTrainConfigParser``'s task aliases and
``_parse_config``, taken verbatim from the wheel's source. Nothing of ours is stubbed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from hf_ita_plugin.bridges.autotrain import AUTOTRAIN_VERSION, autotrain_config, project_name
from hf_ita_plugin.cli.main import main
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MISTRAL = ROOT / "examples" / "mistral-7b-gpu.yaml"
CPU = ROOT / "examples" / "smollm2-135m-cpu.yaml"


def _export(overrides: list[str] | None = None, data_repo: str | None = "me/ita-chat"):
    return autotrain_config(RunConfig.from_yaml(MISTRAL, overrides), data_repo=data_repo)


def test_mistral_preset_maps_to_an_llm_sft_config():
    cfg = RunConfig.from_yaml(MISTRAL)
    out = _export().config
    p = out["params"]
    assert out["task"] == "llm-sft" and out["backend"] == "local"
    assert out["base_model"] == cfg.model.name_or_path
    assert out["data"] == {"path": "me/ita-chat", "train_split": "train", "valid_split": None,
                           "chat_template": "tokenizer", "column_mapping": {"text_column": "messages"}}
    t = cfg.training
    assert (p["lr"], p["batch_size"], p["gradient_accumulation"], p["seed"]) == (
        t.learning_rate, t.per_device_batch_size, t.gradient_accumulation_steps, t.seed)
    assert p["block_size"] == p["model_max_length"] == t.max_seq_length
    assert (p["lora_r"], p["lora_alpha"], p["lora_dropout"]) == (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout)
    assert p["peft"] is True and p["quantization"] == "int4" and p["target_modules"] == "all-linear"
    assert p["mixed_precision"] == "bf16" and p["scheduler"] == "cosine"


def test_no_token_is_ever_written(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecret")
    monkeypatch.setenv("HF_USERNAME", "someone")
    export = _export()
    assert export.config["hub"] == {"username": "${HF_USERNAME}", "token": "${HF_TOKEN}", "push_to_hub": True}
    assert "hf_secret" not in export.to_yaml() and "someone" not in export.to_yaml()


def test_what_autotrain_cannot_express_is_listed():
    notes = "\n".join(_export(["data.curriculum=lab", "training.num_epochs=1.5"]).unsupported)
    for needle in ("system prompt", "curriculum", "padding_free", "assistant-only", "generation markers",
                   "num_epochs 1.5"):
        assert needle in notes
    assert _export(["training.num_epochs=1.5"]).config["params"]["epochs"] == 2


def test_values_autotrain_spells_differently():
    export = _export(["model.template=chatml", "quantization.compute_dtype=float32", "quantization.mode=none",
                      "lora.target_modules=[q_proj, v_proj]", "training.output_dir=out/My run_2!"])
    p = export.config["params"]
    assert export.config["data"]["chat_template"] == "chatml"
    assert p["mixed_precision"] is None and p["quantization"] is None and p["target_modules"] == "q_proj,v_proj"
    assert export.config["project_name"] == "My-run-2"
    assert project_name("x" * 80) == "x" * 50


def test_data_must_be_a_hub_repo():
    with pytest.raises(ConfigError, match="not a Hub dataset"):
        autotrain_config(RunConfig.from_yaml(CPU))
    with pytest.raises(ConfigError, match="OWNER/NAME"):
        autotrain_config(RunConfig.from_yaml(CPU), data_repo="not a repo")
    assert autotrain_config(RunConfig.from_yaml(CPU, ["data.train=someone/dataset"])).config["data"]["path"] == \
        "someone/dataset"


def test_cli_writes_the_file_and_reports_on_stderr(tmp_path, capsys):
    target = tmp_path / "autotrain.yml"
    assert main(["autotrain-config", str(MISTRAL), "--data-repo", "me/ita-chat", "--output", str(target),
                 "--set", "training.learning_rate=1e-4"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "AutoTrain cannot express" in captured.err and "curriculum" not in captured.err
    written = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert written["params"]["lr"] == 1e-4 and written["data"]["path"] == "me/ita-chat"
    assert main(["autotrain-config", str(CPU)]) == 2
    assert "--data-repo" in capsys.readouterr().err


# ------------------------------------------------------------------ AutoTrain's own validation
_RUNNER = """
import json, os, sys, yaml
from autotrain.trainers.clm.params import LLMTrainingParams
from parser_parts import TASK_ALIASES, _parse_config

class Parser:  # what AutoTrainConfigParser.__post_init__ sets before calling _parse_config
    pass

p = Parser()
with open(sys.argv[1]) as f:
    p.config = yaml.safe_load(f)
p.task = TASK_ALIASES.get(p.config.get("task"), p.config.get("task"))
assert p.task == "lm_training", p.task
assert p.config.get("backend"), "Backend is required in the configuration file"
params = _parse_config(p)
unused = sorted(set(params) - set(LLMTrainingParams.model_fields))
if unused:
    sys.exit("Parameters supplied but not used: " + ", ".join(unused))
built = LLMTrainingParams(**params)
print(json.dumps({"params": built.model_dump(), "token_env": params.get("token")}))
"""


def _source_of(tree: ast.Module, text: str, name: str) -> str:
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return textwrap.dedent(ast.get_source_segment(text, node))
    raise AssertionError(f"{name} not found in the AutoTrain wheel")


@pytest.fixture(scope="module")
def autotrain_env(tmp_path_factory):
    """(python of an isolated venv, directory holding AutoTrain's parameter module and parser parts)."""
    tmp = tmp_path_factory.mktemp("autotrain")
    wheel_dir = tmp / "wheel"
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir),
                           f"autotrain-advanced=={AUTOTRAIN_VERSION}"], capture_output=True, text=True, timeout=300)
    wheels = list(wheel_dir.glob("autotrain_advanced-*.whl"))
    if done.returncode or not wheels:
        pytest.skip("autotrain-advanced wheel not installed (pip download failed: "
                    f"{(done.stderr or '').strip().splitlines()[-1:] or ''})")
    with zipfile.ZipFile(wheels[0]) as whl:
        read = {name: whl.read(name).decode("utf-8") for name in (
            "autotrain/__init__.py", "autotrain/logging.py", "autotrain/trainers/common.py",
            "autotrain/trainers/clm/params.py", "autotrain/parser.py")}
        pins = [line.split(": ", 1)[1] for line in whl.read(
            f"autotrain_advanced-{AUTOTRAIN_VERSION}.dist-info/METADATA").decode().splitlines()
            if line.startswith("Requires-Dist: ") and ";" not in line]
    pkg = tmp / "src" / "autotrain"
    (pkg / "trainers" / "clm").mkdir(parents=True)
    for name in ("__init__.py", "logging.py"):  # verbatim: they need loguru (torch/accelerate imports are optional)
        (pkg / name).write_text(read[f"autotrain/{name}"])
    (pkg / "trainers" / "__init__.py").write_text("")
    (pkg / "trainers" / "clm" / "__init__.py").write_text("")
    (pkg / "trainers" / "clm" / "params.py").write_text(read["autotrain/trainers/clm/params.py"])
    # common.py imports accelerate/transformers (torch) for its callbacks; the base class needs none of them
    common = read["autotrain/trainers/common.py"]
    (pkg / "trainers" / "common.py").write_text(
        "import os\nfrom pydantic import BaseModel\nfrom autotrain import is_colab, logger\n\n\n"
        + _source_of(ast.parse(common), common, "AutoTrainParams") + "\n")
    parser = read["autotrain/parser.py"]
    tree = ast.parse(parser)
    aliases = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   and ast.unparse(n.targets[0]) == "self.task_aliases")
    (tmp / "src" / "parser_parts.py").write_text(
        f"import os\n\nTASK_ALIASES = {aliases!r}\n\n\n" + _source_of(tree, parser, "_parse_config") + "\n")
    (tmp / "src" / "runner.py").write_text(_RUNNER)

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    wanted = [pin for pin in pins if pin.split("==")[0].lower() in ("pydantic", "loguru", "pyyaml")]
    assert len(wanted) == 3, pins
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *wanted], capture_output=True, text=True,
                          timeout=600)
    if done.returncode:
        pytest.skip(f"autotrain-advanced wheel not installed (its dependencies could not be installed: "
                    f"{done.stderr.strip().splitlines()[-1:]})")
    return python, tmp / "src"


def _validate(autotrain_env, config: dict, tmp_path: Path, env: dict | None = None):
    python, src = autotrain_env
    path = tmp_path / "autotrain.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run([str(python), str(src / "runner.py"), str(path)], cwd=src, capture_output=True, text=True,
                          timeout=120, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(src), **(env or {})})


@pytest.mark.slow
def test_exported_config_validates_with_autotrains_own_params(autotrain_env, tmp_path):
    target = tmp_path / "exported.yml"
    assert main(["autotrain-config", str(MISTRAL), "--data-repo", "me/ita-chat", "--output", str(target)]) == 0
    exported = yaml.safe_load(target.read_text(encoding="utf-8"))
    done = _validate(autotrain_env, exported, tmp_path, {"HF_TOKEN": "hf_from_env", "HF_USERNAME": "me"})
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout.strip().splitlines()[-1])
    p = built["params"]
    assert p["trainer"] == "sft" and p["model"] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert p["data_path"] == "me/ita-chat" and p["text_column"] == "messages"
    assert p["token"] == "hf_from_env" and p["username"] == "me" and p["push_to_hub"] is True
    assert p["lr"] == 2e-4 and p["block_size"] == 2048 and p["quantization"] == "int4" and p["peft"] is True


@pytest.mark.slow
@pytest.mark.parametrize("breakage", ["misspelled key", "wrong type", "missing section"])
def test_autotrain_rejects_a_broken_config(autotrain_env, tmp_path, breakage):
    config = _export().config
    if breakage == "misspelled key":
        config["params"]["learning_rate"] = config["params"].pop("lr")
    elif breakage == "wrong type":
        config["params"]["lora_r"] = "sixteen"
    else:
        del config["data"]["column_mapping"]
    done = _validate(autotrain_env, config, tmp_path)
    assert done.returncode != 0
    assert {"misspelled key": "learning_rate", "wrong type": "lora_r", "missing section": "column_mapping"}[breakage] \
        in done.stderr


@pytest.mark.slow
def test_autotrain_job_command_decodes_a_config_autotrain_accepts(autotrain_env, tmp_path):
    """The job's real shell runs here; ``autotrain --config`` is AutoTrain's own parser and parameter model."""
    from hf_ita_plugin.jobs.autotrain import build_autotrain_job_spec

    python, src = autotrain_env
    spec, _ = build_autotrain_job_spec(RunConfig.from_yaml(MISTRAL), flavor="a100-large", output_repo="me/mistral-ita",
                                       data_repo="me/mistral-ita-data")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    autotrain = bin_dir / "autotrain"  # `autotrain --config FILE` -> AutoTrain's validation of FILE
    autotrain.write_text(f'#!/bin/sh\n[ "$1" = --config ] || exit 64\ncd {src} && PYTHONPATH={src} exec {python} runner.py "$2"\n')
    autotrain.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **spec.env, "HF_TOKEN": "hf_job_secret"}
    done = subprocess.run(spec.command, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    p = json.loads(done.stdout.strip().splitlines()[-1])["params"]
    assert p["project_name"] == "mistral-ita" and p["username"] == "me" and p["token"] == "hf_job_secret"
    assert p["data_path"] == "me/mistral-ita-data" and p["model"] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert "hf_job_secret" not in json.dumps(spec.describe())
