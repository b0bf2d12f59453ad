"""``hf-ita train`` and ``hf-ita quickstart``: run the ItalianSFT recipe."""

from __future__ import annotations

import argparse

from ..options import add_output_dir, add_set

QUICKSTART_PRESET = "smollm2-135m-cpu"


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="fine-tune with QLoRA from a YAML config",
                                  description="Fine-tune a model with the ItalianSFT QLoRA recipe.")
    train.add_argument("config", help="YAML config file (see examples/)")
    _add_common(train)
    _add_hub(train)
    train.set_defaults(func=run_train)

    quick = subparsers.add_parser(
        "quickstart", help="fine-tune the embedded SmolLM2-135M on the bundled Italian data (CPU, ~10 min)",
        description="The main job: QLoRA on CPU with the embedded default model and the bundled Italian data, "
                    "evaluated before and after.")
    _add_common(quick)
    quick.set_defaults(func=run_quickstart)

    presets = subparsers.add_parser("presets", help="list the packaged config presets")
    presets.add_argument("name", nargs="?", help="print this preset as YAML")
    presets.set_defaults(func=run_presets)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_output_dir(parser, "where the adapter, metrics and checkpoints go (training.output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in OUTPUT_DIR "
                        "(from step 0 when a crash left none complete; a finished run is not resumed: exit 2)")
    add_set(parser)


def _add_hub(parser: argparse.ArgumentParser) -> None:
    hub = parser.add_argument_group("checkpoints on the Hub (what an HF Job launched by hf-ita does)")
    hub.add_argument("--push-checkpoints-to", metavar="OWNER/NAME", help="push the newest complete checkpoint to "
                     "this repo's hf-ita-checkpoints branch every training.push_checkpoint_steps steps and on SIGTERM "
                     "(token: HF_TOKEN or your login)")
    hub.add_argument("--push-private", action="store_true", help="create that repo private if it does not exist")
    hub.add_argument("--resume-from-hub", metavar="OWNER/NAME", help="download the checkpoint this repo's "
                     "hf-ita-checkpoints branch holds into the (new) OUTPUT_DIR and continue from it (implies --resume)")


def _with_hub(recipe, args: argparse.Namespace) -> bool:
    """Attach the Hub options to ``recipe``; returns whether training resumes (a pulled checkpoint)."""
    if args.resume_from_hub:
        from ...hub.checkpoint_pull import pull_checkpoint

        pull_checkpoint(args.resume_from_hub, recipe.config.training.output_dir)
    if args.push_checkpoints_to:
        from ...hub.checkpoint_push import CheckpointPushCallback

        recipe.callbacks.append(CheckpointPushCallback(args.push_checkpoints_to, recipe.config, private=args.push_private))
    return bool(args.resume_from_hub) or args.resume


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [f"training.output_dir={args.output_dir}"] if args.output_dir else []
    return list(args.overrides) + extra


def run_train(args: argparse.Namespace) -> int:
    from ...training.recipe import ItalianSFT

    recipe = ItalianSFT.from_yaml(args.config, _overrides(args))
    recipe.train(resume=_with_hub(recipe, args))
    return 0


def run_quickstart(args: argparse.Namespace) -> int:
    from ...training.recipe import ItalianSFT

    ItalianSFT.from_preset(QUICKSTART_PRESET, _overrides(args)).train(resume=args.resume)
    return 0


def run_presets(args: argparse.Namespace) -> int:
    from ...config import RunConfig, list_presets

    if args.name:
        print(RunConfig.from_preset(args.name).to_yaml(), end="")
    else:
        print("\n".join(list_presets()))
    return 0
