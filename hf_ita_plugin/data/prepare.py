"""The data preparation pipeline: load -> clean -> dedup -> (tokenize) -> (curriculum) -> write.

``hf-ita data prepare SOURCE --output-dir DIR`` runs :func:`prepare`, which writes, as one atomic
directory:

- ``DIR/train.jsonl``: the kept conversations ``{"messages", "category"?, "id"?, "source_index",
  "phase"?}`` (readable by :func:`hf_ita_plugin.data.load_conversations` and so by the recipe);
- ``DIR/rejected.jsonl``: every row that was not kept, with its index, reason and detail;
- ``DIR/report.json`` and ``DIR/report.md``: counts and examples per reason and per fix.

Every input row is either kept or rejected with a reason, never silently dropped. Cleaning,
dedup signatures and template rendering run in worker processes on large inputs (chunks, results
in input order); deduplication, in this process, keeps the first occurrence. Tokens are counted
in a second parallel pass over the kept conversations only, or before dedup when ``max_tokens``
needs them there (a row dropped for its length never shadows a later copy of itself).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from ..utils import atomic
from ..utils.manifest import check_replaceable, write_manifest
from ..utils.text import DEFAULT_ENCODING
from ..errors import ConfigError, DataError, bilingual
from .cleaning import CleaningConfig, CleanOutcome, clean_conversation
from .dedup import DedupConfig, Deduplicator, Signature, signatures
from .loaders import Example, LoadedData, load_examples
from .report import DataReport
from .token_count import TokenCounter, token_counter

CURRICULA = ("none", "lab")
PARALLEL_MIN_ROWS = 4000
"""Below this many rows the pipeline runs in-process (starting workers would cost more)."""
_CHUNK = 256


@dataclass
class PrepareOptions:
    """How to prepare a dataset (every field has a CLI flag in ``hf-ita data prepare``)."""

    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    curriculum: str = "none"
    """``none`` (input order) or ``lab`` (knowledge, then foundational, then compositional skills)."""
    short_to_long: bool = False
    """With a curriculum: shorter conversations first inside each phase."""
    tokenizer: str | None = None
    """``embedded``, a local model directory or a Hub id: count tokens with its chat template."""
    template: str | None = None
    """Registry chat template to apply to ``tokenizer`` (``None`` keeps the tokenizer's own)."""
    system_prompt: str | None = None
    """System prompt added before counting tokens (``default``, ``none``/``None`` or the text)."""
    max_tokens: int | None = None
    """Conversations longer than this many tokens are rejected (``too_many_tokens``)."""
    workers: int = 0
    """Processes for cleaning and signatures; 0 = one per CPU core (in-process for small inputs)."""
    fast_token_counter: bool = True
    """Count with tiktoken where it is verified to give the tokenizer's counts; ``False``: always with
    the tokenizer itself (same counts, slower; the reference the benchmark compares against)."""
    progress: bool = True


@dataclass
class Prepared:
    """Kept examples (cleaned, in output order) and the report."""

    examples: list[Example]
    report: DataReport
    phases: list[str] | None = None
    token_counts: list[int] | None = None

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i, ex in enumerate(self.examples):
            row: dict[str, Any] = {"messages": ex.messages}
            if ex.category is not None:
                row["category"] = ex.category
            if ex.id is not None:
                row["id"] = ex.id
            row["source_index"] = ex.index
            if self.phases is not None:
                row["phase"] = self.phases[i]
            out.append(row)
        return out


@dataclass
class PrepareResult:
    out_dir: Path
    train_path: Path
    report_path: Path
    report: DataReport


# ---------------------------------------------------------------------- worker side
Processed = tuple[list | None, str | None, str, tuple, Signature | None, str | None, int | None]
"""Per row, as it travels back from a worker: the cleaned messages (``None`` when rejected, or
when cleaning left every message as it was: the caller has them already), the rejection reason
and detail, the fixes, the dedup signature, the rendered text (when tokens are counted after
dedup) and the token count (when they are counted before it, for ``max_tokens``)."""

_WORKER_TOKENIZERS: dict[tuple[str, str | None], Any] = {}
_WORKER_COUNTERS: dict[tuple[str, str | None, bool], TokenCounter] = {}


def _tokenizer_for(options: PrepareOptions):
    key = (options.tokenizer, options.template)
    if key not in _WORKER_TOKENIZERS:  # loaded once per process (forked workers inherit the parent's)
        _WORKER_TOKENIZERS[key] = load_tokenizer(*key)
    return _WORKER_TOKENIZERS[key]


def _counter_for(options: PrepareOptions) -> TokenCounter:
    key = (options.tokenizer, options.template, options.fast_token_counter)
    if key not in _WORKER_COUNTERS:  # built and verified once per process, like the tokenizer
        tokenizer = _tokenizer_for(options)
        _WORKER_COUNTERS[key] = token_counter(tokenizer) if options.fast_token_counter else TokenCounter(tokenizer)
    return _WORKER_COUNTERS[key]


def _counts_before_dedup(options: PrepareOptions) -> bool:
    """Whether tokens are counted before dedup: only a token limit needs them that early."""
    return bool(options.tokenizer and options.max_tokens)


def _process_chunk(args: tuple[list[Any], PrepareOptions]) -> list[Processed]:
    """Clean, sign and render a chunk of conversations (and count their tokens for ``max_tokens``)."""
    chunk, options = args
    results: list[list[Any]] = [[clean_conversation(messages, options.cleaning), None, None, None] for messages in chunk]
    if options.tokenizer:
        from ..templates import render_many, with_system_prompt

        kept = [row for row in results if row[0].kept]
        # rendered here, before dedup, so a conversation the template rejects never shadows a copy
        texts = render_many(_tokenizer_for(options), [with_system_prompt(row[0].messages, options.system_prompt)
                                                      for row in kept])
        for row, text in zip(kept, texts):
            if isinstance(text, str):
                row[2] = text
            else:  # the template rejected the conversation (e.g. roles it cannot render)
                row[0] = CleanOutcome(None, "invalid", text.message)
        if _counts_before_dedup(options):
            rendered = [row for row in results if row[2] is not None]
            for row, n in zip(rendered, _count_chunk(([row[2] for row in rendered], options))):
                row[2], row[3] = None, n
    if options.dedup.exact or options.dedup.near:  # signatures only for the rows still kept
        kept = [row for row in results if row[0].kept]
        for row, sig in zip(kept, signatures([row[0].messages for row in kept], options.dedup,
                                             [row[0].words for row in kept])):
            row[1] = sig
    return [(_changed_messages(outcome.messages, original), None if outcome.kept else outcome.reason or "invalid",
             outcome.detail, outcome.fixes, sig, text, n) for (outcome, sig, text, n), original in zip(results, chunk)]


def _changed_messages(cleaned: list[dict[str, Any]] | None, original: Any) -> list[dict[str, Any]] | None:
    """``cleaned``, or ``None`` when it holds the same contents as ``original`` (not sent back again)."""
    if cleaned is None or all(c["content"] == o["content"] for c, o in zip(cleaned, original)):
        return None
    return cleaned


def _count_chunk(args: tuple[list[str], PrepareOptions]) -> list[int]:
    """Token counts of rendered conversations: ``len(tokenize_conversation(...)["input_ids"])``.

    The rendered text already holds the template's special tokens, so none are added (see
    :mod:`.token_count` for how the counts are computed).
    """
    texts, options = args
    return _counter_for(options).counts(texts)


def _init_worker() -> None:
    # A forked child must not use the tokenizers thread pool its parent may have started (deadlock):
    # batches are tokenized sequentially inside each worker, the workers give the parallelism.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _worker_count(requested: int, rows: int) -> int:
    if requested < 0:
        raise ConfigError(bilingual("workers deve essere >= 0", f"workers must be >= 0, got {requested}"))
    if rows < PARALLEL_MIN_ROWS and requested == 0:
        return 1
    return requested or max(1, min(os.cpu_count() or 1, 8))


class _Workers:
    """Runs a chunk function over chunks in this process or in a pool of worker processes.

    Results come back in input order either way, so the pipeline is deterministic. One pool
    serves every pass (cleaning, then token counting) of a :func:`prepare_examples` call. It is a
    ``concurrent.futures`` process pool: ``multiprocessing.Pool``'s maintenance thread spins
    while results wait to be read (~10% of a core and GIL contention in this process).
    """

    def __init__(self, count: int):
        self.count = count
        self._pool = None

    def __enter__(self) -> "_Workers":
        if self.count > 1:
            from concurrent.futures import ProcessPoolExecutor

            from .language import _identifier

            _identifier()  # load the language model once, before forking
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            self._pool = ProcessPoolExecutor(self.count, mp_context=ctx, initializer=_init_worker)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, func, chunks: list[Any]) -> Iterator[Any]:
        if self._pool is None:
            return map(func, chunks)
        return self._results(self._pool.map(func, chunks))

    @staticmethod
    def _results(results: Iterator[Any]) -> Iterator[Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            yield from results
        except BrokenProcessPool:
            raise DataError(bilingual("un processo della preparazione dei dati è morto (memoria esaurita?)",
                                      "a worker process of the data preparation died (out of memory?)"),
                            hint="retry with fewer worker processes: --workers 1") from None


def _chunks(items: list[Any], options: PrepareOptions) -> list[tuple[list[Any], PrepareOptions]]:
    return [(items[i : i + _CHUNK], options) for i in range(0, len(items), _CHUNK)]


# ---------------------------------------------------------------------- pipeline
def prepare_examples(loaded: LoadedData, options: PrepareOptions | None = None) -> Prepared:
    """Clean, count tokens, deduplicate and order loaded examples; build the report.

    Order of the checks: cleaning (and its reasons), then the token limit, then duplicates (a
    row dropped for its length never shadows a later copy of itself).
    """
    options = options or PrepareOptions()
    if options.curriculum not in CURRICULA:
        raise ConfigError(bilingual(f"curriculum sconosciuto {options.curriculum!r}",
                                    f"unknown curriculum {options.curriculum!r}"), hint=f"one of: {', '.join(CURRICULA)}")
    if options.max_tokens and not options.tokenizer:
        raise ConfigError(bilingual("max_tokens richiede un tokenizer (i token si contano con un tokenizer)",
                                    "max_tokens needs a tokenizer (tokens are counted with one)"))
    report = DataReport(source=loaded.label, input_rows=loaded.total_rows)
    for bad in loaded.invalid:
        report.reject(bad.index, bad.reason, bad.problem, bad.row)
    started = time.perf_counter()
    dedup = Deduplicator(options.dedup) if (options.dedup.exact or options.dedup.near) else None
    kept: list[Example] = []
    counts: list[int] = []
    texts: list[str] = []  # rendered kept conversations, counted after dedup (no token limit)
    if options.tokenizer:
        report.stats["token_counter"] = _counter_for(options).backend  # load (and fail) before forking
    with _Workers(_worker_count(options.workers, len(loaded.examples))) as workers:
        chunks = _chunks([ex.messages for ex in loaded.examples], options)
        stream = (row for rows in workers.map(_process_chunk, chunks) for row in rows)
        bar = tqdm(total=len(loaded.examples), desc="pulizia / cleaning", unit="righe", disable=not options.progress,
                   leave=False)
        for ex, (messages, reason, detail, fixes, sig, text, n_tokens) in zip(loaded.examples, stream):
            bar.update(1)
            if reason is not None:
                report.reject(ex.index, reason, detail, ex.messages)
                continue
            messages = messages if messages is not None else ex.messages
            if options.max_tokens and n_tokens is not None and n_tokens > options.max_tokens:
                report.reject(ex.index, "too_many_tokens", f"{n_tokens} tokens, more than {options.max_tokens}", messages)
                continue
            if dedup is not None and sig is not None:
                dup = dedup.check(ex.index, sig)
                if dup is not None:
                    report.reject(ex.index, dup.reason, f"duplicate of row {dup.of_index} (similarity {dup.similarity:.2f})",
                                  messages)
                    continue
            if fixes:
                report.record_fixes(ex.index, fixes, ex.messages, messages)
            kept.append(Example(ex.index, messages, ex.category, ex.id))
            if n_tokens is not None:
                counts.append(n_tokens)
            elif text is not None:
                texts.append(text)
        bar.close()
        if texts:  # only the conversations that survived dedup are tokenized
            bar = tqdm(total=len(texts), desc="token", unit="righe", disable=not options.progress, leave=False)
            for chunk_counts in workers.map(_count_chunk, _chunks(texts, options)):
                counts.extend(chunk_counts)
                bar.update(len(chunk_counts))
            bar.close()
            del texts
    report.stats["prepare_seconds"] = round(time.perf_counter() - started, 3)
    token_counts = counts if options.tokenizer else None
    if token_counts:
        report.stats.update({"tokens_total": sum(token_counts), "tokens_mean": round(statistics.fmean(token_counts), 1),
                             "tokens_max": max(token_counts)})
    phases = None
    if options.curriculum == "lab":
        from .curriculum import order

        ordered = order(kept, short_to_long=options.short_to_long)
        positions = [i for _, i in ordered]
        kept = [kept[i] for i in positions]
        phases = [p for p, _ in ordered]
        if token_counts is not None:
            token_counts = [token_counts[i] for i in positions]
        report.stats["phases"] = {p: phases.count(p) for p in dict.fromkeys(phases)}
    report.kept = len(kept)
    report.rejections.sort(key=lambda r: r.index)
    report.check_complete()
    return Prepared(kept, report, phases, token_counts)


def load_tokenizer(name: str, template: str | None = None):
    """A tokenizer by name (``embedded`` = the embedded SmolLM2), with an optional registry template."""
    from transformers import AutoTokenizer

    from ..errors import ModelError
    from ..templates import apply_template

    path = name
    if name == "embedded":
        from ..models.embedded import ensure_embedded_model

        path = str(ensure_embedded_model())
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(bilingual(f"impossibile caricare il tokenizer {name!r}",
                                   f"cannot load the tokenizer {name!r}: {detail}"),
                         hint="pass 'embedded', a local model directory or a Hub id you can access") from None
    return apply_template(tokenizer, template)


# ---------------------------------------------------------------------- files
def write_prepared(out_dir: str | os.PathLike, prepared: Prepared, *, overwrite: bool = False,
                   extra_files: dict[str, str] | None = None) -> PrepareResult:
    """Write ``train.jsonl``, ``rejected.jsonl``, ``report.json`` and ``report.md`` as one atomic directory."""
    out = Path(out_dir)
    check_replaceable(out, overwrite=overwrite, error=DataError)  # never deletes a file hf-ita did not write
    with atomic.atomic_directory(out, overwrite=True) as tmp:
        _write_jsonl(tmp / "train.jsonl", prepared.rows())
        _write_jsonl(tmp / "rejected.jsonl", [r.to_dict() for r in prepared.report.rejections])
        report_json = json.dumps(prepared.report.to_dict(), indent=2, ensure_ascii=False) + "\n"
        (tmp / "report.json").write_text(report_json, encoding="utf-8")
        (tmp / "report.md").write_text(prepared.report.to_markdown(), encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        write_manifest(tmp, kind="prepared-data")
    return PrepareResult(out, out / "train.jsonl", out / "report.json", prepared.report)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepare(source: str, out_dir: str | os.PathLike, *, format: str = "auto", split: str = "train",
            limit: int | None = None, columns: dict[str, str] | None = None,
            options: PrepareOptions | None = None, overwrite: bool = False,
            encoding: str = DEFAULT_ENCODING) -> PrepareResult:
    """Load ``source``, prepare it and write ``out_dir`` (see the module docstring).

    >>> result = prepare("bundled", "/tmp/hf-ita-prepared", overwrite=True)   # doctest: +SKIP
    >>> result.report.kept                                                     # doctest: +SKIP
    425
    """
    options = options or PrepareOptions()
    out = Path(out_dir)
    check_replaceable(out, overwrite=overwrite, error=DataError)  # fail before the work
    loaded = load_examples(source, format=format, split=split, limit=limit, columns=columns, encoding=encoding)
    prepared = prepare_examples(loaded, options)
    prepared.report.options = _options_summary(options)
    if not prepared.examples:
        dropped = ", ".join(f"{k} {v}" for k, v in prepared.report.dropped.items())
        raise DataError(bilingual("nessuna riga è sopravvissuta alla preparazione",
                                  f"no row survived preparation ({prepared.report.input_rows} rows: {dropped})",
                                  where=loaded.label),
                        hint="see the reasons above; relax --min-answer-chars / --dedup-threshold or check --format")
    return write_prepared(out, prepared, overwrite=overwrite)


def _options_summary(options: PrepareOptions) -> dict[str, Any]:
    d = asdict(options)
    d.pop("progress", None)
    return d
