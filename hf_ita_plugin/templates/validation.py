"""Strict checks on conversations before they are rendered or trained on.

Every problem is a :class:`~hf_ita_plugin.errors.ConversationError` that names the message index
(``messages[2]``) and what is wrong with it, optionally prefixed by where the conversation comes
from (a file and row).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConversationError, bilingual
from .registry import ChatTemplate, get_template
from .system_prompt import with_system_prompt

DEFAULT_ROLES = ("system", "user", "assistant")


def _template(template: ChatTemplate | str | None) -> ChatTemplate | None:
    if template is None or isinstance(template, ChatTemplate):
        return template
    return get_template(template)


def validate_messages(
    messages: Any,
    template: ChatTemplate | str | None = None,
    *,
    for_training: bool = False,
    where: str | None = None,
    system_prompt: str | None = None,
) -> list[dict[str, Any]]:
    """Check a conversation and return it unchanged; raise :class:`ConversationError` on the first problem.

    Rules: a non-empty list of ``{"role", "content"}`` objects; known roles; text content that is not
    empty; at most one system message and only first; at least one user message; user/assistant
    alternation (starting with the user) for templates that require it; no control strings of the
    template (such as ``<|im_end|>``) inside contents; with ``for_training`` the last message is an
    assistant reply. ``template`` is a registry name, a :class:`ChatTemplate` or ``None`` (generic rules).

    With ``system_prompt`` (a ``data.system_prompt`` setting) the conversation is checked, and
    returned, with that prompt added (see :func:`with_system_prompt`); positions in errors still
    count the messages as given, and a problem in the added prompt is reported as ``system prompt``.
    """
    tpl = _template(template)
    prefix = f"{where}: " if where else ""
    shift = 0
    if system_prompt is not None and isinstance(messages, (list, tuple)) and messages:
        given = len(messages)
        messages = with_system_prompt(messages, system_prompt)
        shift = len(messages) - given

    def fail(index: int | None, italian: str, english: str, hint: str | None = None) -> None:
        if index is not None and shift and index == 0:
            at = "system prompt: "
        else:
            at = f"messages[{index - shift}]: " if index is not None else ""
        raise ConversationError(f"{prefix}{at}{bilingual(italian, english)}", hint=hint)

    if not isinstance(messages, (list, tuple)) or not messages:
        fail(None, "una conversazione deve essere una lista non vuota di messaggi",
             f"a conversation must be a non-empty list of messages, got {_describe(messages)}")
    roles = tpl.roles if tpl else DEFAULT_ROLES
    name = f"template {tpl.name!r}" if tpl else "the chat format"
    seen_user = False
    previous: str | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            fail(i, "atteso un oggetto con 'role' e 'content'", f"expected an object with 'role' and 'content', got {_describe(message)}")
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or role not in roles:
            fail(i, f"ruolo sconosciuto {role!r}", f"unknown role {role!r} (allowed: {', '.join(roles)})")
        if not isinstance(content, str):
            fail(i, f"il contenuto del messaggio {role} deve essere testo", f"content of the {role} message must be text, got {_describe(content)}")
        if not content.strip():
            fail(i, f"il contenuto del messaggio {role} è vuoto", f"content of the {role} message is empty")
        if role == "system" and i != 0:
            fail(i, "il messaggio system deve essere il primo", "the system message must be the first message", hint="merge it into the first system message")
        if tpl is not None:
            for control in tpl.control_strings:
                if control in content:
                    fail(i, f"il contenuto del messaggio {role} contiene {control!r}, una stringa di controllo di {name}",
                         f"content of the {role} message contains {control!r}, a control string of {name}")
        extra_input = message.get("input")
        if extra_input is not None and not isinstance(extra_input, str):
            fail(i, "il campo 'input' deve essere testo", f"field 'input' must be text, got {_describe(extra_input)}")
        if role == "user":
            seen_user = True
        if tpl is not None and tpl.strict_alternation and role != "system":
            expected = "user" if previous in (None, "system", "assistant") else "assistant"
            if role != expected:
                after = f"after {previous!r}" if previous not in (None, "system") else "at the start"
                after_it = f"dopo {previous!r}" if previous not in (None, "system") else "all'inizio"
                fail(i, f"atteso un messaggio {expected!r} {after_it}", f"expected a {expected!r} message {after}, got {role!r}",
                     hint=f"{name} requires alternating user/assistant turns starting with the user")
        previous = role
    if not seen_user:
        fail(None, "la conversazione non ha messaggi user", "the conversation has no user message")
    if for_training:
        last = messages[-1]["role"]
        if last != "assistant":
            fail(len(messages) - 1, "per il training l'ultimo messaggio deve essere una risposta assistant",
                 f"the last message must be an assistant reply for training, got {last!r}")
    return list(messages) if isinstance(messages, tuple) else messages


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    return type(value).__name__
