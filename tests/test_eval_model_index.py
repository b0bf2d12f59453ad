"""The model-index builder: lm-eval metrics under their Hub dataset, the others under their held-out set."""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from hf_ita_plugin.evaluation.model_index import eval_results, model_index_results


def test_model_index_results():
    results = model_index_results({"bits_per_byte": 1.9, "italian_rate": 0.8, "distinct_1": 0.5,
                                   "arc_it_acc": 0.31, "arc_it_acc_norm": 0.33, "answer_chars_mean": 120.0})
    arc = next(r for r in results if r["dataset"]["type"] == "alexandrainst/m_arc")
    assert arc["dataset"]["config"] == "it"
    assert [(m["type"], m["value"]) for m in arc["metrics"]] == [("acc", 0.31), ("acc_norm", 0.33)]
    prompts = next(r for r in results if r["dataset"]["type"] == "hf-ita/prompts_it")
    assert [m["type"] for m in prompts["metrics"]] == ["italian_rate", "distinct_1"]
    assert not any(m["type"] == "answer_chars_mean" for r in results for m in r["metrics"])


def test_caller_labels_and_names_win_and_non_numbers_are_left_out():
    results = eval_results({"bits_per_byte": 1.2, "eval_loss": 2.5, "note": "ok", "flag": True},
                           datasets={"bits_per_byte": "testo.txt (local)", "eval_loss": "eval_dataset (step 1 -> 3)"},
                           metric_names={"bits_per_byte": "Bits per byte"})
    assert [(r.metric_type, r.metric_value, r.metric_name) for r in results] == [
        ("bits_per_byte", 1.2, "Bits per byte"), ("eval_loss", 2.5, "eval_loss")]
    assert [(r.dataset_type, r.dataset_name, r.dataset_split) for r in results] == [
        ("testo.txt", "testo.txt (local)", "held-out"), ("eval_dataset", "eval_dataset (step 1 -> 3)", "held-out")]
    assert eval_results({"answer_chars_mean": 80.0}) == [] and model_index_results({}) == []


def test_huggingface_hub_parses_the_model_index_back():
    after = {"bits_per_byte": 1.9, "response_loss": 2.1, "italian_rate": 0.8, "arc_it_acc": 0.31, "m_mmlu_it_acc": 0.27}
    data = ModelCardData(model_name="mario/smollm2-ita", eval_results=eval_results(after))
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n# Modello\n")
    parsed = card.data.eval_results
    assert {(r.dataset_type, r.metric_type): r.metric_value for r in parsed} == {
        ("hf-ita/prose_it", "bits_per_byte"): 1.9, ("hf-ita/heldout", "response_loss"): 2.1,
        ("hf-ita/prompts_it", "italian_rate"): 0.8, ("alexandrainst/m_arc", "acc"): 0.31,
        ("alexandrainst/m_mmlu", "acc"): 0.27}
    assert {r.dataset_config for r in parsed if r.dataset_type.startswith("alexandrainst/")} == {"it"}
    assert card.data.to_dict()["model-index"][0]["results"] == model_index_results(after)
