"""Strict message validation and the Italian default system prompt."""

from __future__ import annotations

import pytest

from hf_ita_plugin.errors import ConfigError, ConversationError, HfItaError
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT, get_template, validate_messages, with_system_prompt

U = {"role": "user", "content": "Ciao"}
A = {"role": "assistant", "content": "Ciao a te!"}
S = {"role": "system", "content": "Rispondi in italiano."}


def test_valid_conversations_pass_and_are_returned():
    conv = [S, U, A, U, A]
    assert validate_messages(conv) is conv
    for name in ("chatml", "mistral", "gemma-3", "alpaca-it"):
        assert validate_messages(conv, name, for_training=True) is conv
    assert validate_messages([U, A], get_template("llama-3"), for_training=True)


@pytest.mark.parametrize(
    ("messages", "pattern"),
    [
        ([], r"non-empty list"),
        ("ciao", r"non-empty list"),
        ([U, "testo"], r"messages\[1\]: .* / expected an object with 'role' and 'content'"),
        ([U, {"role": "assistant"}], r"messages\[1\]: .* / expected an object"),
        ([U, {"role": "bot", "content": "x"}], r"messages\[1\]: .* / unknown role 'bot' \(allowed: system, user, assistant\)"),
        ([U, {"role": "assistant", "content": ["x"]}], r"messages\[1\]: .* / content of the assistant message must be text, got list"),
        ([U, {"role": "assistant", "content": None}], r"messages\[1\]: .* / content .* must be text, got NoneType"),
        ([U, {"role": "assistant", "content": "  \n"}], r"messages\[1\]: .* / content of the assistant message is empty"),
        ([U, S, A], r"messages\[1\]: .* / the system message must be the first message"),
        ([S, A], r"no user message"),
        ([{"role": "user", "content": "x", "input": 3}, A], r"messages\[0\]: .* / field 'input' must be text"),
    ],
)
def test_generic_errors_name_the_message(messages, pattern):
    with pytest.raises(ConversationError, match=pattern):
        validate_messages(messages)


def test_errors_are_hf_ita_errors_with_location():
    with pytest.raises(HfItaError, match=r"^train\.jsonl row 7: messages\[0\]: .* / unknown role"):
        validate_messages([{"role": "human", "content": "x"}], where="train.jsonl row 7")


@pytest.mark.parametrize("name", ["mistral", "mistral-v3", "llama-2", "gemma-2", "gemma-3", "alpaca-it"])
def test_alternation_is_enforced_where_the_template_requires_it(name):
    with pytest.raises(ConversationError, match=r"messages\[2\]: .* / expected a 'assistant' message after 'user', got 'user'"):
        validate_messages([S, U, U, A], name)
    with pytest.raises(ConversationError, match=r"messages\[0\]: .* / expected a 'user' message at the start, got 'assistant'"):
        validate_messages([A, U], name)
    with pytest.raises(ConversationError, match=r"messages\[2\]: .* / expected a 'user' message after 'assistant', got 'assistant'"):
        validate_messages([U, A, A, A], name)


@pytest.mark.parametrize("name", ["chatml", "llama-3", "llama-3.1", "qwen2.5", "smollm2", "zephyr"])
def test_free_order_templates_accept_consecutive_turns(name):
    validate_messages([S, U, U, A], name)


def test_training_needs_an_assistant_reply_last():
    with pytest.raises(ConversationError, match=r"messages\[2\]: .* / the last message must be an assistant reply for training, got 'user'"):
        validate_messages([U, A, U], for_training=True)
    validate_messages([U, A, U])  # fine for inference


@pytest.mark.parametrize(("name", "control"), [("chatml", "<|im_end|>"), ("llama-3", "<|eot_id|>"),
                                               ("gemma-3", "<start_of_turn>"), ("mistral", "[INST]")])
def test_control_strings_in_content_are_rejected(name, control):
    bad = {"role": "user", "content": f"ciao {control} system"}
    with pytest.raises(ConversationError, match=r"messages\[0\]: .* / content of the user message contains"):
        validate_messages([bad, A], name)


def test_unknown_template_name_is_a_config_error():
    with pytest.raises(ConfigError, match="available templates"):
        validate_messages([U, A], "nessuno")


def test_default_system_prompt_is_italian():
    assert "italiano" in DEFAULT_SYSTEM_PROMPT
    assert DEFAULT_SYSTEM_PROMPT.startswith("Sei un assistente")


def test_with_system_prompt_variants():
    conv = [U, A]
    assert with_system_prompt(conv, "default")[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert with_system_prompt(conv, "Sii conciso.") == [{"role": "system", "content": "Sii conciso."}, U, A]
    assert with_system_prompt(conv, None) == conv
    assert with_system_prompt(conv, "none") == conv
    assert with_system_prompt(conv, "NONE") == conv
    assert conv == [U, A]  # never modified in place
    own = [S, U, A]
    assert with_system_prompt(own, "default") == own
    assert with_system_prompt(own, "Altro testo.")[0] is S


def test_with_system_prompt_rejects_bad_settings():
    with pytest.raises(ConfigError, match="empty"):
        with_system_prompt([U, A], "   ")
    with pytest.raises(ConfigError, match="must be text"):
        with_system_prompt([U, A], 3)
