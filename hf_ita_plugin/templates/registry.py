"""The registry of chat templates shipped with hf-ita: one Jinja file per template.

Each template lives in ``templates/jinja/<name>.jinja`` (the single source of truth that flows into
the tokenizer, the training masks, the model card and the GGUF metadata). The Jinja text marks
every assistant reply with ``{% generation %}...{% endgeneration %}`` so that transformers can tell
which tokens are trainable; :attr:`ChatTemplate.inference_source` is the same template without the
markers, for engines that do not know that tag (llama.cpp, Ollama).

>>> get_template("chatml").end_of_turn
('<|im_end|>',)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, bilingual

_MARKER_RE = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
_JINJA_SYNTAX_RE = re.compile(r"\{\{|\{%|\{#")


@dataclass(frozen=True)
class ChatTemplate:
    """One registry template and the facts other components need about it.

    ``end_of_turn`` holds the string(s) that close an assistant reply in the family's reference
    vocabulary; when ``end_of_turn_is_eos`` is true the template writes the tokenizer's own
    ``eos_token`` there (use :meth:`end_of_turn_for`). ``stop`` are the stop strings for
    llama.cpp / Ollama. ``emits_bos`` says whether the template writes ``bos_token`` itself
    (tokenization must then never add a second one). ``control_tokens`` must each be one token of
    the vocabulary (apply_template adds the missing ones). ``prefix_stable`` is false when an earlier
    part of the text depends on later messages (mistral-v3 and mistral-nemo write the system text only
    when the user speaks last, qwen3 drops the empty think block of earlier replies, phi-3.5 closes a
    text without generation prompt with EOS).
    """

    name: str
    source: str
    description: str
    roles: tuple[str, ...]
    native_system: bool
    system_handling: str
    strict_alternation: bool
    end_of_turn: tuple[str, ...]
    end_of_turn_is_eos: bool
    stop: tuple[str, ...]
    emits_bos: bool
    reference_bos: str | None
    reference_eos: str | None
    control_tokens: tuple[str, ...] = ()
    prefix_stable: bool = True

    @property
    def supports_system(self) -> bool:
        """Whether a system message is accepted (natively or folded into a user turn)."""
        return "system" in self.roles

    @cached_property
    def inference_source(self) -> str:
        """The template without ``{% generation %}`` markers (renders the same text)."""
        return strip_generation_markers(self.source)

    @property
    def control_strings(self) -> tuple[str, ...]:
        """Literal special strings of the format that message contents must not contain."""
        specials = set(self.end_of_turn) | set(self.control_tokens) | {s for s in self.stop if s.startswith(("<", "["))}
        return tuple(sorted(specials))

    def end_of_turn_for(self, tokenizer) -> tuple[str, ...]:
        """The end-of-turn string(s) as they appear with ``tokenizer`` (its EOS when the template uses it)."""
        if self.end_of_turn_is_eos:
            eos = getattr(tokenizer, "eos_token", None)
            return (eos,) if eos else self.end_of_turn
        return self.end_of_turn


def _spec(**kw) -> dict:
    return kw


_ALL_ROLES = ("system", "user", "assistant")
_CHATML = _spec(
    roles=_ALL_ROLES, native_system=True, system_handling="native", strict_alternation=False,
    end_of_turn=("<|im_end|>",), end_of_turn_is_eos=False, stop=("<|im_start|>", "<|im_end|>"),
    emits_bos=False, reference_bos=None, reference_eos="<|im_end|>", control_tokens=("<|im_start|>", "<|im_end|>"),
)
_LLAMA_3 = _spec(
    roles=_ALL_ROLES, native_system=True, system_handling="native", strict_alternation=False,
    end_of_turn=("<|eot_id|>",), end_of_turn_is_eos=False,
    stop=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    emits_bos=True, reference_bos="<|begin_of_text|>", reference_eos="<|end_of_text|>",
    control_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
)
_GEMMA = _spec(
    roles=_ALL_ROLES, native_system=False, system_handling="first-user", strict_alternation=True,
    end_of_turn=("<end_of_turn>",), end_of_turn_is_eos=False, stop=("<start_of_turn>", "<end_of_turn>"),
    emits_bos=True, reference_bos="<bos>", reference_eos="<eos>", control_tokens=("<start_of_turn>", "<end_of_turn>"),
)
_SPECS: dict[str, dict] = {
    "chatml": _spec(
        description="ChatML generico / generic (Hermes...): <|im_start|>ruolo ... <|im_end|>; system nativo, nessun system predefinito / native system, no default one",
        **_CHATML,
    ),
    "qwen2.5": _spec(
        description="Qwen2.5 Instruct: ChatML; senza system usa quello di Qwen / without a system message Qwen's default one",
        **_CHATML,
    ),
    "smollm2": _spec(
        description="SmolLM2 Instruct: ChatML; senza system usa quello di SmolLM / without a system message SmolLM's default one",
        **_CHATML,
    ),
    "llama-3": _spec(
        description="Llama 3 (3.0) Instruct: <|start_header_id|>ruolo<|end_header_id|> ... <|eot_id|>",
        **_LLAMA_3,
    ),
    "llama-3.1": _spec(
        description="Llama 3.1 / 3.3 Instruct: come Llama 3 con intestazione system fissa / as Llama 3 with a fixed system header (Cutting Knowledge Date, Today Date: date_string or 26 Jul 2024)",
        **_LLAMA_3,
    ),
    "llama-3.2": _spec(
        description="Llama 3.2 Instruct: come Llama 3.1, Today Date = data di oggi / as Llama 3.1 with today's date (strftime_now)",
        **_LLAMA_3,
    ),
    "mistral": _spec(
        description="Mistral Instruct v0.1/v0.2 (tokenizer v1): [INST] ... [/INST]; system nel primo turno utente / system folded into the first user turn",
        roles=_ALL_ROLES, native_system=False, system_handling="first-user", strict_alternation=True,
        end_of_turn=("</s>",), end_of_turn_is_eos=True, stop=("[INST]", "[/INST]", "</s>"),
        emits_bos=True, reference_bos="<s>", reference_eos="</s>",
    ),
    "mistral-v3": _spec(
        description="Mistral Instruct v0.3 (tokenizer v3, [INST] di controllo / control tokens); system solo se l'ultimo messaggio è dell'utente, in quel turno / system only when the last message is the user's, in that turn",
        roles=_ALL_ROLES, native_system=False, system_handling="last-user", strict_alternation=True,
        end_of_turn=("</s>",), end_of_turn_is_eos=True, stop=("[INST]", "[/INST]", "</s>"),
        emits_bos=True, reference_bos="<s>", reference_eos="</s>", control_tokens=("[INST]", "[/INST]"),
        prefix_stable=False,
    ),
    "llama-2": _spec(
        description="Llama 2 Chat: <s>[INST] <<SYS>> ... <</SYS>> ... [/INST] ... </s>; BOS a ogni scambio / BOS on every exchange",
        roles=_ALL_ROLES, native_system=False, system_handling="first-user", strict_alternation=True,
        end_of_turn=("</s>",), end_of_turn_is_eos=True, stop=("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "</s>"),
        emits_bos=True, reference_bos="<s>", reference_eos="</s>",
    ),
    "zephyr": _spec(
        description="Zephyr: <|system|> / <|user|> / <|assistant|>, ogni turno chiuso da EOS, senza BOS / every turn closed by EOS, no BOS",
        roles=_ALL_ROLES, native_system=True, system_handling="native", strict_alternation=False,
        end_of_turn=("</s>",), end_of_turn_is_eos=True, stop=("<|system|>", "<|user|>", "<|assistant|>", "</s>"),
        emits_bos=False, reference_bos="<s>", reference_eos="</s>",
    ),
    "gemma-2": _spec(
        description="Gemma 2: <start_of_turn>user/model ... <end_of_turn>; il system (rifiutato dal template ufficiale) va nel primo turno utente come in Gemma 3 / system (rejected by the official template) folded into the first user turn as in Gemma 3",
        **_GEMMA,
    ),
    "gemma-3": _spec(
        description="Gemma 3: <start_of_turn>user/model ... <end_of_turn>; system nel primo turno utente / system folded into the first user turn",
        **_GEMMA,
    ),
    "qwen3": _spec(
        description="Qwen3, ragionamento disattivato / reasoning off (enable_thinking=false): ChatML, blocco <think> vuoto nel prompt e nell'ultima risposta / empty <think> block in the prompt and the last reply",
        **{**_CHATML, "control_tokens": ("<|im_start|>", "<|im_end|>", "<think>", "</think>"), "prefix_stable": False},
    ),
    "smollm3": _spec(
        description="SmolLM3, ragionamento disattivato / reasoning off: ChatML con intestazione system generata (data di oggi) / with a generated system header (today's date)",
        **{**_CHATML, "system_handling": "header", "reference_eos": None,
           "control_tokens": ("<|im_start|>", "<|im_end|>", "<think>", "</think>")},
    ),
    "phi-3.5": _spec(
        description="Phi-3.5 mini: <|system|> / <|user|> / <|assistant|> ... <|end|>; testo di addestramento chiuso da EOS / training text closed by EOS",
        roles=_ALL_ROLES, native_system=True, system_handling="native", strict_alternation=False,
        end_of_turn=("<|end|>",), end_of_turn_is_eos=False,
        stop=("<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>"),
        emits_bos=False, reference_bos="<s>", reference_eos="<|endoftext|>",
        control_tokens=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), prefix_stable=False,
    ),
    "phi-4": _spec(
        description="Phi-4: <|im_start|>ruolo<|im_sep|> ... <|im_end|>, senza a capo / no newlines; system nativo / native system",
        roles=_ALL_ROLES, native_system=True, system_handling="native", strict_alternation=False,
        end_of_turn=("<|im_end|>",), end_of_turn_is_eos=False, stop=("<|im_start|>", "<|im_sep|>", "<|im_end|>"),
        emits_bos=False, reference_bos="<|endoftext|>", reference_eos="<|im_end|>",
        control_tokens=("<|im_start|>", "<|im_sep|>", "<|im_end|>"),
    ),
    "mistral-nemo": _spec(
        description="Mistral Nemo (Tekken): [INST]...[/INST] senza spazi / no spaces; system solo se l'ultimo messaggio è dell'utente, in quel turno / system only when the last message is the user's, in that turn",
        roles=_ALL_ROLES, native_system=False, system_handling="last-user", strict_alternation=True,
        end_of_turn=("</s>",), end_of_turn_is_eos=True, stop=("[INST]", "[/INST]", "</s>"),
        emits_bos=True, reference_bos="<s>", reference_eos="</s>", control_tokens=("[INST]", "[/INST]"),
        prefix_stable=False,
    ),
    "mistral-small-3.1": _spec(
        description="Mistral Small 3.1 (Tekken v7): [SYSTEM_PROMPT]...[/SYSTEM_PROMPT][INST]...[/INST]; senza system quello di Mistral, con la data di oggi / without a system message Mistral's default one, dated today",
        roles=_ALL_ROLES, native_system=True, system_handling="native", strict_alternation=True,
        end_of_turn=("</s>",), end_of_turn_is_eos=True, stop=("[INST]", "[/INST]", "[SYSTEM_PROMPT]", "</s>"),
        emits_bos=True, reference_bos="<s>", reference_eos="</s>",
        control_tokens=("[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"),
    ),
    "alpaca-it": _spec(
        description="Alpaca italiano (Camoscio, Stambecco): ### Istruzione: / ### Input: / ### Risposta:; il system sostituisce il preambolo / system replaces the preamble",
        roles=_ALL_ROLES, native_system=False, system_handling="preamble", strict_alternation=True,
        end_of_turn=("</s>",), end_of_turn_is_eos=True,
        stop=("### Istruzione:", "### Input:", "### Risposta:", "</s>"),
        emits_bos=True, reference_bos="<s>", reference_eos="</s>",
    ),
}
# Former names still accepted in configs: ``gemma`` was the Gemma 3 layout.
_ALIASES: dict[str, str] = {"gemma": "gemma-3"}

# Official chat templates (exact ``tokenizer_config.json`` text) each registry entry renders byte for
# byte, by SHA-256: a tokenizer that ships one of them trains with the registry entry (exact masks).
# Checked against the texts in shared/reference/chat_templates by tests/test_template_auto.py.
_OFFICIAL_SHA256: dict[str, str] = {
    "796853172235ab3aaa4810013ddfe2eab481bda3306dad4f700c00d436eed596": "mistral",  # Mistral-7B-Instruct-v0.1/v0.2
    "e16746b40344d6c5b5265988e0328a0bf7277be86f1c335156eae07e29c82826": "mistral-v3",  # Mistral-7B-Instruct-v0.3
    "e8d5b5a546d3f19df16a5320c614fab05bdc4edd50e850f1afd947b503ea41cf": "llama-2",  # Llama-2-7b-chat-hf
    "ba03a121d097859c7b5b9cd03af99aafe95275210d2876f642ad9929a150f122": "llama-3",  # Meta-Llama-3-8B-Instruct
    "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65": "llama-3.1",  # Llama-3.1-8B / 3.3-70B-Instruct
    "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4": "llama-3.2",  # Llama-3.2-3B-Instruct
    "ecd6ae513fe103f0eb62e8ab5bfa8d0fe45c1074fa398b089c93a7e70c15cfd6": "gemma-2",  # gemma-2-2b-it
    "7de1c58e208eda46e9c7f86397df37ec49883aeece39fb961e0a6b24088dd3c4": "gemma-3",  # gemma-3-1b-it
    "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f": "qwen2.5",  # Qwen2.5-3B-Instruct
    "872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788": "smollm2",  # SmolLM2-135M-Instruct
    "66291cf0045c2425a3a667cf3cbb7af2b11f09e025c02f97245323ab79119362": "zephyr",  # zephyr-7b-beta
    "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5": "qwen3",  # Qwen3-0.6B (reasoning off)
    "a55ee1b1660128b7098723e0abcd92caa0788061051c62d51cbe87d9cf1974d8": "qwen3",  # Qwen3-1.7B (reasoning off)
    "3e0e275a527f249670056e0078e474eadbdd007c134b4fdfae5a7b3089702814": "smollm3",  # SmolLM3-3B (reasoning off)
    "78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90": "phi-3.5",  # Phi-3.5-mini-instruct
    "fe4120415a3858b873955c92ce3a103a95bc97c2cb00b72e62659aaf0f891ee5": "phi-4",  # phi-4
    "e4676cb56dffea7782fd3e2b577cfaf1e123537e6ef49b3ec7caa6c095c62272": "mistral-nemo",  # Mistral-Nemo-Instruct-2407
    "b404c87146f7b5ad7b98a0d5744166d4951658c952fa148fb7068e469b42f657": "mistral-small-3.1",  # Mistral-Small-3.1-24B-Instruct-2503
}


def _jinja_dir() -> Path:
    return Path(str(resources.files("hf_ita_plugin") / "templates" / "jinja"))


def list_templates() -> list[str]:
    """Names of the registry templates, sorted."""
    return sorted(_SPECS)


@lru_cache(maxsize=None)
def get_template(name: str) -> ChatTemplate:
    """The registry template called ``name``; an unknown name is a :class:`ConfigError` listing the valid ones."""
    name = _ALIASES.get(name, name) if isinstance(name, str) else name
    if not isinstance(name, str) or name not in _SPECS:
        raise ConfigError(
            bilingual(f"chat template sconosciuto {name!r}", f"unknown chat template {name!r}"),
            hint=f"available templates / template disponibili: {', '.join(list_templates())}",
        )
    path = _jinja_dir() / f"{name}.jinja"
    if not path.is_file():
        raise ConfigError(bilingual("file del chat template mancante nell'installazione",
                                    "chat template file missing from the installation", where=path),
                          hint="reinstall hf-ita-plugin (package data templates/jinja/*.jinja)")
    return ChatTemplate(name=name, source=path.read_text(encoding="utf-8"), **_SPECS[name])


def has_generation_markers(source: str) -> bool:
    """Whether a Jinja template marks assistant replies with ``{% generation %}``."""
    return bool(_MARKER_RE.search(source or ""))


def strip_generation_markers(source: str) -> str:
    """Remove the ``{% generation %}`` / ``{% endgeneration %}`` tags (registry templates render the same)."""
    return _MARKER_RE.sub("", source)


def registry_name_of(source: str | None) -> str | None:
    """The registry name whose Jinja text equals ``source`` (with or without markers), or whose
    official model template is exactly ``source`` (see :func:`official_template_name`), else ``None``."""
    if not source or not isinstance(source, str):
        return None
    return _names_by_source().get(source) or official_template_name(source)


def official_template_name(source: str | None) -> str | None:
    """The registry entry that renders exactly like ``source`` when ``source`` is, byte for byte, the
    official chat template of a model the registry covers (Llama 3.1, Qwen2.5, SmolLM2...), else ``None``."""
    if not source or not isinstance(source, str):
        return None
    return _OFFICIAL_SHA256.get(hashlib.sha256(source.encode("utf-8")).hexdigest())


@lru_cache(maxsize=1)
def _names_by_source() -> dict[str, str]:
    names = {}
    for name in list_templates():
        tpl = get_template(name)
        names[tpl.inference_source] = name
        names[tpl.source] = name
    return names


def resolve_template_source(name_or_jinja: str) -> str:
    """Jinja text for a registry name, a path to a ``.jinja`` file, or literal Jinja text."""
    if not isinstance(name_or_jinja, str) or not name_or_jinja.strip():
        raise ConfigError(
            bilingual("il chat template deve essere un nome del registro, un file .jinja o testo Jinja",
                      f"chat template must be a registry name, a .jinja file or Jinja text, got {name_or_jinja!r}"),
            hint=f"available templates / template disponibili: {', '.join(list_templates())}",
        )
    value = name_or_jinja
    if value in _SPECS or value in _ALIASES:
        return get_template(value).source
    if _JINJA_SYNTAX_RE.search(value):
        _check_syntax(value, "the literal chat template")
        return value
    path = Path(value).expanduser()
    if path.is_file():
        from ..utils.text import read_text

        try:
            text = read_text(path, error=ConfigError, option=None)
        except OSError as exc:
            raise ConfigError(bilingual("impossibile leggere il file del chat template",
                                        f"cannot read chat template file: {exc}", where=path)) from None
        if not text.strip():
            raise ConfigError(bilingual("il file del chat template è vuoto", "chat template file is empty", where=path))
        _check_syntax(text, str(path))
        return text
    if value.endswith(".jinja") or "/" in value:
        raise ConfigError(bilingual("file del chat template non trovato", "chat template file not found", where=value))
    raise ConfigError(
        bilingual(f"chat template sconosciuto {value!r}", f"unknown chat template {value!r}"),
        hint=f"available templates / template disponibili: {', '.join(list_templates())}; or a .jinja path",
    )


def _check_syntax(source: str, where: str) -> None:
    """Parse ``source`` (markers removed) with Jinja to report syntax errors before any rendering."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    try:
        env.parse(strip_generation_markers(source))
    except TemplateSyntaxError as exc:
        raise ConfigError(bilingual(f"Jinja non valido alla riga {exc.lineno}", f"invalid Jinja at line {exc.lineno}: {exc.message}",
                                    where=where)) from None
