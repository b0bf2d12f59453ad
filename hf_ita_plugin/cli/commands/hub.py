"""``hf-ita push``, ``hf-ita card`` and ``hf-ita pull``: publish a run, write its card, load an adapter."""

from __future__ import annotations

import argparse
import json

from ..options import add_json, add_output_file, add_token


def register(subparsers: argparse._SubParsersAction) -> None:
    push = subparsers.add_parser(
        "push", help="publish a training OUTPUT_DIR to the Hub in one commit (card, adapter, metrics, GGUF)",
        description="Pubblica una run sul Hub in un solo commit atomico, con scheda del modello e tag di revisione. "
                    "Publish a training run to the Hub in one atomic commit, with a model card and a revision tag.")
    push.add_argument("output_dir", help="the run's OUTPUT_DIR (adapter/, metrics.json, run_config.yaml...)")
    push.add_argument("--repo", required=True, help="target repo id, NAMESPACE/NAME")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--kind", choices=("adapter", "merged", "gguf"), default="adapter",
                      help="what sits at the repo root (default: the peft adapter)")
    push.add_argument("--merged", action="store_true", help="include the merged model (merged/), merging first if needed")
    push.add_argument("--gguf", nargs="?", const="", default=None, metavar="TYPES",
                      help="publish GGUF files (gguf/): bare --gguf requires the existing OUTPUT_DIR/gguf/*.gguf, "
                           "TYPES e.g. Q4_K_M,q8_0 are exported first when missing")
    push.add_argument("--tag", default="auto", help="revision tag for this publish (default: v1, v2, ...; 'none' for no tag)")
    push.add_argument("--base-model", help="Hub id of the base model, when the run only recorded a local path")
    push.add_argument("--finetune-repo", metavar="REPO", help="with --kind gguf: the Hub repo of the fine-tune the GGUF "
                      "files were made from, the card's base_model (default: the adapter or merged model last pushed from this run)")
    push.add_argument("--keep-card", action="store_true", help="publish OUTPUT_DIR/README.md as is instead of regenerating it")
    push.add_argument("--force", action="store_true", help="replace the files of a repo that holds other content")
    add_token(push)
    push.add_argument("--dry-run", action="store_true", help="list the files that would be published, send nothing")
    add_json(push, "print the result (or, with --dry-run, the file list) as JSON")
    push.set_defaults(func=run_push)

    card = subparsers.add_parser(
        "card", help="write or refresh OUTPUT_DIR/README.md (the model card) without pushing",
        description="Scrive la scheda del modello (README.md) di una run. Writes the model card of a run.")
    card.add_argument("output_dir", help="the run's OUTPUT_DIR")
    card.add_argument("--repo", help="repo id to use in the usage snippets")
    card.add_argument("--kind", choices=("adapter", "merged", "gguf"), default="adapter")
    card.add_argument("--base-model", help="Hub id of the base model, when the run only recorded a local path")
    card.add_argument("--offline", action="store_true", help="do not look up licenses on the Hub")
    add_output_file(card, "where to write the card (default OUTPUT_DIR/README.md)")
    card.set_defaults(func=run_card)

    pull = subparsers.add_parser(
        "pull", help="download an adapter from the Hub and load it onto its base model",
        description="Scarica un adattatore dal Hub e lo carica sul modello base. "
                    "Download an adapter from the Hub and load it onto its base model.")
    pull.add_argument("repo", help="adapter repo id (or a local adapter folder)")
    pull.add_argument("--revision", help="tag, branch or commit (default main)")
    pull.add_argument("--4bit", dest="load_in_4bit", action="store_true", help="load the base in 4-bit (bitsandbytes NF4)")
    pull.add_argument("--allow-pickle", action="store_true", help="accept pickle weights (.bin): only for repos you trust")
    pull.add_argument("--base-model", help="load the adapter onto this base instead of the one it names")
    pull.add_argument("--prompt", help="answer this message with the loaded model")
    pull.add_argument("--max-new-tokens", type=int, default=128)
    add_token(pull, "Hugging Face token for private repos (default: HF_TOKEN or `hf auth login`)")
    pull.set_defaults(func=run_pull)


def _gguf_types(value: str | None) -> list[str] | None:
    """``None`` without --gguf, ``[]`` for a bare --gguf (publish the existing files), else the types."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def run_push(args: argparse.Namespace) -> int:
    tag = None if str(args.tag).lower() in ("none", "") else args.tag
    gguf = _gguf_types(args.gguf)
    if args.dry_run:
        from ...hub.push import publish_set_for

        pset = publish_set_for(args.output_dir, args.repo, kind=args.kind, merged=args.merged, gguf=gguf,
                               base_model=args.base_model, keep_card=args.keep_card, finetune_repo=args.finetune_repo)
        sizes = {path: len(content) if isinstance(content, bytes) else content.stat().st_size
                 for path, content in sorted(pset.files.items())}
        if args.json:
            print(json.dumps({"repo": args.repo, "dry_run": True, "files": sizes}, indent=2, ensure_ascii=False))
            return 0
        for path, size in sizes.items():
            print(f"{size:>14,}  {path}")
        print(f"hf-ita: {len(pset.files)} file, {pset.size() / 2**20:.1f} MB (dry run: nulla inviato / nothing sent)")
        return 0
    from ...hub.push import push

    result = push(args.output_dir, args.repo, token=args.token, private=args.private, kind=args.kind, merged=args.merged,
                  gguf=gguf, tag=tag, force=args.force, base_model=args.base_model, keep_card=args.keep_card,
                  finetune_repo=args.finetune_repo)
    if args.json:
        print(json.dumps({"repo": result.repo_id, "url": result.url, "commit": result.commit_oid, "tag": result.tag,
                          "files": result.files, "deleted": result.deleted}, indent=2, ensure_ascii=False))
        return 0
    print(f"repo      {result.url}\ncommit    {result.commit_oid}\ntag       {result.tag or '-'}\n"
          f"files     {len(result.files)}" + (f" ({len(result.deleted)} removed)" if result.deleted else ""))
    return 0


def run_card(args: argparse.Namespace) -> int:
    from ...hub.card import write_card

    path = write_card(args.output_dir, args.kind, repo_id=args.repo, base_model=args.base_model,
                      lookup=not args.offline, target=args.output)
    print(f"hf-ita: scheda scritta / card written: {path}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from ...hub.pull import generate_reply, load_adapter

    model, tokenizer = load_adapter(args.repo, revision=args.revision, load_in_4bit=args.load_in_4bit,
                                    allow_pickle=args.allow_pickle, base_model=args.base_model, token=args.token)
    base = model.peft_config["default"].base_model_name_or_path if hasattr(model, "peft_config") else "?"
    print(f"hf-ita: caricato / loaded {args.repo}@{args.revision or 'main'} on {base}"
          + (" (4-bit)" if args.load_in_4bit else ""))
    if args.prompt:
        print(generate_reply(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens))
    return 0
