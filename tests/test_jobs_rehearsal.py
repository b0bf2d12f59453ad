"""A rehearsal of a real HF Job, end to end, on this machine (slow).

The local Jobs server runs the job's actual command list as a subprocess, in a fresh virtualenv
standing in for the job image (:mod:`job_image`): the packages the image would carry are there, but
hf-ita itself is NOT: the job must install it from the wheel the launcher uploaded to the local Hub,
by its resolve URL. The token reaches the job only as its ``HF_TOKEN`` secret. Then ``hf-ita pull``
and ``hf-ita gguf convert`` of the pushed repo must work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.jobs.client import JobsClient, build_job_spec
from jobs_server import hub_endpoint, jobs_hub  # noqa: F401 - fixtures

pytest_plugins = ("job_image",)  # its image venv fixture, built once per session for both job rehearsals
pytestmark = pytest.mark.slow
REPO = "mario/smol-ita-rehearsal"


def test_rehearsal_job_installs_the_uploaded_wheel_trains_and_publishes(jobs_hub, hub_endpoint, job_image, tmp_path,
                                                                        monkeypatch):
    started = time.monotonic()
    token = jobs_hub.add_token("mario")
    monkeypatch.setenv("HF_TOKEN", token)
    home = tmp_path / "home"
    image_env = job_image.env(jobs_hub.url, tmp_path)
    before = job_image.run_python("import hf_ita_plugin", image_env, tmp_path)
    assert before.returncode != 0 and "No module named 'hf_ita_plugin'" in before.stderr
    assert job_image.run_python("import torch, transformers, peft, bitsandbytes", image_env, tmp_path).returncode == 0

    config = RunConfig.from_preset("smollm2-135m-cpu", [
        "training.max_steps=2", "training.per_device_batch_size=2", "training.max_seq_length=256",
        "data.max_train_examples=8", "data.eval=null", "evaluation.before_after=false",
        "evaluation.bpb_text=null", "evaluation.response_loss=false", "training.logging_steps=1",
    ])
    spec = build_job_spec(config, flavor="cpu-basic", output_repo=REPO, workdir=str(tmp_path / "job"))
    assert spec.wheel is not None and "resolve/main/wheels/" in spec.command[-1]
    jobs_hub.queue_scenario(job_image.scenario(jobs_hub.url, tmp_path, scheduling_s=0.1))
    client = JobsClient()
    run = client.submit(spec)
    job = jobs_hub.wait_for_stage(run.id, ("COMPLETED", "ERROR", "CANCELED"), timeout=1500)
    logs = "\n".join(line for _, line in job.logs)
    assert job.stage == "COMPLETED", logs[-4000:]
    assert token not in logs
    assert "Successfully installed hf-ita-plugin-0.1.0" in logs  # from the wheel URL, nothing else
    assert jobs_hub.count("resolve", "GET", repo_id="mario/hf-ita-wheels") >= 1
    installed = job_image.run_python("import hf_ita_plugin; print(hf_ita_plugin.__file__)", image_env, tmp_path)
    assert installed.stdout.startswith(str(job_image.root / "lib")), installed  # the wheel, in the image venv
    # code installed from that wheel (a job, a deployed Space) launches its own jobs with the same URL
    relaunch = job_image.run_python("from hf_ita_plugin.config import RunConfig; from hf_ita_plugin.jobs.spec import "
                                    "build_job_spec; s = build_job_spec(RunConfig.from_preset('smollm2-135m-cpu'), "
                                    "flavor='cpu-basic', output_repo='luigi/x'); print(s.wheel, s.command[-1])",
                                    image_env, tmp_path)
    wheel_url = f"{jobs_hub.url}/mario/hf-ita-wheels/resolve/main/{spec.wheel.path_in_repo}"
    assert relaunch.stdout.startswith("None ") and f"'hf-ita-plugin[gpu] @ {wheel_url}'" in relaunch.stdout, relaunch
    files = jobs_hub.files(REPO)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "metrics.json"} <= set(files)
    assert json.loads(files["metrics.json"])["template"] == "smollm2"
    # the job pushed its last checkpoint on the side branch while training (`hf-ita launch --resume` reads it)
    assert "checkpoint-2 inviato / pushed" in logs
    assert "checkpoints/checkpoint-2/trainer_state.json" in jobs_hub.files(REPO, "hf-ita-checkpoints")
    assert not [f for f in files if f.startswith("checkpoints/")]  # main holds only what `hf-ita push` published
    job_s = time.monotonic() - started

    cli_env = {**os.environ, "HF_ENDPOINT": jobs_hub.url, "HF_TOKEN": token, "HF_HUB_DISABLE_XET": "1",
               "HF_HOME": str(home / "cli-hf"), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cli = [sys.executable, "-m", "hf_ita_plugin.cli"]
    pulled = subprocess.run(cli + ["pull", REPO, "--prompt", "Ciao!", "--max-new-tokens", "4"], env=cli_env,
                            capture_output=True, text=True, timeout=900)
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    from huggingface_hub import snapshot_download

    local = snapshot_download(REPO, endpoint=jobs_hub.url, token=token, local_dir=tmp_path / "pulled")
    converted = subprocess.run(cli + ["gguf", "convert", local, "--quant", "q8_0", "--output-dir",
                                      str(tmp_path / "gguf"), "--json"], env=cli_env,
                               capture_output=True, text=True, timeout=1200)
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert list((tmp_path / "gguf").glob("*.gguf"))
    wheel_kib = spec.wheel.size / 1024
    print(f"\nrehearsal: job {job_s:.0f} s, total {time.monotonic() - started:.0f} s, wheel {wheel_kib:.0f} KiB")
