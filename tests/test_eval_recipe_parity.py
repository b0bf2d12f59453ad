"""The recipe's before/after evaluation and ``hf-ita eval`` measure through the same function:
the same model on the same data gives the same bits per byte and response loss."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.evaluation.suite import evaluate_model
from hf_ita_plugin.training.recipe import ItalianSFT
from test_hub_support import tiny_base


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tiny_base(tmp_path_factory.mktemp("tiny-base"))
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(str(folder))


def test_recipe_and_suite_give_identical_heldout_metrics(tiny):
    model, base_tokenizer = tiny
    system_prompt = "default"
    cfg = RunConfig.from_preset("smollm2-135m-cpu", [
        "data.eval=bundled-heldout", "data.max_train_examples=4", f"data.system_prompt={system_prompt}",
        "training.max_seq_length=256", "evaluation.max_length=256", "evaluation.bpb_max_chars=1500",
        "evaluation.answer_quality=false"])
    recipe = ItalianSFT(cfg, model=model, tokenizer=base_tokenizer)
    tokenizer = recipe.load_tokenizer()
    data = recipe.prepare_data(tokenizer)
    from_recipe = recipe.evaluate(model, tokenizer, data, label="before")
    from_suite, details = evaluate_model(model, tokenizer, ["bpb", "responses"], system_prompt=system_prompt,
                                         bpb_max_chars=1500, max_length=256, progress=False)
    assert set(from_recipe) == {"bits_per_byte", "response_loss"}
    assert from_recipe == from_suite
    # the same conversations: the held-out ones (80) but those whose answer truncation removed
    assert details["response_loss"]["n_examples"] == len(data.eval) >= 75
