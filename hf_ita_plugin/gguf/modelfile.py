"""Ollama ``Modelfile`` next to each GGUF: FROM, TEMPLATE (Go template), stop tokens, default parameters.

A registry family whose format needs per-turn logic, trimming or today's date (Llama 2/3, Gemma, Mistral
v3/Nemo/Small, Phi-3.5, Qwen3, SmolLM3) has its own Go template (:mod:`hf_ita_plugin.templates.ollama`),
used when the tokenizer's chat template is that family's (registry text or official text by SHA-256) and
renders the suite exactly like the family's registry Jinja. Any other template is derived from the model's
own Jinja chat template (the single source of truth): the Jinja template is rendered by transformers with
marker contents, the text around each role's marker becomes that role's prefix/suffix, and the result is
checked by re-rendering the suite's conversations from those pieces and comparing with transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..utils.atomic import write_text
from ..errors import ModelError, bilingual
from ..templates.ollama import BOS_PLACEHOLDER, EOS_PLACEHOLDER, go_template_source, library_blocks
from . import italian_suite

_MARK = {"system": "\x00SYSTEM\x00", "user": "\x00USER\x00", "assistant": "\x00ASSISTANT\x00"}


@dataclass
class RolePieces:
    """Text before/after each role's content, and the generation prompt, as the chat template writes them."""

    prefix: dict[str, str]
    suffix: dict[str, str]
    generation_prompt: str
    default_system: str | None
    bos_stripped: str
    fold: tuple[str, str] | None = None
    """Templates without a system role (Gemma, Mistral v1) write the system text inside the first user
    turn: ``(before, after)`` around it, after the user prefix. ``None``: the system has its own block."""
    trimmed: frozenset[str] = frozenset()
    """Roles whose content the template strips of edge whitespace (Jinja ``|trim``, Python's str.strip)."""


def _render(tok, messages, add_generation_prompt: bool) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def role_pieces(tok, add_bos: bool) -> RolePieces:
    """Split the chat template into per-role prefix/suffix strings (ModelError when it cannot be done)."""
    m = _MARK
    conv = [{"role": "system", "content": m["system"]}, {"role": "user", "content": m["user"]}, {"role": "assistant", "content": m["assistant"]}]
    second_user = "\x00USER2\x00"
    try:
        full = _render(tok, conv, False)
        with_prompt = _render(tok, conv[:2], True)
        without_prompt = _render(tok, conv[:2], False)
        user_only = _render(tok, conv[1:2], False)
        follow_up = _render(tok, [*conv[1:], {"role": "user", "content": second_user}], False)
    except Exception as exc:
        raise ModelError(f"il template non accetta system/user/assistant / the chat template rejects a system+user+assistant conversation ({exc})") from exc
    bos = tok.bos_token or ""
    stripped = ""
    if add_bos and bos and full.startswith(bos):
        stripped = bos  # llama.cpp/Ollama add BOS themselves
        full, with_prompt, without_prompt, user_only, follow_up = (
            t[len(bos):] if t.startswith(bos) else t for t in (full, with_prompt, without_prompt, user_only, follow_up)
        )
    try:
        s0 = full.index(m["system"]); s1 = s0 + len(m["system"])
        u0 = full.index(m["user"]); u1 = u0 + len(m["user"])
        a0 = full.index(m["assistant"]); a1 = a0 + len(m["assistant"])
        f0 = follow_up.index(m["assistant"]) + len(m["assistant"]); f1 = follow_up.index(second_user)
        uo = user_only.index(m["user"])
    except ValueError as exc:
        raise ModelError("il template non riporta i messaggi così come sono / the chat template does not copy message contents verbatim") from exc
    if not s1 <= u0 <= u1 <= a0:
        raise ModelError("il template non separa i ruoli / the chat template does not keep roles in separate blocks")
    gen = with_prompt[len(without_prompt):] if with_prompt.startswith(without_prompt) else ""
    asst_suffix = full[a1:]
    between_au = follow_up[f0:f1]  # assistant suffix + user prefix
    if not between_au.startswith(asst_suffix):
        raise ModelError("il template chiude i turni dell'assistente in modo variabile / assistant turns end differently mid-conversation")
    user_prefix = between_au[len(asst_suffix):]
    sys_prefix = full[:s0]
    between_su = full[s1:u0]
    between_ua = full[u1:a0]
    fold = None
    if not between_su.endswith(user_prefix) and user_prefix and sys_prefix.endswith(user_prefix):
        # system folded into the first user turn: <user prefix><before>SYSTEM<after>USER
        fold = ("", between_su)
        sys_prefix, system_suffix = sys_prefix[: len(sys_prefix) - len(user_prefix)], ""
    elif not between_su.endswith(user_prefix):
        raise ModelError("il template usa intestazioni utente diverse / user turns start differently depending on position")
    else:
        system_suffix = between_su[: len(between_su) - len(user_prefix)]
    if not user_only[:uo].endswith(user_prefix):
        raise ModelError("il template usa intestazioni utente diverse / user turns start differently depending on position")
    user_suffix = without_prompt[without_prompt.index(m["user"]) + len(m["user"]):]
    if not between_ua.startswith(user_suffix):
        raise ModelError("il template chiude i turni utente in modo variabile / user turns end differently mid-conversation")
    asst_prefix = between_ua[len(user_suffix):]
    default_system_block = user_only[: uo - len(user_prefix)]
    default_system = None
    if default_system_block and fold is None:
        if default_system_block.startswith(sys_prefix) and default_system_block.endswith(system_suffix):
            default_system = default_system_block[len(sys_prefix): len(default_system_block) - len(system_suffix)]
        else:
            raise ModelError("il template aggiunge testo non riconosciuto senza system / the template adds unrecognised text when no system message is given")
    elif default_system_block:
        raise ModelError("il template aggiunge testo non riconosciuto senza system / the template adds unrecognised text when no system message is given")
    return RolePieces(
        prefix={"system": sys_prefix, "user": user_prefix, "assistant": asst_prefix},
        suffix={"system": system_suffix, "user": user_suffix, "assistant": asst_suffix},
        generation_prompt=gen, default_system=default_system, bos_stripped=stripped, fold=fold,
        trimmed=_trimmed_roles(tok, conv),
    )


def _trimmed_roles(tok, conv: list[dict[str, str]]) -> frozenset[str]:
    """Roles whose marker content, padded with whitespace, renders as if unpadded (the template trims it)."""
    plain = _render(tok, conv, False)
    roles = set()
    for i, message in enumerate(conv):
        padded = [*conv[:i], {**message, "content": f" \n\u3000{message['content']}\t\u00a0"}, *conv[i + 1:]]
        try:
            if _render(tok, padded, False) == plain:
                roles.add(message["role"])
        except Exception:
            continue
    return frozenset(roles)


def render_from_pieces(pieces: RolePieces, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """Render ``messages`` the way the generated Go template does (used to self-check it)."""
    if pieces.default_system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": pieces.default_system}, *messages]

    def text(m: dict[str, str]) -> str:
        return m["content"].strip() if m["role"] in pieces.trimmed else m["content"]

    parts = []
    for i, m in enumerate(messages):
        content = text(m)
        if pieces.fold and m["role"] == "user" and i == 1 and messages[0]["role"] == "system":
            content = pieces.fold[0] + text(messages[0]) + pieces.fold[1] + content
        if pieces.fold and m["role"] == "system":
            content = ""  # written inside the first user turn
        parts.append(pieces.prefix[m["role"]] + content + pieces.suffix[m["role"]])
    text = "".join(parts)
    return text + (pieces.generation_prompt if add_generation_prompt else "")


def _go_quote(text: str) -> str:
    # Go templates take literal text as-is, except the "{{" delimiter.
    return text.replace("{{", '{{ "{{" }}')


def go_template(pieces: RolePieces) -> str:
    """Ollama TEMPLATE over ``.Messages`` equivalent to the chat template.

    Written on one line without ``{{-`` trim markers (after the ``templates/go/lib`` blocks it calls), so whitespace in the role headers is kept exactly.
    When the chat template writes a system block of its own for conversations without a system message
    (SmolLM2's default prompt), the TEMPLATE writes it too. Contents of the roles the template trims go
    through the ``trim`` block (Python's str.strip, see ``templates/go/lib``).
    """
    p, s, q = pieces.prefix, pieces.suffix, _go_quote

    def content(role: str, expr: str) -> str:
        return f'{{{{ template "trim" {expr} }}}}' if role in pieces.trimmed else f"{{{{ {expr} }}}}"

    default = ""
    if pieces.default_system is not None:
        default = (
            '{{ if or (not .Messages) (ne (index .Messages 0).Role "system") }}'
            f'{q(p["system"])}{q(pieces.default_system)}{q(s["system"])}{{{{ end }}}}'
        )
    fold = ""
    if pieces.fold is not None:
        fold = ('{{ if and (eq $i 1) (eq (index $.Messages 0).Role "system") }}'
                f'{q(pieces.fold[0])}{content("system", "(index $.Messages 0).Content")}{q(pieces.fold[1])}{{{{ end }}}}')
    template = "".join([
        default,
        "{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}",
        f'{{{{ if eq $m.Role "system" }}}}{q(p["system"])}{"" if pieces.fold else content("system", "$m.Content")}{q(s["system"])}',
        f'{{{{ else if eq $m.Role "user" }}}}{q(p["user"])}{fold}{content("user", "$m.Content")}{q(s["user"])}',
        f'{{{{ if $last }}}}{q(pieces.generation_prompt)}{{{{ end }}}}',
        f'{{{{ else if eq $m.Role "assistant" }}}}{q(p["assistant"])}{content("assistant", "$m.Content")}'
        f'{{{{ if not $last }}}}{q(s["assistant"])}{{{{ end }}}}',
        "{{ end }}{{ end }}",
    ])
    return library_blocks(template) + template


def generic_pieces(tok, add_bos: bool) -> RolePieces:
    """The role pieces of a template without a Go template of its own, checked over the Italian suite
    (:class:`ModelError` when re-rendering from them differs from transformers)."""
    pieces = role_pieces(tok, add_bos)
    for conv in self_check_conversations():
        try:
            expected = _render(tok, conv, True)
        except Exception:
            continue
        if pieces.bos_stripped and expected.startswith(pieces.bos_stripped):
            expected = expected[len(pieces.bos_stripped):]
        if render_from_pieces(pieces, conv, True) != expected:
            raise ModelError("il template non è traducibile in un TEMPLATE Ollama / the chat template cannot be expressed as an Ollama TEMPLATE (per-turn logic)")
    return pieces


def stop_tokens(tok, pieces: RolePieces) -> list[str]:
    """End-of-turn strings: the assistant suffix's special token(s) and EOS."""
    stops: list[str] = []
    specials = set(tok.all_special_tokens) | {t.content for t in tok.added_tokens_decoder.values() if t.special}
    suffix = pieces.suffix["assistant"]
    for token in sorted(specials, key=len, reverse=True):
        if token and token in suffix and token not in stops:
            stops.append(token)
    if tok.eos_token and tok.eos_token not in stops:
        stops.append(tok.eos_token)
    return stops


def _defaults(model_dir: Path, context_length: int | None) -> dict[str, float | int]:
    params: dict[str, float | int] = {"temperature": 0.7, "top_p": 0.9, "repeat_penalty": 1.1}
    gen = model_dir / "generation_config.json"
    if gen.is_file():
        cfg = json.loads(gen.read_text(encoding="utf-8"))
        for key in ("temperature", "top_p", "top_k"):
            if isinstance(cfg.get(key), (int, float)) and cfg.get("do_sample", True):
                params[key] = cfg[key]
    if context_length:
        params["num_ctx"] = int(min(context_length, 4096))
    return params


def training_system_prompt(run_dir: str | Path | None) -> str | None:
    """The system prompt a run trained with (``data.system_prompt`` of its ``run_config.yaml``), or ``None``."""
    if run_dir is None:
        return None
    from ..rundir import RunDir, read_yaml_mapping
    from ..templates import resolve_system_prompt

    path = RunDir(run_dir).config_path
    if not path.is_file():
        return None
    data = read_yaml_mapping(path).get("data") or {}
    return resolve_system_prompt(data.get("system_prompt", "default")) if isinstance(data, dict) else None


@dataclass
class FamilyTemplate:
    """A registry family's own Go template, filled in for one tokenizer."""

    name: str
    template: str
    stops: list[str]


def self_check_conversations() -> list[list[dict[str, str]]]:
    """The Italian suite's conversations, as given and with whitespace at the edges of every content."""
    padded = [[{**m, "content": f" \n{m['content']}\t "} for m in conv] for conv in italian_suite.CONVERSATIONS]
    return [*italian_suite.CONVERSATIONS, *padded]


def family_template(tok, add_bos: bool) -> FamilyTemplate | None:
    """The Go template of the registry family whose chat template ``tok`` carries, or ``None`` (foreign
    template, or a family the generic derivation serves).

    Self-check: over the Italian suite (contents as given and padded with whitespace) the tokenizer's
    template must render exactly what the family's registry Jinja renders, the text the family's Go
    template is verified against with Go's own ``text/template`` (``tests/test_modelfile_go.py``);
    otherwise :class:`ModelError`."""
    from ..templates import get_template, registry_name_of, render_source

    name = registry_name_of(getattr(tok, "chat_template", None))
    source = go_template_source(name) if name else None
    if source is None:
        return None
    spec = get_template(name)
    bos, eos = tok.bos_token or "", tok.eos_token or ""
    tokens = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v}
    for conv in self_check_conversations():
        try:
            expected = _render(tok, conv, True)
        except Exception:
            continue
        if expected != render_source(spec.inference_source, conv, add_generation_prompt=True, special_tokens=tokens):
            raise ModelError(bilingual(
                f"il chat template del tokenizer non rende come la famiglia {name!r} del registro: il suo TEMPLATE "
                "Ollama non è verificabile",
                f"the tokenizer's chat template does not render like the registry family {name!r}: its Ollama "
                "TEMPLATE cannot be verified"))
    lead = "" if add_bos or not (spec.emits_bos and bos) else _go_quote(bos)
    template = lead + source.replace(BOS_PLACEHOLDER, _go_quote(bos)).replace(EOS_PLACEHOLDER, _go_quote(eos))
    stops = []
    for stop in (*spec.stop, *spec.end_of_turn_for(tok), eos):
        if stop and stop not in stops:
            stops.append(stop)
    return FamilyTemplate(name=name, template=template, stops=stops)


def build_modelfile(gguf_file: str | Path, tok, model_dir: str | Path, *, add_bos: bool, context_length: int | None = None,
                    system: str | None = None) -> str:
    """Text of an Ollama Modelfile for ``gguf_file`` (referenced by its file name, next to the Modelfile).

    ``system`` (the prompt the model was trained with, see :func:`training_system_prompt`) becomes the
    ``SYSTEM`` line, which Ollama puts first when a conversation has no system message; without it the
    chat template's own default system text, if any."""
    family = family_template(tok, add_bos)
    lines = [f"FROM ./{Path(gguf_file).name}", ""]
    if family is not None:
        template, stops = family.template, family.stops
    else:
        pieces = generic_pieces(tok, add_bos)
        template, stops = go_template(pieces), stop_tokens(tok, pieces)
        system = system if system is not None else pieces.default_system
    if '"""' in template:
        raise ModelError('il template contiene """ / the chat template contains """, which a Modelfile cannot quote')
    lines += [f'TEMPLATE """{template}"""', ""]
    if system:
        if '"""' in system:
            raise ModelError('il prompt di sistema contiene """ / the system prompt contains """, which a Modelfile cannot quote')
        lines += [f'SYSTEM """{system}"""', ""]
    for stop in stops:
        lines.append(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}")
    for key, value in _defaults(Path(model_dir), context_length).items():
        lines.append(f"PARAMETER {key} {value}")
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_file: str | Path, tok, model_dir: str | Path, *, add_bos: bool, context_length: int | None = None,
                    system: str | None = None) -> Path:
    """Write ``<name>.Modelfile`` next to ``gguf_file`` atomically and return its path."""
    gguf_file = Path(gguf_file)
    target = gguf_file.with_name(gguf_file.stem + ".Modelfile")
    text = build_modelfile(gguf_file, tok, model_dir, add_bos=add_bos, context_length=context_length, system=system)
    return write_text(target, text)


def build_adapter_modelfile(adapter_gguf: str | Path, base_gguf: str | Path, tok, model_dir: str | Path, *, add_bos: bool,
                            context_length: int | None = None, system: str | None = None) -> str:
    """Text of an Ollama Modelfile that applies the LoRA GGUF ``adapter_gguf`` on the base GGUF ``base_gguf``
    (both referenced by file name, next to the Modelfile): ``FROM`` the base, ``ADAPTER`` the LoRA, then the
    same TEMPLATE, SYSTEM and parameters as :func:`build_modelfile` (the tokenizer is the base's)."""
    text = build_modelfile(base_gguf, tok, model_dir, add_bos=add_bos, context_length=context_length, system=system)
    head, rest = text.split("\n", 1)
    return f"{head}\nADAPTER ./{Path(adapter_gguf).name}\n{rest}"


def write_adapter_modelfile(adapter_gguf: str | Path, base_gguf: str | Path, tok, model_dir: str | Path, *, add_bos: bool,
                            context_length: int | None = None, system: str | None = None) -> Path:
    """Write ``<adapter>.Modelfile`` next to the LoRA GGUF atomically: ``FROM`` the base GGUF by its path
    relative to the Modelfile (Ollama resolves it from there), ``ADAPTER`` the LoRA. Returns its path."""
    import os

    adapter_gguf, base_gguf = Path(adapter_gguf), Path(base_gguf)
    text = build_adapter_modelfile(adapter_gguf, base_gguf, tok, model_dir, add_bos=add_bos,
                                   context_length=context_length, system=system)
    relative = Path(os.path.relpath(base_gguf.resolve(), adapter_gguf.resolve().parent)).as_posix()
    head, rest = text.split("\n", 1)
    text = f"FROM {relative if relative.startswith('../') else './' + relative}\n{rest}"
    return write_text(adapter_gguf.with_name(adapter_gguf.stem + ".Modelfile"), text)
