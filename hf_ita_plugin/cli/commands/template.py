"""``hf-ita template list|show|render``: inspect the chat templates and what the model is trained on."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from ...errors import DataError, ModelError, bilingual

_EXAMPLE = [
    {"role": "system", "content": "Rispondi in italiano."},
    {"role": "user", "content": "Qual è la capitale d'Italia?"},
    {"role": "assistant", "content": "La capitale d'Italia è Roma."},
]
_ANSI_ON, _ANSI_OFF = "\x1b[1;32;4m", "\x1b[0m"
_BRACKETS = ("[[", "]]")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "template", help="chat templates: list, show, render with trainable tokens",
        description="I chat template di hf-ita / hf-ita's chat templates: the same Jinja text for training, "
                    "inference and GGUF.")
    sub = parser.add_subparsers(dest="template_command", metavar="SUBCOMMAND")
    sub.required = True

    lst = sub.add_parser("list", help="list the registry templates / elenca i template")
    lst.set_defaults(func=run_list)

    show = sub.add_parser("show", help="show a template's facts and Jinja source / mostra un template")
    show.add_argument("name", help="registry name (see: hf-ita template list)")
    show.set_defaults(func=run_show)

    render = sub.add_parser(
        "render", help="render a conversation; --mask highlights the trainable tokens",
        description="Render a conversation with a template. With --mask the tokens the model is trained on "
                    "(assistant replies + their end-of-turn token) are highlighted: ANSI colour on a terminal, "
                    "[[...]] otherwise.")
    render.add_argument("name", help="registry name, a .jinja file, or 'own' for the tokenizer's own template")
    render.add_argument("--messages", required=True, metavar="CONV.json",
                        help="JSON list of {role, content} (or {\"messages\": [...]}); .jsonl: one conversation per line")
    render.add_argument("--row", type=int, default=0, help="which line of a .jsonl file (0-based, default 0)")
    render.add_argument("--tokenizer", metavar="PATH",
                        help="local tokenizer directory, or 'embedded' for the embedded SmolLM2; without it the "
                             "family's reference BOS/EOS are used and --mask works on characters")
    render.add_argument("--mask", action="store_true", help="highlight the trainable tokens")
    render.add_argument("--system", metavar="TEXT|none|default",
                        help="add a system prompt ('default' = the Italian default) unless the conversation has one")
    render.add_argument("--generation-prompt", action="store_true",
                        help="append the assistant header used at inference")
    render.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="highlight with ANSI colours (auto: only on a terminal)")
    render.set_defaults(func=run_render)


def run_list(args: argparse.Namespace) -> int:
    from ...templates import get_template, list_templates

    names = list_templates()
    width = max(len(n) for n in names)
    print("Template disponibili / Available templates:")
    for name in names:
        print(f"  {name:<{width}}  {get_template(name).description}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ...templates import get_template, render_source

    tpl = get_template(args.name)
    facts = [
        ("nome / name", tpl.name),
        ("descrizione / description", tpl.description),
        ("ruoli / roles", ", ".join(tpl.roles)),
        ("system", f"{tpl.system_handling} ({'nativo / native' if tpl.native_system else 'incorporato / folded'})"),
        ("alternanza obbligatoria / strict alternation", "sì / yes" if tpl.strict_alternation else "no"),
        ("fine turno / end of turn", " ".join(tpl.end_of_turn) + (" (= eos_token)" if tpl.end_of_turn_is_eos else "")),
        ("stop (llama.cpp / Ollama)", " ".join(repr(s) for s in tpl.stop)),
        ("BOS nel template / BOS in the template", "sì / yes" if tpl.emits_bos else "no"),
    ]
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        print(f"{key:<{width}}  {value}")
    example = render_source(tpl.source, _EXAMPLE, special_tokens=_reference_tokens(tpl))
    print("\n--- esempio / example ---")
    print(example)
    print("--- Jinja ---")
    print(tpl.source, end="" if tpl.source.endswith("\n") else "\n")
    return 0


def _reference_tokens(tpl) -> dict[str, str]:
    return {k: v for k, v in (("bos_token", tpl.reference_bos), ("eos_token", tpl.reference_eos)) if v}


def _load_messages(path_text: str, row: int) -> list[dict[str, Any]]:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(bilingual(f"file dei messaggi non trovato: {path}", f"messages file not found: {path}"))
    from ...utils.text import read_text

    text = read_text(path, error=DataError, option=None)
    if path.suffix.lower() == ".jsonl":
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if not 0 <= row < len(lines):
            raise DataError(bilingual(f"la riga {row} non esiste ({len(lines)} conversazioni)",
                                      f"row {row} does not exist ({len(lines)} conversations)", where=path))
        lineno, text = lines[row]
        where = f"{path}: line {lineno}"
    else:
        where = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(bilingual("JSON non valido", f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                                  where=where)) from None
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    if not isinstance(data, list):
        raise DataError(bilingual('attesa una lista di messaggi o {"messages": [...]}',
                                  f"expected a list of messages or {{\"messages\": [...]}}, got {type(data).__name__}",
                                  where=where))
    return data


def _load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    if spec == "embedded":
        from ...models.embedded import ensure_embedded_model

        spec = str(ensure_embedded_model())
    if not Path(spec).expanduser().is_dir():
        raise ModelError(bilingual(f"cartella del tokenizer non trovata: {spec}", f"tokenizer directory not found: {spec}"),
                         hint="pass a local directory or 'embedded'")
    try:
        return AutoTokenizer.from_pretrained(str(Path(spec).expanduser()))
    except (OSError, ValueError) as exc:
        raise ModelError(bilingual(f"impossibile caricare un tokenizer da {spec}",
                                   f"cannot load a tokenizer from {spec}: {exc}")) from None


def _highlighter(mode: str):
    use_ansi = mode == "always" or (mode == "auto" and sys.stdout.isatty())
    return (_ANSI_ON, _ANSI_OFF) if use_ansi else _BRACKETS


def _highlight(text: str, ranges: list[tuple[int, int]], marks: tuple[str, str]) -> str:
    out, pos = [], 0
    for start, end in sorted(ranges):
        out.append(text[pos:start])
        out.append(marks[0] + text[start:end] + marks[1])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def run_render(args: argparse.Namespace) -> int:
    from ...templates import (
        apply_template,
        assistant_spans,
        get_template,
        registry_name_of,
        render,
        render_source,
        resolve_template_source,
        tokenize_conversation,
        validate_messages,
    )

    messages = _load_messages(args.messages, args.row)
    if args.name == "own" and not args.tokenizer:
        raise ModelError(bilingual("'own' usa il template del tokenizer: passa --tokenizer PATH",
                                   "'own' renders with the tokenizer's own template: pass --tokenizer PATH"))
    source = None if args.name == "own" else resolve_template_source(args.name)
    registry = registry_name_of(source) if source else None
    messages = validate_messages(messages, registry, where=args.messages, system_prompt=args.system)
    marks = _highlighter(args.color)

    if not args.tokenizer:
        tpl = get_template(registry) if registry else None
        specials = _reference_tokens(tpl) if tpl else {"bos_token": "<s>", "eos_token": "</s>"}
        if not args.mask:
            print(render_source(source, messages, add_generation_prompt=args.generation_prompt, special_tokens=specials))
            return 0
        text, spans = render_source(source, messages, special_tokens=specials, return_spans=True)
        if not spans:
            raise ModelError(bilingual("questo template non ha marcatori {% generation %}: passa --tokenizer per "
                                       "ricavare le maschere",
                                       "this template has no {% generation %} markers: pass --tokenizer to derive "
                                       "the masks"))
        print(_highlight(text, spans, marks))
        trained = sum(e - s for s, e in spans)
        print(f"caratteri addestrabili / trainable characters: {trained}/{len(text)} "
              f"(a livello di caratteri; --tokenizer per i token / character level; --tokenizer for tokens)",
              file=sys.stderr)
        return 0

    tokenizer = _load_tokenizer(args.tokenizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_template(tokenizer, source)
    for w in caught:
        print(f"hf-ita: {w.message}", file=sys.stderr)
    if not args.mask:
        print(render(tokenizer, messages, add_generation_prompt=args.generation_prompt))
        return 0
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(bilingual("--mask richiede un tokenizer veloce (tokenizer.json) per mostrare gli offset dei token",
                                   "--mask needs a fast tokenizer (tokenizer.json) to show token offsets"))
    text, _ = assistant_spans(tokenizer, messages)
    encoded = tokenize_conversation(tokenizer, messages)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ranges = _merge([tuple(off) for off, m in zip(offsets, encoded["assistant_masks"]) if m])
    print(_highlight(text, ranges, marks))
    total, trained = len(encoded["input_ids"]), sum(encoded["assistant_masks"])
    print(f"token addestrabili / trainable tokens: {trained}/{total}", file=sys.stderr)
    return 0
