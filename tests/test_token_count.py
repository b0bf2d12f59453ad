"""Token counting for data preparation: the fast (tiktoken) path must count exactly like the tokenizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_ita_plugin.data import bundled_data_path
from hf_ita_plugin.data.prepare import load_tokenizer
from hf_ita_plugin.data.token_count import token_counter
from hf_ita_plugin.templates import render

from gguf_models import qwen2_bpe_tokenizer


def _reference(tokenizer, texts):
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


@pytest.fixture(scope="module")
def smollm():
    return load_tokenizer("embedded")


@pytest.fixture(scope="module")
def smollm_counter(smollm):
    return token_counter(smollm)


def _bundled_rendered(tokenizer, name="heldout.jsonl"):
    with open(bundled_data_path(name), encoding="utf-8") as fh:
        return [render(tokenizer, json.loads(line)["messages"]) for line in fh]


def test_embedded_tokenizer_counts_with_tiktoken_exactly(smollm, smollm_counter):
    assert smollm_counter.backend == "tiktoken"
    texts = _bundled_rendered(smollm)
    texts += [t.encode("utf-8").decode("latin-1") for t in texts[:20]]  # mojibake: many 2-byte characters
    assert smollm_counter.counts(texts) == _reference(smollm, texts)


def test_characters_missing_from_the_vocabulary_are_counted_by_the_tokenizer(smollm, smollm_counter):
    # SmolLM2 has no token for byte 0x04 nor for the lead byte of U+40000..U+7FFFF: the tokenizer
    # drops such characters, tiktoken could not encode them; they go to the tokenizer.
    texts = ["ciao\x04mondo", "a \U00040000 b <|im_end|>", "normale", "\x06\x13" * 3, ""]
    assert smollm_counter.counts(texts) == _reference(smollm, texts)


PIECES = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "perché", "l'acqua", "'s", "  ", "\n\n", " \t ", "1234567",
          "½²", "🇮🇹", "日本", "\x04", "\U00040001", "Ã¨", "def f():", "\u0301", "\r\n", "ab", "e",
          "\n    ", " ", "\xa0", "\u3000", "\u2028", "\x85", "\x1c", "\u200b", "x"]  # runs of every kind of space


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(PIECES), max_size=10).map("".join)),
                      min_size=1, max_size=6))
def test_any_text_is_counted_like_the_tokenizer(smollm, smollm_counter, texts):
    assert smollm_counter.counts(texts) == _reference(smollm, texts)


def test_qwen2_style_split_and_nfc_tokenizer_uses_tiktoken(tmp_path):
    tok = qwen2_bpe_tokenizer(tmp_path / "qwen2")
    counter = token_counter(tok)
    assert counter.backend == "tiktoken"
    texts = _bundled_rendered(tok, "train.jsonl")[:100] + ["cafe\u0301 perche\u0300 12345 ~~~ \n\n  x"]
    assert counter.counts(texts) == _reference(tok, texts)


def _byte_level_bpe(vocab_extra, merges, without_bytes=()):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from hf_ita_plugin.data.token_count import _byte_of_char

    byte_of = _byte_of_char()
    alphabet = [ch for ch in pre_tokenizers.ByteLevel.alphabet() if byte_of[ch] not in without_bytes]
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for token in vocab_extra:
        vocab[token] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return PreTrainedTokenizerFast(tokenizer_object=tk)


def test_a_tokenizer_tiktoken_would_split_differently_keeps_the_tokenizer():
    # "abc" is a vocabulary entry reachable only through the merge (a, bc); on "abc" BPE applies
    # the higher-priority merge (a, b) first and ends at [ab, c], while tiktoken looks the whole
    # word up and finds "abc". The probe catches the difference.
    tok = _byte_level_bpe(["ab", "bc", "abc"], [("a", "b"), ("b", "c"), ("a", "bc")])
    assert tok("abc", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids("ab"), tok.convert_tokens_to_ids("c")]
    assert token_counter(tok, probe=["una parola: abc"]).backend == "tokenizers"
    counter = token_counter(tok, probe=["nessun problema qui"])
    assert counter.backend == "tiktoken"  # without that word in the probe the difference goes unseen
    assert counter.counts(["abc"]) != _reference(tok, ["abc"])  # which is why the probe holds real text


def test_unsupported_tokenizers_count_with_the_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(["ciao mondo, come stai? Tutto bene."] * 5,
                           trainer=trainers.BpeTrainer(vocab_size=80, special_tokens=["[UNK]"], show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    counter = token_counter(tok)
    assert counter.backend == "tokenizers"
    texts = ["Ciao Mondo", "tutto bene, grazie", "Qualcosa di nuovo"]
    assert counter.counts(texts) == _reference(tok, texts)


def test_a_vocabulary_without_some_lead_bytes_still_counts_exactly():
    # No token for byte 0xE0, the lead byte of U+0800..U+0FFF (Devanagari, Thai...): the tokenizer
    # drops those characters. No chat template either: the bundled contents are the probe.
    tok = _byte_level_bpe(["ci", "ao", "ciao"], [("c", "i"), ("a", "o"), ("ci", "ao")], without_bytes={0xE0})
    counter = token_counter(tok)
    assert counter.backend == "tiktoken"
    texts = ["ciao हिन्दी ciao", "ciao ciao", "ไทย", "perché"]
    assert counter.counts(texts) == _reference(tok, texts)


def test_unencodable_characters_are_exactly_those_with_a_missing_byte():
    from hf_ita_plugin.data.token_count import _FastEncoding

    sample = [chr(c) for c in [*range(0, 0x800), *range(0x800, 0xD800, 7), *range(0xE000, 0x110000, 97)]]
    for byte in [0x04, 0x7F, 0x80, 0xA8, 0xC2, 0xC3, 0xDF, 0xE0, 0xE2, 0xEF, 0xF0, 0xF1, 0xF4]:
        fast = _FastEncoding(None, None, {}, bytes(sorted(set(range(256)) - {byte})), False)
        found = fast.unencodable_positions(sample)
        assert found == [i for i, ch in enumerate(sample) if byte in ch.encode("utf-8")], hex(byte)
        assert found  # the sample holds characters with each of these bytes
