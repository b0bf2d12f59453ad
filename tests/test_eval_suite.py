"""The evaluation suite on the embedded SmolLM2 and real Italian text; base vs fine-tune on a real adapter."""

from __future__ import annotations

import json
import random

import pytest
import torch
import yaml

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.data import bundled_data_path
from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID, ensure_embedded_model
from hf_ita_plugin.errors import EvaluationError
from hf_ita_plugin.evaluation.metrics import bits_per_byte
from hf_ita_plugin.evaluation.quality import generate_answers, italian_prompts
from hf_ita_plugin.evaluation.suite import EvalTarget, load_target, parse_tasks, resolve_target, run_eval
from hf_ita_plugin.rundir import RunDir

FAST = {"prompts": 2, "max_new_tokens": 12, "bpb_max_chars": 700, "heldout_limit": 6}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: a 135M model gains nothing from two, and on a busy 2-core machine
    (CI runs other jobs beside) two spinning threads make every forward pass many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def embedded():
    path = str(ensure_embedded_model(verbose=False))
    model, tokenizer = load_target(EvalTarget(path, EMBEDDED_HUB_ID))
    return model, tokenizer


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    """A training OUTPUT_DIR as the recipe leaves it, with a real peft adapter (non-zero LoRA B)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = ensure_embedded_model(verbose=False)
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    run = RunDir(out)
    model.save_pretrained(run.adapter_dir)
    AutoTokenizer.from_pretrained(base).save_pretrained(run.adapter_dir)
    run.metrics_path.write_text(json.dumps({  # as written before metrics.json had a schema_version
        "base_model": EMBEDDED_HUB_ID, "base_model_path": "/not/on/this/machine",
        "eval": {"before": {"response_loss": 9.0}, "after": {"response_loss": 8.0}},
    }), encoding="utf-8")
    run.config_path.write_text(yaml.safe_dump({"model": {"name_or_path": None},
                                                          "data": {"system_prompt": "default"}}), encoding="utf-8")
    return out


def test_bits_per_byte_of_the_embedded_model_on_italian_prose(embedded):
    model, tokenizer = embedded
    prose = bundled_data_path("prose_it.txt").read_text(encoding="utf-8")[:1500]
    real = bits_per_byte(model, tokenizer, prose, progress=False)
    words = prose.split()
    random.Random(0).shuffle(words)
    shuffled = bits_per_byte(model, tokenizer, " ".join(words), progress=False)
    assert 0.5 < real.bits_per_byte < 4.0
    assert shuffled.bits_per_byte > real.bits_per_byte + 0.3  # real Italian is far more predictable


def test_generation_is_greedy_deterministic_and_batch_independent(embedded):
    model, tokenizer = embedded
    prompts = italian_prompts(2)
    one = generate_answers(model, tokenizer, prompts, max_new_tokens=10, batch_size=1, progress=False)
    two = generate_answers(model, tokenizer, prompts, max_new_tokens=10, batch_size=2, progress=False)
    assert one == two and all(a.strip() for a in one)
    assert prompts[0][-1]["role"] == "user"


def test_single_model_run(tmp_path):
    result = run_eval("embedded", "bpb,responses,italian-rate", out=tmp_path / "m.json", progress=False, **FAST)
    metrics = result["metrics"]
    assert set(metrics) == {"bits_per_byte", "response_loss", "italian_rate", "distinct_1", "distinct_2", "answer_chars_mean"}
    assert 0.5 < metrics["bits_per_byte"] < 4 and 0.5 < metrics["response_loss"] < 8
    # a share of the FAST["prompts"] answers: a whole number of them, and the embedded model answers
    # Italian prompts with the Italian system prompt in Italian at least some of the time
    answered = metrics["italian_rate"] * FAST["prompts"]
    assert answered == pytest.approx(round(answered)) and metrics["italian_rate"] > 0
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["metrics"] == metrics


def test_output_dir_before_after(output_dir, tmp_path):
    run = RunDir(output_dir)
    target = resolve_target(str(output_dir))
    assert target.adapter_dir == run.adapter_dir and target.base_id == EMBEDDED_HUB_ID
    result = run_eval(str(output_dir), "bpb,italian-rate", progress=False, **FAST)
    base = run_eval("embedded", "bpb", progress=False, **FAST)["metrics"]
    assert result["before"]["bits_per_byte"] == pytest.approx(base["bits_per_byte"], abs=1e-5)  # adapter disabled = base
    assert result["after"]["bits_per_byte"] != pytest.approx(result["before"]["bits_per_byte"], abs=1e-5)
    metrics = json.loads(run.metrics_path.read_text(encoding="utf-8"))
    assert metrics["schema_version"] == 1 and metrics["base_model_path"] == "/not/on/this/machine"  # old file upgraded
    assert metrics["eval"]["before"]["response_loss"] == 9.0  # the recipe's numbers are kept
    assert metrics["eval"]["before"]["bits_per_byte"] == result["before"]["bits_per_byte"]
    assert metrics["eval"]["change"]["response_loss"] == pytest.approx(-1 / 9, abs=1e-4)
    table = run.eval_report_path.read_text(encoding="utf-8")
    assert "| bits_per_byte ↓ |" in table and "| italian_rate ↑ |" in table and "| response_loss ↓ | 9.0000 | 8.0000 | -11.1% ✓ |" in table


def test_task_parsing_and_cli_errors(capsys, tmp_path):
    assert parse_tasks("bpb, lm-eval:arc_it") == ["bpb", "lm-eval:arc_it"]
    with pytest.raises(EvaluationError, match="unknown evaluation task 'perplexity'"):
        parse_tasks("bpb,perplexity")
    assert main(["eval", "embedded", "--tasks", "lm-eval:"]) == 2
    assert "unknown evaluation task" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nessuno")]) == 2
    assert "not a training output directory" in capsys.readouterr().err
