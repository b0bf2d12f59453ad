"""A rehearsal of a real HF Job, end to end, on this machine (slow).

The local Jobs server runs the job's actual command list as a subprocess, in a fresh virtualenv
standing in for the job image: the packages the image would carry (torch, transformers, peft,
bitsandbytes...) come from the shared environment through a ``.pth`` file pointing at a filtered
copy of its site-packages, but hf-ita itself is NOT there: the job must install it from the wheel
the launcher uploaded to the local Hub, by its resolve URL. No network, so pip runs with
``PIP_NO_INDEX=1`` (every dependency is already satisfied). The token reaches the job only as its
``HF_TOKEN`` secret. Then ``hf-ita pull`` and ``hf-ita gguf convert`` of the pushed repo must work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.jobs.client import JobsClient, build_job_spec
from jobs_server import JobScenario, hub_endpoint, jobs_hub  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
REPO = "mario/smol-ita-rehearsal"


def _image_venv(root: Path) -> Path:
    """A fresh virtualenv (no system site-packages) that sees the shared environment's packages
    except hf-ita: a folder of links to every site-packages entry but hf_ita_plugin's, named by a .pth."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    shared = Path(sysconfig.get_paths()["purelib"])
    carried = root / "image-site-packages"
    carried.mkdir()
    for entry in shared.iterdir():
        if entry.name.lower().startswith(("hf_ita_plugin", "__editable__", "pip")) or entry.suffix == ".pth":
            continue
        (carried / entry.name).symlink_to(entry)
    venv_site = next((root / "lib").glob("python3*/site-packages"))
    for own in venv_site.iterdir():  # ensurepip's old setuptools would shadow the one torch asks for
        if own.name.startswith(("setuptools", "_distutils_hack", "distutils-precedence")):
            shutil.rmtree(own) if own.is_dir() else own.unlink()
    (venv_site / "image-packages.pth").write_text(f"{carried}\n", encoding="utf-8")
    return root / "bin"


def test_rehearsal_job_installs_the_uploaded_wheel_trains_and_publishes(jobs_hub, hub_endpoint, tmp_path,
                                                                        monkeypatch):
    started = time.monotonic()
    token = jobs_hub.add_token("mario")
    monkeypatch.setenv("HF_TOKEN", token)
    bin_dir = _image_venv(tmp_path / "image")
    home = tmp_path / "home"
    home.mkdir()
    image_env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "HOME": str(home), "HF_HOME": str(home / "hf"),
                 "HF_ENDPOINT": jobs_hub.url, "HF_HUB_DISABLE_XET": "1", "PIP_NO_INDEX": "1",
                 "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(tmp_path), "LANG": "C.UTF-8"}
    before = subprocess.run([str(bin_dir / "python"), "-c", "import hf_ita_plugin"], env=image_env,
                            cwd=tmp_path, capture_output=True, text=True)
    assert before.returncode != 0 and "No module named 'hf_ita_plugin'" in before.stderr
    assert subprocess.run([str(bin_dir / "python"), "-c", "import torch, transformers, peft, bitsandbytes"],
                          env=image_env, cwd=tmp_path, capture_output=True).returncode == 0

    config = RunConfig.from_preset("smollm2-135m-cpu", [
        "training.max_steps=2", "training.per_device_batch_size=2", "training.max_seq_length=256",
        "data.max_train_examples=8", "data.eval=null", "evaluation.before_after=false",
        "evaluation.bpb_text=null", "evaluation.response_loss=false", "training.logging_steps=1",
    ])
    spec = build_job_spec(config, flavor="cpu-basic", output_repo=REPO, workdir=str(tmp_path / "job"))
    assert spec.wheel is not None and "resolve/main/wheels/" in spec.command[-1]
    jobs_hub.queue_scenario(JobScenario(scheduling_s=0.1, execute_env=image_env, execute_cwd=str(tmp_path)))
    client = JobsClient()
    run = client.submit(spec)
    job = jobs_hub.wait_for_stage(run.id, ("COMPLETED", "ERROR", "CANCELED"), timeout=1500)
    logs = "\n".join(line for _, line in job.logs)
    assert job.stage == "COMPLETED", logs[-4000:]
    assert token not in logs
    assert "Successfully installed hf-ita-plugin-0.1.0" in logs  # from the wheel URL, nothing else
    assert jobs_hub.count("resolve", "GET", repo_id="mario/hf-ita-wheels") >= 1
    installed = subprocess.run([str(bin_dir / "python"), "-c", "import hf_ita_plugin; print(hf_ita_plugin.__file__)"],
                               env=image_env, cwd=tmp_path, capture_output=True, text=True)
    assert installed.stdout.startswith(str(tmp_path / "image" / "lib")), installed  # the wheel, in the image venv
    # code installed from that wheel (a job, a deployed Space) launches its own jobs with the same URL
    relaunch = subprocess.run([str(bin_dir / "python"), "-c",
                               "from hf_ita_plugin.config import RunConfig; from hf_ita_plugin.jobs.spec import "
                               "build_job_spec; s = build_job_spec(RunConfig.from_preset('smollm2-135m-cpu'), "
                               "flavor='cpu-basic', output_repo='luigi/x'); print(s.wheel, s.command[-1])"],
                              env=image_env, cwd=tmp_path, capture_output=True, text=True)
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
