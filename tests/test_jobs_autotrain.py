"""``hf-ita jobs launch --backend autotrain``: AutoTrain's own image as an HF Job, checked on the local Jobs server."""

from __future__ import annotations

import json

import pytest
import yaml

from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError, JobsError
from hf_ita_plugin.jobs.autotrain import (AUTOTRAIN_IMAGE, LABEL_BACKEND, autotrain_rows, build_autotrain_job_spec,
                                          decode_autotrain_config, launch_autotrain)
from hf_ita_plugin.jobs.client import JobsClient
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT
from jobs_server import hub_endpoint, jobs_hub  # noqa: F401 - fixtures


@pytest.fixture
def mario(hub_endpoint, monkeypatch):  # noqa: F811
    token = hub_endpoint.server.add_token("mario", role="write")
    monkeypatch.setenv("HF_TOKEN", token)
    return token


def _config(*overrides: str) -> RunConfig:
    return RunConfig.from_preset("smollm2-135m-cpu", list(overrides))


def test_rows_carry_the_training_system_prompt_and_the_sample():
    cfg = _config()
    rows = autotrain_rows(cfg)
    assert len(rows) == cfg.data.max_train_examples == 300 and all(set(r) == {"messages"} for r in rows)
    # the bundled rows that bring their own system prompt keep it; the others get the Italian default
    assert all(r["messages"][0]["role"] == "system" for r in rows)
    assert sum(r["messages"][0]["content"] == DEFAULT_SYSTEM_PROMPT for r in rows) > 225
    plain = autotrain_rows(_config("data.system_prompt=none"))
    assert len(plain) == 300 and not any(m["content"] == DEFAULT_SYSTEM_PROMPT for r in plain for m in r["messages"])


def test_launch_uploads_the_rows_and_starts_autotrain_with_the_secret_only(jobs_hub, mario):
    run, _, notes = launch_autotrain(JobsClient(mario), _config(), output_repo="mario/smol-ita-at", flavor="a10g-small")
    data = jobs_hub.files("mario/smol-ita-at-data", repo_type="dataset")["train.jsonl"].decode("utf-8").splitlines()
    assert jobs_hub.repos[("dataset", "mario/smol-ita-at-data")].private
    assert [json.loads(line) for line in data] == autotrain_rows(_config())
    sent = jobs_hub.jobs[run.id].spec
    assert sent["dockerImage"] == AUTOTRAIN_IMAGE and sent["flavor"] == "a10g-small"
    assert sent["secrets"] == {"HF_TOKEN": mario} and mario not in json.dumps({k: v for k, v in sent.items() if k != "secrets"})
    assert sent["labels"][LABEL_BACKEND] == "autotrain"
    env = sent["environment"]
    assert env["HF_USERNAME"] == "mario"
    config = yaml.safe_load(decode_autotrain_config(env))
    assert config["project_name"] == "smol-ita-at" and config["data"]["path"] == "mario/smol-ita-at-data"
    assert config["hub"] == {"username": "${HF_USERNAME}", "token": "${HF_TOKEN}", "push_to_hub": True}
    assert "autotrain --config" in sent["command"][-1]
    joined = "\n".join(notes)
    assert "assistant-only" in joined and "system_prompt" not in joined and "max_train_examples" not in joined


def test_a_refused_launch_leaves_no_dataset_behind(jobs_hub, mario):
    jobs_hub.require_payment("mario")
    with pytest.raises(JobsError, match="402|pagamento|payment"):
        launch_autotrain(JobsClient(mario), _config(), output_repo="mario/smol-ita-at", flavor="a10g-small")
    assert ("dataset", "mario/smol-ita-at-data") not in jobs_hub.repos and not jobs_hub.jobs


def test_hub_dataset_is_used_as_is_and_bad_names_are_refused(jobs_hub, mario):
    run, _, notes = launch_autotrain(JobsClient(mario), _config("data.train=mario/dialoghi"), output_repo="mario/x-at",
                                     flavor="a10g-small")
    assert yaml.safe_load(decode_autotrain_config(jobs_hub.jobs[run.id].spec["environment"]))["data"]["path"] == "mario/dialoghi"
    assert any("system_prompt" in n for n in notes)  # the user's rows must carry it themselves
    assert not any(kind == "dataset" for kind, _ in jobs_hub.repos)
    with pytest.raises(ConfigError, match="AutoTrain names the repo"):
        build_autotrain_job_spec(_config(), flavor="a10g-small", output_repo="mario/smol_ita.v2", data_repo="mario/d")


def test_cli_launch_backend_autotrain(jobs_hub, mario, tmp_path, capsys):
    from hf_ita_plugin.cli.main import main

    config = tmp_path / "run.yaml"
    config.write_text("preset: smollm2-135m-cpu\n", encoding="utf-8")
    assert main(["jobs", "launch", str(config), "--backend", "autotrain", "--flavor", "a10g-small",
                 "--repo", "mario/smol-at", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["image"] == AUTOTRAIN_IMAGE and "AutoTrain cannot express" in out.err
    assert not jobs_hub.jobs and not jobs_hub.repos.get(("dataset", "mario/smol-at-data"))
    assert main(["jobs", "launch", str(config), "--backend", "autotrain", "--flavor", "a10g-small",
                 "--repo", "mario/smol-at"]) == 0
    assert "Job AutoTrain avviato / started" in capsys.readouterr().out
    (job,) = jobs_hub.jobs.values()
    assert job.spec["labels"][LABEL_BACKEND] == "autotrain" and ("dataset", "mario/smol-at-data") in jobs_hub.repos
    assert main(["jobs", "launch", str(config), "--backend", "autotrain", "--image", "x/y", "--repo", "mario/a"]) == 2
