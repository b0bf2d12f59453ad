"""Held-out metrics: bits per byte scores every token exactly once, response loss uses the masks,
heldout_metrics reports both (the path the recipe and `hf-ita eval` share)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers

from hf_ita_plugin.evaluation.metrics import bits_per_byte, heldout_metrics, load_bpb_text, response_loss


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vocab = {chr(c): i + 2 for i, c in enumerate(range(32, 127))} | {"<s>": 0, "</s>": 1}
    for extra in "àèéìòù":
        vocab[extra] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="</s>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512))
    return model.eval(), tokenizer


def full_context_nll(model, tokenizer, text):
    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    lp = torch.log_softmax(logits[:-1], -1)
    return -lp.gather(1, torch.tensor(ids[1:])[:, None]).sum().item(), len(ids) - 1


def test_bits_per_byte_matches_full_context_when_the_window_fits(tiny):
    model, tokenizer = tiny
    text = "La città è bella perché è antica."
    nll, n = full_context_nll(model, tokenizer, text)
    result = bits_per_byte(model, tokenizer, text, max_length=256, progress=False)
    assert result.n_tokens == n
    assert result.n_bytes == len(text.encode("utf-8"))
    assert result.bits_per_byte == pytest.approx(nll / math.log(2) / result.n_bytes, rel=1e-5)


def test_sliding_window_scores_each_token_once(tiny):
    model, tokenizer = tiny
    text = "Il treno per Milano parte alle otto e arriva alle dieci. " * 4
    small = bits_per_byte(model, tokenizer, text, max_length=24, progress=False)
    big = bits_per_byte(model, tokenizer, text, max_length=512, progress=False)
    assert small.n_tokens == big.n_tokens
    # a random model barely uses context: the windowed score stays close to the full one
    assert small.bits_per_byte == pytest.approx(big.bits_per_byte, rel=0.05)


def test_documents_split_on_blank_lines(tiny):
    model, tokenizer = tiny
    a, b = "Primo paragrafo.", "Secondo paragrafo."
    joined = bits_per_byte(model, tokenizer, f"{a}\n\n{b}", progress=False)
    listed = bits_per_byte(model, tokenizer, [a, b], progress=False)
    assert joined.bits_per_byte == pytest.approx(listed.bits_per_byte)
    assert joined.n_bytes == len(a.encode()) + len(b.encode())


def test_response_loss_only_counts_masked_tokens(tiny):
    model, tokenizer = tiny
    ids = [0] + tokenizer("Domanda? Risposta.", add_special_tokens=False)["input_ids"]
    answer_start = 1 + len("Domanda? ")
    masks = [0] * answer_start + [1] * (len(ids) - answer_start)
    result = response_loss(model, [{"input_ids": ids, "assistant_masks": masks}], progress=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    lp = torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    expected = -lp[answer_start - 1 :].mean().item()
    assert result.n_tokens == len(ids) - answer_start
    assert result.loss == pytest.approx(expected, rel=1e-5)


def test_response_loss_is_batch_independent(tiny):
    model, tokenizer = tiny
    examples = []
    for text in ["Ciao! Come stai?", "Una frase molto più lunga delle altre, davvero.", "Sì."]:
        ids = [0] + tokenizer(text, add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": ids, "assistant_masks": [0, 0] + [1] * (len(ids) - 2)})
    one = response_loss(model, examples, batch_size=1, progress=False)
    three = response_loss(model, examples, batch_size=3, pad_id=1, progress=False)
    assert one.n_tokens == three.n_tokens
    assert one.loss == pytest.approx(three.loss, rel=1e-4)


def test_load_bpb_text(tmp_path):
    from hf_ita_plugin.data import bundled_data_path
    from hf_ita_plugin.errors import DataError

    assert load_bpb_text(None, 100) is None
    bundled = bundled_data_path("prose_it.txt").read_text(encoding="utf-8")
    assert load_bpb_text("bundled", None) == bundled
    assert load_bpb_text("bundled", 50) == bundled[:50]
    own = tmp_path / "testo.txt"
    own.write_text("Testo di prova.", encoding="utf-8")
    assert load_bpb_text(str(own), None) == "Testo di prova."
    with pytest.raises(DataError, match="evaluation.bpb_text: .* / file not found"):
        load_bpb_text(str(tmp_path / "manca.txt"), None)


def test_heldout_metrics_are_the_two_metrics_rounded(tiny, tmp_path):
    model, tokenizer = tiny
    text = tmp_path / "prosa.txt"
    text.write_text("Primo paragrafo.\n\nSecondo paragrafo, più lungo.", encoding="utf-8")
    ids = [0] + tokenizer("Domanda? Risposta.", add_special_tokens=False)["input_ids"]
    examples = [{"input_ids": ids, "assistant_masks": [0] * 10 + [1] * (len(ids) - 10)}]
    metrics, details = heldout_metrics(model, tokenizer, bpb_text=str(text), examples=examples, progress=False)
    bpb = bits_per_byte(model, tokenizer, text.read_text(encoding="utf-8"), progress=False)
    rl = response_loss(model, examples, pad_id=tokenizer.pad_token_id, progress=False)
    assert metrics == {"bits_per_byte": round(bpb.bits_per_byte, 5), "response_loss": round(rl.loss, 5)}
    assert details["bits_per_byte"]["n_bytes"] == bpb.n_bytes and details["response_loss"]["n_tokens"] == rl.n_tokens
    assert heldout_metrics(model, tokenizer, progress=False) == ({}, {})  # nothing asked, nothing measured
