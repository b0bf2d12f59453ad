"""The Italian default system prompt and how a run's ``system_prompt`` setting is applied.

``data.system_prompt`` in a run config is ``"default"`` (:data:`DEFAULT_SYSTEM_PROMPT`), ``"none"``
(or ``None``: conversations are left as they are) or the text of the prompt itself. A conversation
that already has a system message always keeps its own.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, bilingual

DEFAULT_SYSTEM_PROMPT = (
    "Sei un assistente utile, preciso e rispettoso. Rispondi sempre in italiano corretto e naturale, "
    "con un tono chiaro e cordiale, e adatta la lunghezza della risposta alla domanda. "
    "Se non conosci la risposta o la richiesta è ambigua, dillo apertamente invece di inventare."
)
"""The default Italian system prompt (Italian answers, natural register, honest about uncertainty)."""


def resolve_system_prompt(system_prompt: str | None) -> str | None:
    """The system text selected by a ``system_prompt`` setting (``None`` when it is off)."""
    if system_prompt is None:
        return None
    if not isinstance(system_prompt, str):
        raise ConfigError(
            bilingual("system_prompt deve essere testo, 'default' o 'none'",
                      f"system_prompt must be text, 'default' or 'none', got {type(system_prompt).__name__}"),
        )
    keyword = system_prompt.strip().lower()
    if keyword == "none":
        return None
    if keyword == "default":
        return DEFAULT_SYSTEM_PROMPT
    if not keyword:
        raise ConfigError(bilingual("il prompt di sistema è vuoto", "system_prompt is empty"),
                          hint="use 'none' to train without a system prompt, or 'default' for the Italian default")
    return system_prompt


def with_system_prompt(messages: list[dict[str, Any]], system_prompt: str | None) -> list[dict[str, Any]]:
    """A copy of ``messages`` that starts with the selected system prompt, unless it already has one.

    >>> with_system_prompt([{"role": "user", "content": "Ciao"}], "Sii breve.")[0]
    {'role': 'system', 'content': 'Sii breve.'}
    """
    text = resolve_system_prompt(system_prompt)
    messages = list(messages)
    if text is None or any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        return messages
    return [{"role": "system", "content": text}, *messages]
