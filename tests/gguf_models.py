"""Tiny real checkpoints for the GGUF tests: random weights, real tokenizers trained on Italian text."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hf_ita_plugin.gguf import italian_suite

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
)


def italian_corpus(repeat: int = 30) -> list[str]:
    """Italian sentences (the verify suite plus extra lines) to train tiny tokenizers on."""
    extra = [
        "Buongiorno a tutti, oggi parliamo della cucina italiana e delle sue tradizioni regionali.",
        "Milano, Napoli, Torino, Firenze, Venezia e Bologna sono città famose in tutto il mondo.",
        "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura.",
        "Quest'anno l'estate è stata caldissima: ventotto gradi già alle otto del mattino!",
        "Qual è la differenza tra un espresso, un cappuccino e un caffellatte?",
    ]
    lines = italian_suite.TOKENIZATION_TEXTS + italian_suite.LOGIT_PROMPTS + italian_suite.GENERATION_PROMPTS + extra
    for conv in italian_suite.CONVERSATIONS:
        lines += [m["content"] for m in conv]
    return lines * repeat


def _random_model(config, out: Path, seed: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)


def tiny_mistral_spm(out: Path, *, keep_spm_file: bool = True) -> Path:
    """Mistral-architecture model (2 layers, GQA) with a SentencePiece BPE tokenizer trained on Italian."""
    import sentencepiece as spm
    from transformers import AutoTokenizer, MistralConfig

    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(italian_corpus()), model_writer=buf, vocab_size=600, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2, hard_vocab_limit=False,
    )
    (out / "tokenizer.model").write_bytes(buf.getvalue())
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "chat_template": MISTRAL_TEMPLATE,
        # legacy SentencePiece behaviour (space prefix after special tokens), as llama.cpp and Mistral's own tokenizer
        "legacy": True,
    }))
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.save_pretrained(str(out))
    if not keep_spm_file:
        (out / "tokenizer.model").unlink()
    config = MistralConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, initializer_range=0.2,
        tie_word_embeddings=False, sliding_window=None, bos_token_id=1, eos_token_id=2,
    )
    config.architectures = ["MistralForCausalLM"]
    _random_model(config, out, seed=1)
    return out


def qwen2_bpe_tokenizer(out: Path):
    """A byte-level BPE tokenizer with Qwen2's pre-tokenizer, trained on Italian with ``tokenizers``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from hf_ita_plugin.gguf.tokenizer_meta import _QWEN2_SPLIT

    tk = Tokenizer(models.BPE())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(italian_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML)
    tok.save_pretrained(str(out))
    return tok


def tiny_qwen2_tied(out: Path) -> Path:
    """Qwen2-architecture model with tied embeddings, q/k/v biases and a padded vocabulary."""
    from transformers import Qwen2Config

    out.mkdir(parents=True, exist_ok=True)
    tok = qwen2_bpe_tokenizer(out)
    config = Qwen2Config(
        vocab_size=len(tok) + 20, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, initializer_range=0.2,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
    )
    config.architectures = ["Qwen2ForCausalLM"]
    _random_model(config, out, seed=2)
    return out


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def gemma_spm_tokenizer(out: Path):
    """A Gemma-style SentencePiece tokenizer (no dummy prefix, <pad>/<eos>/<bos>/<unk> = 0..3, turn markers) trained on Italian."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(italian_corpus()), model_writer=buf, vocab_size=700, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], minloglevel=2, hard_vocab_limit=False,
    )
    (out / "tokenizer.model").write_bytes(buf.getvalue())
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
        "add_bos_token": True, "add_eos_token": False, "chat_template": GEMMA_TEMPLATE,
    }))
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.save_pretrained(str(out))
    return tok


def tiny_gemma(out: Path, version: int) -> Path:
    """Gemma2 (``version=2``) or Gemma3 text (``version=3``): 2 layers (sliding, then full attention), head_dim != hidden/heads,
    tied embeddings, a sliding window shorter than the suite's passages; Gemma2 with attention and final logit softcapping,
    Gemma3 with q/k norms and a separate rope base for the sliding layer."""
    from transformers import Gemma2Config, Gemma3TextConfig

    tok = gemma_spm_tokenizer(out)
    common = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32, max_position_embeddings=1024, rms_norm_eps=1e-6,
        initializer_range=0.2, sliding_window=16, layer_types=["sliding_attention", "full_attention"],
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
    )
    if version == 2:
        config = Gemma2Config(**common, final_logit_softcapping=30.0, attn_logit_softcapping=50.0)
        config.architectures = ["Gemma2ForCausalLM"]
    else:
        config = Gemma3TextConfig(**common, rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        })
        config.architectures = ["Gemma3ForCausalLM"]
    _random_model(config, out, seed=3 + version)
    return out
