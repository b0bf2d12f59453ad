"""``hf-ita autotrain-config CONFIG.yaml``: the equivalent AutoTrain Advanced ``llm-sft`` config."""

from __future__ import annotations

import argparse
import sys

from ..options import add_output_file, add_set


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "autotrain-config", help="write the equivalent AutoTrain Advanced llm-sft YAML config",
        description="Scrive la configurazione AutoTrain llm-sft equivalente a CONFIG.yaml e segnala su stderr cosa "
                    "AutoTrain non può esprimere. / Write the AutoTrain Advanced llm-sft config equivalent to "
                    "CONFIG.yaml; what AutoTrain cannot express is listed on stderr.")
    parser.add_argument("config", metavar="CONFIG.yaml", help="hf-ita run config (YAML)")
    parser.add_argument("--data-repo", metavar="OWNER/NAME",
                        help="Hub dataset repo with a 'messages' column (e.g. hf-ita data prepare's train.jsonl, "
                             "uploaded); default: data.train when it is a Hub dataset id")
    add_output_file(parser, "write the YAML to FILE (default: stdout)")
    add_set(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...bridges.autotrain import autotrain_config
    from ...config import RunConfig
    from ...utils.atomic import write_text

    cfg = RunConfig.from_yaml(args.config, args.overrides)
    export = autotrain_config(cfg, data_repo=args.data_repo)
    text = export.to_yaml(source=args.config)
    if args.output:
        write_text(args.output, text)
        print(f"hf-ita: AutoTrain config written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if export.unsupported:
        print("hf-ita: AutoTrain non può esprimere / AutoTrain cannot express:", file=sys.stderr)
        for line in export.unsupported:
            print(f"  - {line}", file=sys.stderr)
    return 0
