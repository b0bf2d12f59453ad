"""Load conversations from any supported source into the canonical form.

The canonical form of one example is a list of messages ``[{"role": ..., "content": ...}, ...]``
with roles ``system`` (optional, first), ``user`` and ``assistant``. Supported row formats:

- ``messages``: ``{"messages": [{"role", "content"}, ...]}`` (OpenAI / TRL conversational)
- ``alpaca``: ``{"instruction", "input"?, "output"}``
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}``
- ``prompt-completion``: ``{"prompt", "completion"}``

Sources: ``bundled`` / ``bundled-heldout`` (the packaged Italian sets), a local
``.json``/``.jsonl``/``.csv``/``.parquet``/``.yaml`` file, a taxonomy directory (InstructLab
layout, see :mod:`hf_ita_plugin.data.taxonomy`), or a Hub dataset id (through ``datasets``).
Columns with other names are mapped with ``columns={"instruction": "domanda", ...}``.
Every problem names the source, the row and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ..errors import DataError, bilingual, describe_yaml_error
from ..utils.text import DEFAULT_ENCODING, check_encoding, read_text

Messages = list[dict[str, str]]

FORMATS = ("messages", "alpaca", "sharegpt", "prompt-completion")
SOURCE_FORMATS = ("auto", *FORMATS, "taxonomy")
"""Values of ``format`` accepted by :func:`load_examples` (``taxonomy``: the source is a taxonomy folder)."""
COLUMN_NAMES = ("messages", "conversations", "instruction", "input", "output", "prompt", "completion", "category", "id")
"""Canonical column names a ``columns`` mapping can fill from other columns."""
_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".yaml", ".yml")
BUNDLED_SOURCES = {"bundled": "train.jsonl", "bundled-heldout": "heldout.jsonl"}
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "model": "assistant", "system": "system"}


def bundled_data_path(name: str) -> Path:
    """Path of a file in the packaged Italian data (``train.jsonl``, ``heldout.jsonl``, ``prose_it.txt``)."""
    return Path(str(resources.files("hf_ita_plugin.data") / "bundled" / name))


def load_rows(source: str, *, split: str = "train", encoding: str = DEFAULT_ENCODING) -> tuple[list[dict[str, Any]], str]:
    """Read raw rows from ``source``; returns ``(rows, label)`` where label names the source in errors.

    ``encoding`` is the text encoding of a local json/jsonl/csv/yaml file (default UTF-8).
    """
    check_encoding(encoding, error=DataError)
    if source in BUNDLED_SOURCES:
        path = bundled_data_path(BUNDLED_SOURCES[source])
        return _read_jsonl(path), f"{source} ({path.name})"
    path = Path(source).expanduser()
    if path.is_dir():
        from .taxonomy import is_taxonomy, taxonomy_rows

        if not is_taxonomy(path):
            raise DataError(bilingual("una cartella sorgente deve essere una tassonomia",
                                      "a directory source must be a taxonomy (knowledge/, foundational_skills/, "
                                      "compositional_skills/ with qna.yaml leaves)", where=source))
        return taxonomy_rows(path), f"taxonomy {path}"
    if path.exists() or source.endswith(_FILE_SUFFIXES):
        if not path.is_file():
            raise DataError(bilingual(f"file di dati non trovato: {source}", f"data file not found: {source}"))
        return _read_file(path, encoding), str(path)
    return _read_hub(source, split), f"{source} [{split}]"


def _read_jsonl(path: Path, encoding: str = DEFAULT_ENCODING) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(read_text(path, encoding=encoding, error=DataError).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(bilingual(f"la riga {lineno} non è JSON valido",
                                      f"line {lineno} is not valid JSON ({exc.msg} at column {exc.colno})",
                                      where=path)) from None
    return rows


def _read_file(path: Path, encoding: str = DEFAULT_ENCODING) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, encoding)
    if suffix == ".json":
        try:
            data = json.loads(read_text(path, encoding=encoding, error=DataError))
        except json.JSONDecodeError as exc:
            raise DataError(bilingual("JSON non valido", f"not valid JSON ({exc.msg} at line {exc.lineno}, "
                                      f"column {exc.colno})", where=path)) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(bilingual("attesa una lista JSON di righe",
                                      f"expected a JSON list of rows (or {{\"data\": [...]}}), got {type(data).__name__}",
                                      where=path))
        return data
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(read_text(path, encoding=encoding, error=DataError))
        except yaml.YAMLError as exc:
            raise DataError(describe_yaml_error(path, exc)) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(bilingual("attesa una lista YAML di righe",
                                      f"expected a YAML list of rows (or data: [...]), got {type(data).__name__}",
                                      where=path))
        return data
    if suffix == ".csv":
        return _read_csv(path, encoding)
    if suffix == ".parquet":
        from datasets import load_dataset

        ds = load_dataset("parquet", data_files=str(path), split="train")
        return [dict(r) for r in ds]
    raise DataError(bilingual(f"tipo di file {suffix!r} non supportato", f"unsupported file type {suffix!r}", where=path),
                    hint="use .jsonl, .json, .csv, .parquet or .yaml")


def _read_csv(path: Path, encoding: str) -> list[dict[str, Any]]:
    text = read_text(path, encoding=encoding, error=DataError)  # a bad byte is reported with its line
    if not text.strip():
        raise DataError(bilingual("il file CSV è vuoto (nemmeno l'intestazione)", "the CSV file is empty (not even a "
                                  "header row)", where=path), hint="the first line names the columns, e.g. instruction,output")
    from datasets import load_dataset

    try:
        ds = load_dataset("csv", data_files=str(path), split="train", encoding=encoding)
    except Exception as exc:  # pandas/datasets raise many types; report them as one readable error
        detail = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
        raise DataError(bilingual("CSV non leggibile", f"cannot read the CSV: {type(exc).__name__}: {detail}",
                                  where=path), hint="check the delimiter (comma), the quoting and the header row") from None
    return [dict(r) for r in ds]


def _read_hub(dataset_id: str, split: str) -> list[dict[str, Any]]:
    from datasets import load_dataset

    try:
        ds = load_dataset(dataset_id, split=split)
    except Exception as exc:  # datasets raises many types; report them as one readable error
        raise DataError(bilingual(f"impossibile caricare il dataset {dataset_id!r} (split {split!r})",
                                  f"cannot load dataset {dataset_id!r} (split {split!r}): "
                                  f"{type(exc).__name__}: {str(exc)[:300]}"),
                        hint="check the Hub id, your access and network, or pass a local file") from None
    return [dict(r) for r in ds]


def detect_format(row: dict[str, Any], *, where: str = "row") -> str:
    """Guess the row format from its keys."""
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    raise DataError(bilingual("formato della riga non riconoscibile",
                              f"cannot tell the format of a row with keys {sorted(row)}", where=where),
                    hint=f"use one of the formats {', '.join(FORMATS)} or set data.format")


def to_messages(row: Any, fmt: str, *, where: str) -> Messages:
    """Convert one raw row to canonical messages; ``where`` names source and row in errors."""
    if not isinstance(row, dict):
        raise DataError(bilingual("atteso un oggetto", f"expected an object, got {type(row).__name__}", where=where))
    if fmt == "messages":
        msgs = row.get("messages")
        if not isinstance(msgs, list):
            raise DataError(bilingual("il campo 'messages' deve essere una lista di {role, content}",
                                      "field 'messages' must be a list of {role, content}", where=where))
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise DataError(bilingual(f"messages[{i}] deve avere 'role' e 'content'",
                                          f"messages[{i}] must have 'role' and 'content'", where=where))
            out.append({"role": m["role"], "content": m["content"]})
        return out
    if fmt == "alpaca":
        instruction, inp, output = row.get("instruction"), row.get("input") or "", row.get("output")
        _require_text(instruction, where, "instruction")
        _require_text(output, where, "output")
        if not isinstance(inp, str):
            raise DataError(bilingual("il campo 'input' deve essere testo",
                                      f"field 'input' must be text, got {type(inp).__name__}", where=where))
        user = instruction.strip() if not inp.strip() else f"{instruction.strip()}\n\n{inp.strip()}"
        return [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    if fmt == "sharegpt":
        conv = row.get("conversations")
        if not isinstance(conv, list):
            raise DataError(bilingual("il campo 'conversations' deve essere una lista di {from, value}",
                                      "field 'conversations' must be a list of {from, value}", where=where))
        out = []
        for i, m in enumerate(conv):
            if not isinstance(m, dict) or "from" not in m or "value" not in m:
                raise DataError(bilingual(f"conversations[{i}] deve avere 'from' e 'value'",
                                          f"conversations[{i}] must have 'from' and 'value'", where=where))
            role = _SHAREGPT_ROLES.get(str(m["from"]).lower())
            if role is None:
                raise DataError(bilingual(f"conversations[{i}].from = {m['from']!r} non è un ruolo valido",
                                          f"conversations[{i}].from = {m['from']!r} is not one of "
                                          f"{sorted(_SHAREGPT_ROLES)}", where=where))
            out.append({"role": role, "content": m["value"]})
        return out
    if fmt == "prompt-completion":
        _require_text(row.get("prompt"), where, "prompt")
        _require_text(row.get("completion"), where, "completion")
        return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]
    raise DataError(bilingual(f"formato di dati sconosciuto {fmt!r}", f"unknown data format {fmt!r}"),
                    hint=f"one of: auto, {', '.join(FORMATS)}")


def _require_text(value: Any, where: str, field: str) -> None:
    if value is None:
        raise DataError(bilingual(f"campo '{field}' mancante", f"missing field '{field}'", where=where))
    if not isinstance(value, str):
        raise DataError(bilingual(f"il campo '{field}' deve essere testo",
                                  f"field '{field}' must be text, got {type(value).__name__}", where=where))
    if not value.strip():
        raise DataError(bilingual(f"il campo '{field}' è vuoto", f"field '{field}' is empty", where=where))


def map_columns(row: Any, columns: dict[str, str] | None, *, where: str) -> Any:
    """``row`` with canonical columns filled from the mapped ones (``{"instruction": "domanda"}``)."""
    if not columns or not isinstance(row, dict):
        return row
    out = dict(row)
    for canonical, column in columns.items():
        if column not in row:
            raise DataError(bilingual(f"colonna {column!r} mancante (associata a {canonical!r})",
                                      f"missing column {column!r} (mapped to {canonical!r})", where=where),
                            hint=f"the row has columns {sorted(map(str, row))}")
        out[canonical] = row[column]
    return out


def check_columns(columns: dict[str, str] | None) -> None:
    """Validate a ``columns`` mapping: canonical name -> source column name."""
    for canonical, column in (columns or {}).items():
        if canonical not in COLUMN_NAMES:
            raise DataError(bilingual(f"colonna canonica sconosciuta {canonical!r}",
                                      f"unknown canonical column {canonical!r}", where="column mapping"),
                            hint=f"map one of {', '.join(COLUMN_NAMES)} to a column of your data, e.g. instruction=domanda")
        if not isinstance(column, str) or not column:
            raise DataError(bilingual(f"{canonical!r} deve indicare una colonna", f"{canonical!r} must name a column, "
                                      f"got {column!r}", where="column mapping"))


def load_conversations(source: str, *, format: str = "auto", split: str = "train",
                       limit: int | None = None, columns: dict[str, str] | None = None,
                       encoding: str = DEFAULT_ENCODING) -> list[Messages]:
    """Load ``source`` as a list of canonical conversations; the first bad row is an error.

    >>> convs = load_conversations("bundled")          # the packaged Italian training set
    >>> convs[0][-1]["role"]
    'assistant'
    """
    rows, label = _rows_for(source, format, split, encoding)
    check_columns(columns)
    if not rows:
        raise DataError(bilingual("il dataset è vuoto", "the dataset is empty", where=label))
    convs = list(_convert_all(rows, _row_format(format), label, columns))
    return convs[:limit] if limit else convs


@dataclass
class Example:
    """One loaded conversation and where it came from."""

    index: int
    """Row index in the source."""
    messages: Messages
    category: str | None = None
    id: str | None = None


@dataclass
class InvalidRow:
    """A row that could not be converted: its index, what is wrong, the raw row, a reason code."""

    index: int
    problem: str
    row: Any
    reason: str = "invalid"


@dataclass
class LoadedData:
    """The result of a lenient load: usable examples, and every unusable row with its index and reason."""

    label: str
    examples: list[Example]
    invalid: list[InvalidRow]
    total_rows: int


def load_examples(source: str, *, format: str = "auto", split: str = "train", limit: int | None = None,
                  columns: dict[str, str] | None = None, strict: bool = False,
                  encoding: str = DEFAULT_ENCODING) -> LoadedData:
    """Load ``source`` keeping row indices and categories; bad rows are collected, not fatal.

    With ``strict=True`` the first bad row raises :class:`DataError` (like :func:`load_conversations`).
    ``limit`` keeps the first ``limit`` rows of the source; ``encoding`` is that of a local text file.
    """
    rows, label = _rows_for(source, format, split, encoding)
    check_columns(columns)
    if not rows:
        raise DataError(bilingual("il dataset è vuoto", "the dataset is empty", where=label))
    if limit:
        rows = rows[:limit]
    fmt = _row_format(format)
    examples, invalid = [], []
    for index, row in enumerate(rows):
        where = f"{label}: row {index}"
        try:
            mapped = map_columns(row, columns, where=where)
            row_fmt = detect_format(mapped, where=where) if fmt == "auto" and isinstance(mapped, dict) else fmt
            messages = to_messages(mapped, row_fmt, where=where)
        except DataError as exc:
            if strict:
                raise
            invalid.append(InvalidRow(index, exc.message.removeprefix(f"{where}: "), row))
            continue
        category = mapped.get("category") if isinstance(mapped.get("category"), str) else None
        ident = mapped.get("id") if isinstance(mapped.get("id"), (str, int)) else None
        examples.append(Example(index, messages, category, None if ident is None else str(ident)))
    return LoadedData(label, examples, invalid, len(rows))


def seeded_sample(items: list[Any], limit: int | None, seed: int) -> list[Any]:
    """At most ``limit`` items chosen at random with ``seed``, in their original order.

    Unlike ``items[:limit]`` the sample spreads over the whole source, which matters for files
    grouped by category (the bundled data is).
    """
    if not limit or limit >= len(items):
        return list(items)
    import random

    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def _rows_for(source: str, format: str, split: str, encoding: str = DEFAULT_ENCODING) -> tuple[list[Any], str]:
    if format not in SOURCE_FORMATS:
        raise DataError(bilingual(f"formato di dati sconosciuto {format!r}", f"unknown data format {format!r}"),
                        hint=f"one of: {', '.join(SOURCE_FORMATS)}")
    if format == "taxonomy" and not Path(source).expanduser().is_dir():
        raise DataError(bilingual(f"{source} non è una cartella", f"{source} is not a directory", where="--format taxonomy"),
                        hint="pass the taxonomy's root folder")
    return load_rows(source, split=split, encoding=encoding)


def _row_format(format: str) -> str:
    return "messages" if format == "taxonomy" else format


def _convert_all(rows: Iterable[Any], fmt: str, label: str, columns: dict[str, str] | None = None) -> Iterable[Messages]:
    for index, row in enumerate(rows):
        where = f"{label}: row {index}"
        row = map_columns(row, columns, where=where)
        row_fmt = detect_format(row, where=where) if fmt == "auto" and isinstance(row, dict) else fmt
        yield to_messages(row, row_fmt, where=where)
