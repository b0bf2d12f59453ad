"""ItalianSFT end to end: a real QLoRA run (bitsandbytes NF4 on CPU) of a few steps on the embedded model."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import TrainerCallback

from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError, DataError, ModelError
from hf_ita_plugin.training.recipe import ItalianSFT

pytestmark = pytest.mark.slow

# Small enough for a few seconds a step on 2 cores, large enough to exercise every stage.
TINY = [
    "data.max_train_examples=8",
    "data.max_eval_examples=3",
    "training.max_seq_length=256",
    "training.per_device_batch_size=4",
    "training.max_steps=4",
    "training.save_steps=2",
    "training.eval_steps=4",
    "training.logging_steps=1",
    "training.warmup_ratio=0.0",
    "evaluation.bpb_max_chars=600",
    "evaluation.max_length=256",
]


def tiny_recipe(output_dir, *extra, callbacks=None):
    cfg = RunConfig.from_preset("smollm2-135m-cpu", TINY + [f"training.output_dir={output_dir}", *extra])
    return ItalianSFT(cfg, callbacks=callbacks)


class StopAfter(TrainerCallback):
    """Simulates a crash (e.g. the machine going away) right after a given step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step + 1:
            raise RuntimeError("simulated interruption")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    return tiny_recipe(out).train()


def test_outputs_are_complete_and_safetensors_only(finished_run):
    files = {p.name for p in finished_run.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert not {f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))}
    assert finished_run.loss_curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = RunConfig.from_yaml(finished_run.config_path)
    assert saved.training.max_steps == 4 and saved.quantization.mode == "nf4"
    metrics = json.loads(finished_run.metrics_path.read_text())
    assert metrics["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert metrics["train"]["steps"] == 4
    assert metrics["train"]["trained_tokens"] > 0 and metrics["train"]["tokens_per_second"] > 0
    assert metrics["train"]["peak_memory_mb"]["process_rss"] > 100
    for stage in ("before", "after"):
        assert metrics["eval"][stage]["bits_per_byte"] > 0
        assert metrics["eval"][stage]["response_loss"] > 0
    assert len([h for h in metrics["loss_history"] if "loss" in h]) == 4


def test_answers_json_holds_the_answers_the_quality_figures_score(finished_run):
    from hf_ita_plugin.evaluation.quality import italian_prompts, italian_rate
    from hf_ita_plugin.evaluation.repetition import echo_rate, loop_rate
    from hf_ita_plugin.templates.system_prompt import DEFAULT_SYSTEM_PROMPT

    answers = json.loads((finished_run.output_dir / "answers.json").read_text())
    config = RunConfig.from_yaml(finished_run.config_path)
    questions = [conv[-1]["content"] for conv in italian_prompts(config.evaluation.answer_prompts)]
    assert set(answers) == {"before", "after"}
    for stage, suffixes in answers.items():
        assert set(suffixes) == {"with_system_prompt", "without_system_prompt"}
        for setting, rows in suffixes.items():
            assert [row["prompt"] for row in rows] == questions
            texts = [row["answer"] for row in rows]
            assert all(isinstance(t, str) for t in texts) and any(t.strip() for t in texts)
            suffix = "" if setting == "with_system_prompt" else "_no_system"
            ev = finished_run.metrics["eval"][stage]
            assert ev[f"italian_rate{suffix}"] == round(italian_rate(texts).rate, 4)
            assert ev[f"loop_rate{suffix}"] == round(loop_rate(texts) or 0.0, 4)
            system = DEFAULT_SYSTEM_PROMPT if setting == "with_system_prompt" else ""
            assert ev[f"echo_rate{suffix}"] == round(echo_rate(texts, [[system, q] for q in questions]) or 0.0, 4)


def test_training_moves_the_loss(finished_run):
    ev = finished_run.metrics["eval"]
    # a few steps at lr 3e-4 on Italian answers must lower the held-out response loss (a broken
    # backward, such as 4-bit layers stuck in bitsandbytes' packed CPU layout, barely moves it)
    assert ev["after"]["response_loss"] < ev["before"]["response_loss"] - 1e-3
    assert ev["change"]["response_loss"] < 0


def test_adapter_reloads_with_auto_peft_and_changes_logits(finished_run):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = finished_run.adapter_dir
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    assert "<|im_start|>assistant" in tokenizer.chat_template
    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(finished_run.metrics["base_model_path"], dtype=torch.float32)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Qual è la capitale d'Italia?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        tuned_logits = model(input_ids=ids).logits
        base_logits = base(input_ids=ids).logits
        with model.disable_adapter():
            disabled_logits = model(input_ids=ids).logits
    assert torch.allclose(disabled_logits, base_logits, atol=1e-4)
    assert (tuned_logits - base_logits).abs().max().item() > 1e-3


def test_model_is_real_qlora_on_every_linear_layer(tmp_path):
    import bitsandbytes as bnb

    recipe = tiny_recipe(tmp_path / "out")
    model = recipe.load_model()
    layer = model.base_model.model.model.layers[0]
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        module = getattr(layer.self_attn, name)
        assert isinstance(module.base_layer, bnb.nn.Linear4bit)
        assert module.base_layer.weight.quant_type == "nf4"
        assert module.base_layer.weight.quant_state.nested  # double quantization
    for name in ("gate_proj", "up_proj", "down_proj"):
        assert hasattr(getattr(layer.mlp, name), "lora_A")
    n_layers = model.config.num_hidden_layers
    lora_modules = [n for n, _ in model.named_modules() if n.endswith("lora_A")]
    assert len(lora_modules) == 7 * n_layers
    assert not (tmp_path / "out").exists()  # loading writes nothing


def test_training_labels_are_exactly_the_assistant_tokens_plus_eos(tmp_path):
    recipe = tiny_recipe(tmp_path / "out", "data.max_train_examples=6", "training.max_seq_length=1024",
                         "training.batching=padding_free", "quantization.compute_dtype=float32")
    tokenizer = recipe.load_tokenizer()
    data = recipe.prepare_data(tokenizer)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for example in data.train:
        ids, mask = example["input_ids"], example["assistant_masks"]
        assert len(ids) < 1024  # nothing truncated: every answer is complete
        trained = [t for t, m in zip(ids, mask) if m]
        assert trained and trained[-1] == end_id  # every answer ends with the end-of-turn token
        assert trained.count(end_id) == sum(1 for i, t in enumerate(ids) if t == end_id and mask[i])
        assert "<|im_start|>" not in tokenizer.decode(trained)  # no role headers in the loss
    # ... and TRL's collator turns them into labels for exactly those tokens
    model = recipe.load_model()
    trainer = recipe._build_trainer(model, tokenizer, data, tmp_path / "ckpt")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    labels = batch["labels"][0]
    expected = []
    for example in data.train[:3]:
        masked = [t if m else -100 for t, m in zip(example["input_ids"], example["assistant_masks"])]
        masked[0] = -100
        expected += masked
    assert labels.tolist() == expected
    assert "position_ids" in batch and "attention_mask" not in batch  # padding-free batches
    # TRL casts QLoRA adapters to bf16 (60x slower matmuls on CPUs without bf16); the recipe keeps fp32
    trainable = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}


def test_curriculum_trains_phases_in_order(tmp_path):
    recipe = tiny_recipe(tmp_path / "out", "data.max_train_examples=40", "data.curriculum=lab",
                         "training.max_seq_length=1024", "training.batching=padding_free")
    tokenizer = recipe.load_tokenizer()
    data = recipe.prepare_data(tokenizer)
    assert [name for name, _ in data.phases] == ["knowledge", "foundational_skills", "compositional_skills"]
    assert sum(n for _, n in data.phases) == len(data.train) == 40
    trainer = recipe._build_trainer(recipe.load_model(), tokenizer, data, tmp_path / "ckpt")
    # the trainer feeds the rows in curriculum order, not shuffled
    fed = [t for batch in trainer.get_train_dataloader() for t in batch["input_ids"].flatten().tolist()]
    assert fed == [t for row in data.train for t in row["input_ids"]]


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated interruption"):
        tiny_recipe(out, callbacks=[StopAfter(2)]).train()
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / "adapter").exists() and not (out / "metrics.json").exists()  # nothing half-written
    with pytest.raises(ConfigError, match="already holds a run"):
        tiny_recipe(out).train()
    result = tiny_recipe(out).train(resume=True)
    assert result.metrics["train"]["steps"] == 4 and result.metrics["train"]["resumed"]
    steps_logged = [h["step"] for h in result.metrics["loss_history"] if "loss" in h]
    assert steps_logged and min(steps_logged) >= 1 and max(steps_logged) == 4
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert result.metrics["eval"]["before"]  # carried over from the interrupted run


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint to resume"):
        tiny_recipe(tmp_path / "out").train(resume=True)


def test_bad_inputs_fail_before_writing_anything(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with pytest.raises(ModelError, match="cannot load the tokenizer of model '/nonexistent/model'"):
        tiny_recipe(out, "model.name_or_path=/nonexistent/model").train()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="no-such-org/no-such-model"):
        tiny_recipe(out, "model.name_or_path=no-such-org/no-such-model").train()

    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="the dataset is empty"):
        tiny_recipe(out, f"data.train={empty}").train()

    no_answer = tmp_path / "no_answer.jsonl"
    no_answer.write_text(json.dumps({"instruction": "Scrivi una poesia", "input": ""}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 0: .* cannot tell the format"):
        tiny_recipe(out, f"data.train={no_answer}").train()
    with pytest.raises(DataError, match="row 0: .*missing field 'output'"):
        tiny_recipe(out, f"data.train={no_answer}", "data.format=alpaca").train()

    ends_with_user = tmp_path / "ends_with_user.jsonl"
    ends_with_user.write_text(json.dumps({"messages": [{"role": "user", "content": "Ciao"}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 0"):
        tiny_recipe(out, f"data.train={ends_with_user}").train()
    assert not out.exists()


def test_tokenizer_without_chat_template_is_a_clear_error(tmp_path):
    from transformers import AutoTokenizer

    from hf_ita_plugin.models.embedded import ensure_embedded_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_embedded_model())
    tokenizer.chat_template = None
    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(tok_dir)
    for leftover in ("chat_template.jinja", "chat_template.json"):
        if (tok_dir / leftover).exists():
            os.remove(tok_dir / leftover)
    cfg = RunConfig.from_preset("smollm2-135m-cpu", TINY + [f"training.output_dir={tmp_path / 'out'}", "model.template=null"])
    recipe = ItalianSFT(cfg, model=torch.nn.Linear(1, 1), tokenizer=AutoTokenizer.from_pretrained(tok_dir))
    with pytest.raises(ModelError, match="chat template"):
        recipe.train()
    assert not (tmp_path / "out").exists()


def test_trainer_does_not_repeat_the_after_eval_at_the_last_step(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import DefaultFlowCallback

    from hf_ita_plugin.training.trainer import SkipFinalEval

    args = TrainingArguments(output_dir=str(tmp_path), eval_strategy="steps", eval_steps=10, report_to="none")
    flow, skip = DefaultFlowCallback(), SkipFinalEval()

    def should_evaluate(step, max_steps):
        state = TrainerState(global_step=step, max_steps=max_steps, eval_steps=10)
        control = flow.on_step_end(args, state, TrainerControl())
        return skip.on_step_end(args, state, control).should_evaluate

    assert should_evaluate(24, 24) is False  # transformers alone would evaluate here; the recipe's "after" eval does
    assert should_evaluate(10, 24) and should_evaluate(20, 24)  # periodic evals still run
    assert should_evaluate(30, 30)  # a periodic eval that falls on the last step is kept
