"""Benchmark of ``hf-ita push`` (issue 5). Not a test: prints a JSON line and a table.

Wall time to publish one training OUTPUT_DIR to the local Hub test server (tests/hub_server.py,
real huggingface_hub client, LFS basic transfer, Xet off), against a baseline in the same run:
``HfApi.upload_folder`` of the same files (what the client alone does, in one commit, with no
checks, no card and no tag). Variants:

- ``upload_folder``: the baseline, a fresh repo each run;
- ``push``: ``hf_ita_plugin.hub.push`` (whoami, repo checks, staging with safetensors/pickle/path/token
  scans, card rendering, one commit with ``parent_commit``, tag), a fresh repo each run;
- ``push-again``: a second ``push`` of unchanged files to the same repo (LFS objects already
  stored: nothing re-uploaded, only the new commit and tag).

The OUTPUT_DIR is synthetic but real-shaped: ``adapter/`` with a ``--adapter-mb`` safetensors file
and the embedded SmolLM2 tokenizer, ``metrics.json``, ``run_config.yaml``. Each variant runs
``--repeats`` times, rotating the order; medians are compared as ratios to the baseline. Results go
to ``bench/results/hub_push.json``.

Usage::

    python bench/bench_hub.py [--adapter-mb 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def make_output_dir(folder: Path, adapter_mb: int) -> Path:
    import torch
    from safetensors.torch import save_file

    from hf_ita_plugin.config import RunConfig
    from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID, ensure_embedded_model
    from hf_ita_plugin.rundir import RunDir, RunMetrics

    embedded = ensure_embedded_model(verbose=False)
    run = RunDir(folder)
    adapter = run.adapter_dir
    adapter.mkdir(parents=True)
    n = adapter_mb * 2**20 // 4 // 2
    torch.manual_seed(0)
    save_file({"base_model.model.lora_A.weight": torch.randn(n // 1024, 1024),
               "base_model.model.lora_B.weight": torch.randn(n // 1024, 1024)}, str(adapter / "adapter_model.safetensors"))
    run.adapter_config_path.write_text(json.dumps({"base_model_name_or_path": str(embedded), "peft_type": "LORA",
                                                             "r": 16, "lora_alpha": 32, "task_type": "CAUSAL_LM"}))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(embedded / name, adapter / name)
    run.write_config(RunConfig.from_preset("smollm2-135m-cpu"))
    run.write_metrics(RunMetrics.from_dict({
        "base_model": EMBEDDED_HUB_ID, "base_model_path": str(embedded), "template": "chatml", "quantization": "nf4",
        "data": {"train_examples": 425, "eval_examples": 80, "train_source": "bundled", "eval_source": "bundled-heldout"},
        "train": {"steps": 53, "final_loss": 1.9, "train_runtime_s": 600.0},
        "eval": {"before": {"bits_per_byte": 1.3, "response_loss": 2.4}, "after": {"bits_per_byte": 1.1, "response_loss": 1.8}},
        "hyperparameters": {"r": 16, "alpha": 32}, "hardware": {"cpu_threads": 2}}))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter-mb", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from huggingface_hub import HfApi, constants

    from hf_ita_plugin.hub.push import push
    from hf_ita_plugin.hub.staging import stage_publish
    from hub_server import HubServer

    constants.HF_HUB_DISABLE_XET = True
    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    try:
        run = make_output_dir(work / "run", args.adapter_mb)
        with HubServer(work / "hub") as hub:
            token = hub.add_token("bench")
            os.environ["HF_ENDPOINT"], os.environ["HF_TOKEN"] = hub.url, token
            api = HfApi(endpoint=hub.url, token=token)
            # the baseline uploads exactly the files hf-ita publishes (staged once, outside the timing)
            staged = work / "staged"
            for path, content in stage_publish(run, "bench/x", lookup=False).files.items():
                target = staged / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content if isinstance(content, bytes) else content.read_bytes())
            counter = iter(range(10**6))

            def upload_folder():
                repo = f"bench/base-{next(counter)}"
                api.create_repo(repo)
                api.upload_folder(repo_id=repo, folder_path=str(staged))

            def fresh_push():
                push(run, f"bench/push-{next(counter)}", retry_wait=0.05)

            again_repo = "bench/again"
            push(run, again_repo, retry_wait=0.05)

            def push_again():
                push(run, again_repo, retry_wait=0.05)

            variants = {"upload_folder": upload_folder, "push": fresh_push, "push-again": push_again}
            times: dict[str, list[float]] = {k: [] for k in variants}
            names = list(variants)
            for i in range(args.repeats):
                for name in names[i % len(names):] + names[:i % len(names)]:
                    with contextlib.redirect_stdout(io.StringIO()):
                        start = time.perf_counter()
                        variants[name]()
                        times[name].append(time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["upload_folder"]
    result = {
        "bench": "hub_push", "adapter_mb": args.adapter_mb, "repeats": args.repeats,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "ratio_to_upload_folder": {k: round(v / base, 3) for k, v in medians.items()},
        "runs_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
    }
    print(json.dumps(result))
    print(f"\n{'variant':<15} {'median s':>10} {'x upload_folder':>16}")
    for name, value in medians.items():
        print(f"{name:<15} {value:>10.3f} {value / base:>16.2f}")
    save_result("hub_push", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
