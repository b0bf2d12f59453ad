"""``hf-ita data prepare`` and ``hf-ita data generate``: clean Italian data, or generate it from a taxonomy."""

from __future__ import annotations

import argparse
import json

from ..options import add_json, add_output_dir, add_quiet


def register(subparsers: argparse._SubParsersAction) -> None:
    from ...data.loaders import SOURCE_FORMATS

    data = subparsers.add_parser("data", help="prepare Italian training data / prepara i dati di addestramento",
                                 description="Prepara i dati: pulizia, deduplica, curriculum, generazione sintetica. "
                                             "Prepare data: cleaning, dedup, curriculum, synthetic generation.")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True

    prep = sub.add_parser(
        "prepare", help="load -> clean -> dedup -> write DIR/train.jsonl + report",
        description="Carica SOURCE (id di dataset del Hub, file json/jsonl/csv/parquet/yaml, cartella tassonomia, "
                    "'bundled'), pulisce, deduplica e scrive DIR/train.jsonl, DIR/rejected.jsonl, DIR/report.json, "
                    "DIR/report.md. / Load, clean, deduplicate and write the prepared dataset.")
    prep.add_argument("source", help="Hub dataset id, local file, taxonomy directory, or 'bundled'")
    prep.add_argument("--format", default="auto", choices=SOURCE_FORMATS, help="row format (default: auto-detect)")
    prep.add_argument("--split", default="train", help="split of a Hub dataset (default: train)")
    prep.add_argument("--column", dest="columns", action="append", default=[], metavar="CANONICAL=COLUMN",
                      help="read a canonical column from another one, e.g. --column instruction=domanda (repeatable)")
    prep.add_argument("--limit", type=int, help="only the first N rows of the source")
    prep.add_argument("--encoding", default="utf-8",
                      help="text encoding of a local json/jsonl/csv/yaml SOURCE, e.g. latin-1 (default: utf-8)")
    _add_output(prep)
    _add_pipeline(prep)
    prep.set_defaults(func=run_prepare)

    gen = sub.add_parser(
        "generate", help="synthetic Q&A from a taxonomy with a teacher model, then clean + dedup",
        description="Genera coppie domanda/risposta dai semi della tassonomia con un modello insegnante "
                    "(cartella transformers, file .gguf, URL compatibile OpenAI, 'embedded'), poi pulisce e deduplica. "
                    "/ Generate Q&A pairs from taxonomy seeds with a teacher, then clean and deduplicate.")
    gen.add_argument("taxonomy", metavar="TAXONOMY_DIR", help="root of an InstructLab-style taxonomy")
    gen.add_argument("--teacher", required=True, metavar="MODEL_OR_URL",
                     help="model directory, .gguf file, http(s)://host/v1 endpoint, 'embedded' or 'embedded-gguf' "
                          "(API key from $HF_ITA_TEACHER_API_KEY)")
    gen.add_argument("--teacher-model", help="model name sent to an OpenAI-compatible endpoint")
    gen.add_argument("--rounds", type=int, default=2, help="requests per taxonomy leaf (default: 2)")
    gen.add_argument("--pairs", type=int, default=5, help="pairs asked per request (default: 5)")
    gen.add_argument("--max-new-tokens", type=int, default=768)
    gen.add_argument("--temperature", type=float, default=0.7)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--no-seeds", action="store_true", help="do not include the seed examples in the output")
    _add_output(gen)
    _add_pipeline(gen)
    gen.set_defaults(func=run_generate)


def _add_output(parser: argparse.ArgumentParser) -> None:
    add_output_dir(parser, "output directory (written atomically)", required=True)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace DIR if it holds an earlier output (only files hf-ita wrote, listed in "
                             "DIR/.hf-ita-manifest.json, are ever deleted)")
    add_quiet(parser)
    add_json(parser, "print the summary (paths, kept/dropped/fixed counts) as JSON")


def _add_pipeline(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pulizia e deduplica / cleaning and dedup")
    g.add_argument("--min-answer-chars", type=int, default=2)
    g.add_argument("--max-chars", type=int, default=20_000, help="longest conversation kept, in characters")
    g.add_argument("--keep-non-italian", action="store_true", help="do not drop answers in other languages")
    g.add_argument("--no-near-dedup", action="store_true", help="only exact duplicates are removed")
    g.add_argument("--dedup-threshold", type=float, default=0.8, help="Jaccard similarity of near duplicates (default 0.8)")
    g.add_argument("--curriculum", choices=("none", "lab"), default="none",
                   help="lab: knowledge first, then foundational, then compositional skills")
    g.add_argument("--short-to-long", action="store_true", help="with --curriculum: shorter conversations first in each phase")
    g.add_argument("--tokenizer", help="count tokens with this tokenizer ('embedded', a model dir or Hub id)")
    g.add_argument("--template", help="registry chat template for --tokenizer (default: the tokenizer's own)")
    g.add_argument("--max-tokens", type=int, help="with --tokenizer: drop conversations longer than this")
    g.add_argument("--workers", type=int, default=0, help="processes for cleaning (0 = one per core on large inputs)")


def _options(args: argparse.Namespace):
    from ...data.cleaning import CleaningConfig
    from ...data.dedup import DedupConfig
    from ...data.prepare import PrepareOptions
    from ...errors import ConfigError, bilingual

    if args.max_tokens and not args.tokenizer:
        raise ConfigError(bilingual("--max-tokens richiede --tokenizer (i token si contano con un tokenizer)",
                                    "--max-tokens needs --tokenizer (tokens are counted with a tokenizer)"))
    return PrepareOptions(
        cleaning=CleaningConfig(min_answer_chars=args.min_answer_chars, max_chars=args.max_chars,
                                require_italian=not args.keep_non_italian),
        dedup=DedupConfig(near=not args.no_near_dedup, threshold=args.dedup_threshold),
        curriculum=args.curriculum, short_to_long=args.short_to_long, tokenizer=args.tokenizer,
        template=args.template, max_tokens=args.max_tokens, workers=args.workers, progress=not args.quiet,
    )


def _columns(items: list[str]) -> dict[str, str] | None:
    from ...errors import ConfigError, bilingual

    columns = {}
    for item in items:
        canonical, sep, column = item.partition("=")
        if not sep or not canonical.strip() or not column.strip():
            raise ConfigError(bilingual("atteso CANONICA=COLONNA", "expected CANONICAL=COLUMN, e.g. instruction=domanda",
                                        where=f"--column {item!r}"))
        columns[canonical.strip()] = column.strip()
    return columns or None


def _summary(result, as_json: bool = False) -> None:
    d = result.report.to_dict()
    if as_json:
        print(json.dumps({"output_dir": str(result.out_dir), "train": str(result.train_path),
                          "report": str(result.report_path), "input_rows": d["input_rows"], "kept": d["kept"],
                          "dropped_by_reason": d["dropped_by_reason"], "fixed_by_kind": d["fixed_by_kind"]},
                         indent=2, ensure_ascii=False))
        return
    print(f"hf-ita: {d['kept']}/{d['input_rows']} righe conservate / rows kept -> {result.train_path}")
    for reason, count in d["dropped_by_reason"].items():
        print(f"  scartate / dropped: {reason}: {count}")
    for fix, count in d["fixed_by_kind"].items():
        print(f"  corrette / fixed: {fix}: {count}")
    print(f"  rapporto / report: {result.out_dir / 'report.md'}")


def run_prepare(args: argparse.Namespace) -> int:
    from ...data.prepare import prepare

    result = prepare(args.source, args.output_dir, format=args.format, split=args.split, limit=args.limit,
                     columns=_columns(args.columns), options=_options(args), overwrite=args.overwrite,
                     encoding=args.encoding)
    _summary(result, args.json)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from ...data.generate import GenerateOptions, generate

    options = GenerateOptions(rounds=args.rounds, pairs_per_request=args.pairs, max_new_tokens=args.max_new_tokens,
                              temperature=args.temperature, seed=args.seed, include_seeds=not args.no_seeds,
                              prepare=_options(args))
    result = generate(args.taxonomy, args.teacher, args.output_dir, teacher_model=args.teacher_model, options=options,
                      overwrite=args.overwrite)
    _summary(result, args.json)
    return 0
