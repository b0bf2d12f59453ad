"""Templates on real tokenizers: assistant masks, BOS/EOS/pad hygiene, save/load, own templates.

Tokenizers used (no downloads): the embedded SmolLM2 tokenizer (byte-level BPE, ChatML), a Llama 3
style variant of it (Llama 3 special tokens added), and SentencePiece tokenizers trained here on a
little Italian text with ``sentencepiece`` and loaded through transformers (Llama/Mistral v1 style,
Mistral v3 style with [INST] control tokens, Gemma style).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest

from hf_ita_plugin.models.embedded import ensure_embedded_model
from hf_ita_plugin.errors import ConfigError, ModelError
from hf_ita_plugin.templates import (
    DEFAULT_SYSTEM_PROMPT,
    apply_template,
    get_template,
    has_generation_markers,
    list_templates,
    render,
    template_name,
    tokenize_conversation,
    validate_messages,
    with_system_prompt,
)
from hf_ita_plugin.templates.masks import _mask_by_token_prefixes, assistant_spans

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")
AutoTokenizer = transformers.AutoTokenizer

ITALIAN = """Roma è la capitale d'Italia ed è famosa per il Colosseo e per i Fori Imperiali.
La pizza margherita è nata a Napoli e porta il nome di una regina.
Il Po è il fiume più lungo d'Italia e attraversa la pianura padana.
Dante Alighieri scrisse la Divina Commedia all'inizio del Trecento.
Perché l'università costa così tanto? Tasse, affitti e libri pesano sulle famiglie.
Ciao! Come stai? Sto bene, grazie. E tu, che cosa fai oggi pomeriggio?
Scrivi una funzione che calcoli la somma di una lista di numeri.
def somma(numeri):
    return sum(numeri)
Firenze, Venezia e Bologna sono città d'arte piene di musei e di storia.
Rispondi in modo conciso e chiaro, per favore.""".splitlines()

U = lambda text: {"role": "user", "content": text}  # noqa: E731
A = lambda text: {"role": "assistant", "content": text}  # noqa: E731
S = lambda text: {"role": "system", "content": text}  # noqa: E731

CONVERSATIONS = {
    "single": [U("Qual è la città più bella d'Italia?"),
               A("Difficile scegliere: Firenze, Venezia e Roma sono tutte splendide.")],
    "system": [S("Rispondi in modo conciso."), U("Quanto fa 2+2?"), A("4.")],
    "multi-emoji-code": [
        S(DEFAULT_SYSTEM_PROMPT),
        U("Ciao! 😊"),
        A("Ciao! Come posso aiutarti oggi? 🇮🇹"),
        U("Scrivi una funzione Python che sommi una lista."),
        A("Ecco una soluzione:\n\n```python\ndef somma(numeri):\n    return sum(numeri)\n```\n\nÈ semplice e leggibile."),
        U("Grazie mille!"),
        A("Di niente, è stato un piacere!"),
    ],
    "accents-multi": [
        U("Perché l'università è così cara?"),
        A("Perché tasse, affitti e libri sono aumentati: è un problema serio."),
        U("E all'estero?"),
        A("Dipende dal Paese: in Germania, per esempio, è quasi gratuita."),
    ],
}


def _train_sentencepiece(directory: Path, *, bos: str, eos: str, unk: str, pad: str | None = None,
                         control: tuple[str, ...] = (), user_defined: tuple[str, ...] = ()) -> Path:
    """A small BPE SentencePiece model with byte fallback, saved as a Llama-style tokenizer directory."""
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(ITALIAN * 5), model_writer=buffer, vocab_size=420, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, hard_vocab_limit=False, split_digits=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3 if pad else -1, unk_piece=unk, bos_piece=bos, eos_piece=eos,
        pad_piece=pad or "<pad>", control_symbols=list(control), user_defined_symbols=list(user_defined),
        normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2,
    )
    directory.mkdir(parents=True)
    (directory / "tokenizer.model").write_bytes(buffer.getvalue())
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": bos, "eos_token": eos, "unk_token": unk,
              "add_bos_token": True, "add_eos_token": False}
    if pad:
        config["pad_token"] = pad
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    smol = ensure_embedded_model(verbose=False)
    dirs = {
        "smollm2": smol,
        "llama-sp": _train_sentencepiece(root / "llama-sp", bos="<s>", eos="</s>", unk="<unk>"),
        "mistral-v3-sp": _train_sentencepiece(root / "mistral-v3-sp", bos="<s>", eos="</s>", unk="<unk>",
                                              control=("[INST]", "[/INST]")),
        "gemma-sp": _train_sentencepiece(root / "gemma-sp", bos="<bos>", eos="<eos>", unk="<unk>", pad="<pad>",
                                         user_defined=("<start_of_turn>", "<end_of_turn>")),
    }
    # Llama 3 style: byte-level BPE with the Llama 3 special tokens, and the common mistake pad = <|eot_id|>.
    llama3 = AutoTokenizer.from_pretrained(smol)
    llama3.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})
    llama3.add_tokens(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
                      special_tokens=True)
    llama3.pad_token = "<|eot_id|>"
    llama3.save_pretrained(root / "llama3-bpe")
    dirs["llama3-bpe"] = root / "llama3-bpe"
    return dirs


FAMILY_TOKENIZER = {
    "chatml": "smollm2", "qwen2.5": "smollm2", "smollm2": "smollm2", "qwen3": "smollm2", "smollm3": "smollm2",
    "phi-3.5": "llama-sp", "phi-4": "smollm2", "mistral-nemo": "mistral-v3-sp", "mistral-small-3.1": "mistral-v3-sp",
    "llama-3": "llama3-bpe", "llama-3.1": "llama3-bpe", "llama-3.2": "llama3-bpe",
    "mistral": "llama-sp", "llama-2": "llama-sp", "zephyr": "llama-sp", "alpaca-it": "llama-sp",
    "mistral-v3": "mistral-v3-sp", "gemma-2": "gemma-sp", "gemma-3": "gemma-sp",
}
TRIMS_REPLIES = {"llama-3", "llama-3.1", "llama-3.2", "gemma-2", "gemma-3", "llama-2", "mistral-v3"}
CASES = sorted({(name, FAMILY_TOKENIZER[name]) for name in list_templates()}
               | {(name, kind) for name in list_templates() for kind in ("smollm2", "llama-sp")})


def load(tokenizer_dirs, kind):
    return AutoTokenizer.from_pretrained(tokenizer_dirs[kind])


def applied(tokenizer_dirs, kind, name):
    tok = load(tokenizer_dirs, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # control tokens added when the vocab lacks them
        apply_template(tok, name)
    return tok


def expected_reply(name: str, content: str, tok) -> str:
    """An assistant reply as the family writes it, with the token that closes it."""
    tpl = get_template(name)
    body = content.strip() if name in TRIMS_REPLIES else content
    return body + (" " if name == "llama-2" else "") + tpl.end_of_turn_for(tok)[0]


def trained_segments(ids: list[int], mask: list[int]) -> list[list[int]]:
    segments, current = [], []
    for token, m in zip(ids, mask):
        if m:
            current.append(token)
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_masks_are_exactly_the_replies_and_their_end_token(tokenizer_dirs, name, kind):
    tok = applied(tokenizer_dirs, kind, name)
    for label, conv in CONVERSATIONS.items():
        validate_messages(conv, name, for_training=True)
        out = tokenize_conversation(tok, conv)
        ids, mask = out["input_ids"], out["assistant_masks"]
        assert len(ids) == len(mask)
        assert ids == list(tok.apply_chat_template(conv, tokenize=True)["input_ids"]), label
        replies = [m["content"] for m in conv if m["role"] == "assistant"]
        segments = trained_segments(ids, mask)
        assert len(segments) == len(replies), label
        for segment, reply in zip(segments, replies):
            decoded = tok.decode(segment, skip_special_tokens=False)
            assert decoded.strip() == expected_reply(name, reply, tok).strip(), (label, decoded)
        # Nothing of the prompt is trained: the first trained token comes after the first user message.
        first = mask.index(1)
        assert conv[1 if conv[0]["role"] == "system" else 0]["content"].strip()[-3:] in tok.decode(ids[:first])
        # The token-prefix path (tokenizers without offsets) agrees exactly, or refuses; a refusal is
        # only allowed where a reply boundary is not clean: a token straddles it (a BPE merge across it)
        # or whitespace touches it (byte-level pre-tokenizers split "\n\n" at the end of a text
        # differently from "\n\n" followed by more text).
        text, spans = assistant_spans(tok, conv)
        edges = {e for span in spans for e in span if 0 < e < len(text)}
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        unclean = [e for e in edges if any(a < e < b for a, b in offsets) or text[e - 1].isspace() or text[e].isspace()]
        try:
            assert _mask_by_token_prefixes(tok, text, spans) == (ids, mask), label
        except ModelError as exc:
            assert "token boundary" in str(exc) and unclean, (label, "refused although every reply boundary is clean")


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_bos_eos_and_pad_hygiene(tokenizer_dirs, name, kind):
    tok = applied(tokenizer_dirs, kind, name)
    tpl = get_template(name)
    conv = CONVERSATIONS["accents-multi"]
    ids = tokenize_conversation(tok, conv)["input_ids"]
    # Tokenizing the rendered text with default settings gives the same ids: no BOS added twice.
    assert list(tok(render(tok, conv))["input_ids"]) == ids
    bos = tok.bos_token_id
    if tpl.emits_bos and bos is not None:
        assert ids[0] == bos and ids[1] != bos
        user_turns = sum(m["role"] == "user" for m in conv)
        assert ids.count(bos) == (user_turns if name == "llama-2" else 1)
    assert all(not (a == b == bos) for a, b in zip(ids, ids[1:]))
    # The pad token exists, is one token, and is neither EOS nor an end-of-turn token.
    assert tok.pad_token is not None
    reserved = {tok.eos_token, *tpl.end_of_turn_for(tok), *tpl.control_tokens}
    assert tok.pad_token not in reserved
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.convert_tokens_to_ids(tok.pad_token) == tok.pad_token_id


def test_double_bos_hazard_is_real_without_apply_template(tokenizer_dirs):
    tok = load(tokenizer_dirs, "llama-sp")
    assert tok.add_bos_token  # like Llama/Mistral tokenizers
    conv = CONVERSATIONS["single"]
    tok.chat_template = get_template("mistral").source
    text = render(tok, conv)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2  # the bug apply_template prevents
    apply_template(tok, "mistral")
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id, tok(text)["input_ids"][1]]
    assert tok(text)["input_ids"][1] != tok.bos_token_id


@pytest.mark.parametrize(("kind", "name", "expected_pad"), [
    ("smollm2", "chatml", "<|endoftext|>"),      # shipped with pad == eos == <|im_end|>
    ("llama-sp", "mistral", "<unk>"),            # no pad at all
    ("gemma-sp", "gemma-3", "<pad>"),              # already fine: kept
    ("llama3-bpe", "llama-3", "<|finetune_right_pad_id|>"),  # pad == <|eot_id|>
])
def test_pad_reuses_a_spare_token_without_growing_the_vocabulary(tokenizer_dirs, kind, name, expected_pad):
    tok = load(tokenizer_dirs, kind)
    size = len(tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no token may be added, so no warning
        apply_template(tok, name)
    assert tok.pad_token == expected_pad
    assert len(tok) == size


def test_pad_is_added_only_when_no_spare_token_exists():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "ciao": 2, "mondo": 3, "[INST]": 4, "[/INST]": 5}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="ciao"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    tok.unk_token = None
    size = len(tok)
    with pytest.warns(UserWarning, match=r"added 1 token.*<\|pad\|>.*resize"):
        apply_template(tok, "mistral")
    assert tok.pad_token == "<|pad|>" and len(tok) == size + 1


def test_missing_control_tokens_are_added_and_reported(tokenizer_dirs):
    tok = load(tokenizer_dirs, "llama-sp")
    size = len(tok)
    with pytest.warns(UserWarning, match=r"added 2 token\(s\).*<\|im_start\|>, <\|im_end\|>"):
        apply_template(tok, "chatml")
    assert len(tok) == size + 2
    assert len(tok.encode("<|im_end|>", add_special_tokens=False)) == 1


def test_template_name_and_hygiene_survive_save_and_load(tokenizer_dirs, tmp_path):
    tok = applied(tokenizer_dirs, "gemma-sp", "gemma-3")
    conv = CONVERSATIONS["multi-emoji-code"]
    before = tokenize_conversation(tok, conv)
    tok.save_pretrained(tmp_path / "tok")
    again = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert template_name(again) == "gemma-3"
    assert again.chat_template == get_template("gemma-3").source
    assert again.pad_token == tok.pad_token
    assert tokenize_conversation(again, conv) == before
    assert list(again(render(again, conv))["input_ids"]) == before["input_ids"]


def test_own_template_without_markers_gives_the_same_masks_as_the_registry(tokenizer_dirs):
    own = load(tokenizer_dirs, "smollm2")
    assert not has_generation_markers(own.chat_template)
    # SmolLM2's exact official text is the registry's smollm2 (test_template_auto.py); one byte more
    # makes it a foreign template whose masks are derived.
    own.chat_template += "\n"
    apply_template(own, None)
    assert template_name(own) == "custom"
    registry = applied(tokenizer_dirs, "smollm2", "chatml")
    for conv in (CONVERSATIONS["system"], CONVERSATIONS["multi-emoji-code"]):
        # With a system message SmolLM2's own template renders exactly like ChatML.
        assert tokenize_conversation(own, conv) == tokenize_conversation(registry, conv)
    # Without one it adds its English default system prompt; masks still cover only the replies.
    conv = CONVERSATIONS["accents-multi"]
    out = tokenize_conversation(own, conv)
    assert "You are a helpful AI assistant" in own.decode(out["input_ids"])
    segments = trained_segments(out["input_ids"], out["assistant_masks"])
    assert [own.decode(s) for s in segments] == [m["content"] + "<|im_end|>" for m in conv if m["role"] == "assistant"]


def test_registry_template_recognised_from_its_inference_form(tokenizer_dirs):
    tok = load(tokenizer_dirs, "llama-sp")
    tok.chat_template = get_template("zephyr").inference_source  # e.g. read back from a GGUF
    apply_template(tok, None)
    assert template_name(tok) == "zephyr"
    assert tok.chat_template == get_template("zephyr").source


def test_not_prefix_stable_template_is_a_clear_error(tokenizer_dirs):
    tok = load(tokenizer_dirs, "smollm2")
    apply_template(tok, "{{ messages | length }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                        "{{ m['content'] }}<|im_end|>\n{% endfor %}"
                        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(ModelError, match=r"messages\[1\]: .* / the chat template is not prefix-stable"):
        tokenize_conversation(tok, CONVERSATIONS["single"])


def test_template_that_never_closes_replies_is_refused(tokenizer_dirs):
    tok = load(tokenizer_dirs, "smollm2")
    apply_template(tok, "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(ModelError, match=r"messages\[1\]: .*does not close the assistant reply"):
        tokenize_conversation(tok, CONVERSATIONS["single"])


def test_truncation_keeps_masks_aligned(tokenizer_dirs):
    tok = applied(tokenizer_dirs, "llama-sp", "llama-2")
    conv = CONVERSATIONS["multi-emoji-code"]
    full = tokenize_conversation(tok, conv)
    for n in (5, 40, len(full["input_ids"]) - 1, len(full["input_ids"]) + 10):
        cut = tokenize_conversation(tok, conv, max_length=n)
        assert cut["input_ids"] == full["input_ids"][:n]
        assert cut["assistant_masks"] == full["assistant_masks"][:n]
    with pytest.raises(ModelError, match="max_length"):
        tokenize_conversation(tok, conv, max_length=0)


def test_apply_template_errors(tokenizer_dirs):
    tok = load(tokenizer_dirs, "llama-sp")
    assert not tok.chat_template
    with pytest.raises(ModelError, match="no chat template") as err:
        apply_template(tok, None)
    assert "chatml" in str(err.value)
    with pytest.raises(ConfigError, match="available templates"):
        apply_template(tok, "mistral-v9")
    with pytest.raises(ModelError, match="no chat template"):
        tokenize_conversation(tok, CONVERSATIONS["single"])


def test_recipe_flow_with_default_system_prompt(tokenizer_dirs):
    """The calls the training recipe makes, in order."""
    tok = apply_template(load(tokenizer_dirs, "smollm2"), "chatml")
    rows = [CONVERSATIONS["single"], CONVERSATIONS["accents-multi"]]
    for row in rows:
        msgs = validate_messages(with_system_prompt(row, "default"), for_training=True)
        out = tokenize_conversation(tok, msgs, max_length=256)
        assert tok.decode(out["input_ids"]).startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>")
        assert sum(out["assistant_masks"]) > 0


def test_tokenize_conversation_names_the_message_for_template_rules(tokenizer_dirs):
    from hf_ita_plugin.errors import ConversationError

    tok = applied(tokenizer_dirs, "llama-sp", "mistral")
    bad = [U("Ciao"), U("Ci sei?"), A("Sì.")]
    with pytest.raises(ConversationError, match=r"messages\[1\]: .* / expected a 'assistant' message after 'user'"):
        tokenize_conversation(tok, bad)


def test_bos_added_by_the_post_processor_is_disabled_too(tokenizer_dirs, tmp_path):
    """Llama 3 style: tokenizer.json's post-processor adds BOS while add_bos_token reads False."""
    from tokenizers import processors

    tok = load(tokenizer_dirs, "llama3-bpe")
    bos = tok.bos_token_id
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    tok.save_pretrained(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert not tok.add_bos_token and tok("Ciao")["input_ids"][0] == bos  # the trap
    apply_template(tok, "llama-3")
    conv = CONVERSATIONS["single"]
    ids = tokenize_conversation(tok, conv)["input_ids"]
    assert list(tok(render(tok, conv))["input_ids"]) == ids
    assert ids[0] == bos and ids[1] != bos


def test_custom_markers_that_skip_replies_are_refused(tokenizer_dirs):
    tok = load(tokenizer_dirs, "smollm2")
    apply_template(tok, "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' and loop.last %}"
                        "{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}{% else %}{{ m['content'] }}"
                        "<|im_end|>{% endif %}\n{% endfor %}")
    tokenize_conversation(tok, CONVERSATIONS["single"])  # one reply, one block: fine
    with pytest.raises(ModelError, match=r"marks 1 assistant block\(s\).*2 assistant message\(s\)"):
        tokenize_conversation(tok, CONVERSATIONS["accents-multi"])
