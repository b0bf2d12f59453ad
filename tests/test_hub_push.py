"""Publishing to the (local) Hub with the real huggingface_hub client: one commit, LFS, tags, retries, refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.errors import ConfigError, HubError, ModelError
from hf_ita_plugin.hub.pull import load_adapter
from hf_ita_plugin.hub.push import PUBLISH_ID_PREFIX, push
from hf_ita_plugin.rundir import RunDir
from test_hub_support import adapter_logits, make_run, push_folder, reference_model, tiny_base

BASE_ID = "mario/tiny-llama"
TEXT_SUFFIXES = (".json", ".yaml", ".md", ".jinja", ".Modelfile", ".txt")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def run_template(tmp_path_factory, base_dir):
    run = make_run(tmp_path_factory.mktemp("run") / "out", base_dir, BASE_ID)
    gguf = RunDir(run).gguf_dir
    gguf.mkdir()
    (gguf / "tiny-ita-Q8_0.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + torch.randn(20000).numpy().tobytes())
    (gguf / "tiny-ita-Q8_0.Modelfile").write_text("FROM ./tiny-ita-Q8_0.gguf\n")
    return run


@pytest.fixture
def run(run_template, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run_template, out)
    return out


@pytest.fixture
def hub(hub_server, base_dir, monkeypatch):
    """The local Hub with user mario (token in HF_TOKEN) and the tiny base model published as mario/tiny-llama."""
    token = hub_server.add_token("mario")
    hub_server.token = token
    push_folder(hub_server, token, BASE_ID, base_dir)
    monkeypatch.setenv("HF_TOKEN", token)
    return hub_server


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _expected_files(run: Path) -> set[str]:
    adapter = {p.name for p in RunDir(run).adapter_dir.iterdir() if p.name != "README.md"}
    return adapter | {"README.md", "metrics.json", "run_config.yaml", "loss_curve.png", "gguf/tiny-ita-Q8_0.gguf",
                      "gguf/tiny-ita-Q8_0.Modelfile", ".gitattributes"}


def _assert_complete_publish(hub, repo: str, run: Path, revision: str = "main") -> dict[str, bytes]:
    files = hub.files(repo, revision)
    assert set(files) == _expected_files(run)
    assert _sha(files["adapter_model.safetensors"]) == _sha((RunDir(run).adapter_dir / "adapter_model.safetensors").read_bytes())
    assert files["gguf/tiny-ita-Q8_0.gguf"] == (RunDir(run).gguf_dir / "tiny-ita-Q8_0.gguf").read_bytes()
    return files


def test_round_trip_push_then_load_adapter_gives_same_logits(hub, run, base_dir, tmp_path):
    result = push(run, "mario/tiny-ita", retry_wait=0.01)
    assert (result.tag, result.attempts, result.recovered) == ("v1", 1, False)
    log = hub.commit_log("mario/tiny-ita")
    assert len(log) == 2 and log[0].sha == result.commit_oid  # "initial commit" + exactly one publish commit
    assert hub.head("mario/tiny-ita") == result.commit_oid
    files = _assert_complete_publish(hub, "mario/tiny-ita", run, "v1")

    # weights and the GGUF went through LFS (basic transfer), the card inline
    tree = {f.path: f for f in HfApi(endpoint=hub.url, token=hub.token).list_repo_tree("mario/tiny-ita", recursive=True)
            if hasattr(f, "lfs")}
    assert tree["adapter_model.safetensors"].lfs is not None and tree["gguf/tiny-ita-Q8_0.gguf"].lfs is not None
    assert tree["README.md"].lfs is None
    assert hub.count("lfs_batch", repo_id="mario/tiny-ita") == 1 and hub.count("commit", repo_id="mario/tiny-ita") == 1

    # the pushed copy names the base by Hub id; no local path or token in any pushed text file
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == BASE_ID
    assert "base_model_path" not in json.loads(files["metrics.json"])
    for path, content in files.items():
        if path.endswith(TEXT_SUFFIXES):
            text = content.decode()
            assert str(tmp_path) not in text and str(base_dir) not in text and str(Path.home()) not in text, path
            assert hub.token not in text
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == BASE_ID and "gguf/tiny-ita-Q8_0.gguf" in card.text

    # pull back: same logits as loading the local adapter onto the local base
    model, tokenizer = load_adapter("mario/tiny-ita", revision="v1", cache_dir=str(tmp_path / "cache"))
    reference = reference_model(base_dir, RunDir(run).adapter_dir)
    from transformers import AutoTokenizer

    tokenizer_ref = AutoTokenizer.from_pretrained(str(RunDir(run).adapter_dir))
    assert tokenizer.chat_template == tokenizer_ref.chat_template
    torch.testing.assert_close(adapter_logits(model, tokenizer), adapter_logits(reference, tokenizer_ref), rtol=0, atol=1e-6)
    with reference.disable_adapter():  # the adapter must matter, or "same logits" proves nothing
        plain = adapter_logits(reference, tokenizer_ref)
    assert (plain - adapter_logits(model, tokenizer)).abs().max() > 1e-3


def test_load_adapter_in_4bit_matches_local_4bit(hub, run, base_dir, tmp_path):
    push(run, "mario/tiny-ita", retry_wait=0.01)
    model, tokenizer = load_adapter("mario/tiny-ita", load_in_4bit=True, cache_dir=str(tmp_path / "cache"))
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    reference = reference_model(base_dir, RunDir(run).adapter_dir, load_in_4bit=True)
    torch.testing.assert_close(adapter_logits(model, tokenizer), adapter_logits(reference, tokenizer), rtol=0, atol=1e-5)


def test_second_publish_gets_next_tag_and_old_revision_stays_loadable(hub, run, base_dir, tmp_path):
    first = push(run, "mario/tiny-ita", retry_wait=0.01)
    (RunDir(run).gguf_dir / "tiny-ita-Q8_0.gguf").unlink()
    (RunDir(run).gguf_dir / "tiny-ita-Q8_0.Modelfile").unlink()
    make_run(run, base_dir, BASE_ID, seed=1)  # retrained adapter
    second = push(run, "mario/tiny-ita", retry_wait=0.01)
    assert (first.tag, second.tag) == ("v1", "v2")
    assert second.deleted == ["gguf/tiny-ita-Q8_0.Modelfile", "gguf/tiny-ita-Q8_0.gguf"]
    assert len(hub.commit_log("mario/tiny-ita")) == 3
    assert "gguf/tiny-ita-Q8_0.gguf" in hub.files("mario/tiny-ita", "v1")
    assert "gguf/tiny-ita-Q8_0.gguf" not in hub.files("mario/tiny-ita", "v2")
    old, tok = load_adapter("mario/tiny-ita", revision="v1", cache_dir=str(tmp_path / "c"))
    new, _ = load_adapter("mario/tiny-ita", revision="v2", cache_dir=str(tmp_path / "c"))
    new_ref = reference_model(base_dir, RunDir(run).adapter_dir)
    torch.testing.assert_close(adapter_logits(new, tok), adapter_logits(new_ref, tok), rtol=0, atol=1e-6)
    assert (adapter_logits(old, tok) - adapter_logits(new, tok)).abs().max() > 1e-3


@pytest.mark.parametrize(
    "route, action, nth, times, recovered, attempts",
    [
        ("preupload", 500, 1, 1, False, 1),        # retried inside huggingface_hub
        ("lfs_upload", "drop", 2, 1, False, 1),     # connection dropped on the 2nd LFS upload, retried by the client
        ("lfs_batch", 503, 1, 1, False, 1),
        ("commit", 503, 1, 1, False, 2),            # the commit is retried by hf-ita (same parent commit)
        ("commit", "drop", 1, 2, False, 3),
        ("commit", "drop_after", 1, 1, True, 1),    # commit applied, response lost: found in the history, not redone
    ],
)
def test_transient_faults_end_in_exactly_one_complete_commit(hub, run, route, action, nth, times, recovered, attempts):
    before = len(hub.commit_log("mario/tiny-ita")) if ("model", "mario/tiny-ita") in hub.repos else 0
    hub.inject_fault(route, action, nth=nth, times=times)
    result = push(run, "mario/tiny-ita", retry_wait=0.01)
    assert (result.recovered, result.attempts) == (recovered, attempts)
    log = hub.commit_log("mario/tiny-ita")
    assert len(log) == before + 2  # initial commit + one publish
    assert PUBLISH_ID_PREFIX in log[0].message and log[0].sha == result.commit_oid
    assert any(r.route == route and r.status != 200 for r in hub.requests)  # the fault did happen
    _assert_complete_publish(hub, "mario/tiny-ita", run, "v1")


@pytest.mark.parametrize("action", [500, "drop"])
def test_persistent_commit_failure_publishes_nothing(hub, run, action, capsys):
    HfApi(endpoint=hub.url, token=hub.token).create_repo("mario/tiny-ita")
    head = hub.head("mario/tiny-ita")
    hub.inject_fault("commit", action, times=100)
    with pytest.raises(HubError, match="nothing was published") as info:
        push(run, "mario/tiny-ita", max_attempts=3, retry_wait=0.01)
    assert head[:8] in str(info.value)
    assert hub.head("mario/tiny-ita") == head and len(hub.commit_log("mario/tiny-ita")) == 1
    assert hub.files("mario/tiny-ita").keys() == {".gitattributes"}
    assert hub.repos[("model", "mario/tiny-ita")].tags == {}
    assert hub.count("commit", repo_id="mario/tiny-ita") == 3


def test_cli_push_and_pull(hub, run, capsys):
    assert main(["push", str(run), "--repo", "mario/cli-ita", "--tag", "release-1"]) == 0
    out = capsys.readouterr().out
    assert "release-1" in out and hub.head("mario/cli-ita") in out
    assert main(["pull", "mario/cli-ita", "--revision", "release-1", "--prompt", "Ciao", "--max-new-tokens", "3"]) == 0
    assert "mario/cli-ita@release-1" in capsys.readouterr().out
    assert main(["push", str(run), "--repo", "mario/cli-ita", "--dry-run"]) == 0
    assert "adapter_model.safetensors" in capsys.readouterr().out


@pytest.mark.parametrize("repo_id", ["not a repo", "a/b/c", "-bad/name", "mario/", "mario/x--y"])
def test_malformed_repo_id_is_refused_before_any_request(hub, run, repo_id, capsys):
    requests = len(hub.requests)
    assert main(["push", str(run), f"--repo={repo_id}"]) == 2
    assert "malformed repo id" in capsys.readouterr().err
    assert len(hub.requests) == requests


def test_missing_invalid_and_read_only_tokens(hub, run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="no Hugging Face token"):
        push(run, "mario/tiny-ita")
    with pytest.raises(HubError, match="invalid or expired token"):
        push(run, "mario/tiny-ita", token="hf_" + "0" * 32)
    with pytest.raises(HubError, match="read-only"):
        push(run, "mario/tiny-ita", token=hub.add_token("mario", role="read"))
    with pytest.raises(HubError, match="cannot write to namespace 'mario'"):
        push(run, "mario/tiny-ita", token=hub.add_token("luigi"))
    assert ("model", "mario/tiny-ita") not in hub.repos


def test_server_rejects_writes_with_read_token(hub):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    reader = HfApi(endpoint=hub.url, token=hub.add_token("mario", role="read"))
    with pytest.raises(HfHubHTTPError) as info:
        reader.create_commit(BASE_ID, [CommitOperationAdd("x.txt", b"x")], commit_message="nope")
    assert info.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as info:
        reader.create_tag(BASE_ID, tag="v9")
    assert info.value.response.status_code == 403
    assert reader.list_repo_files(BASE_ID)  # reading is fine


def test_repo_with_other_content_is_refused_unless_forced(hub, run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("---\nlicense: mit\n---\n# Someone else's model\n")
    (other / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    push_folder(hub, hub.token, "mario/taken", other)
    head = hub.head("mario/taken")
    with pytest.raises(HubError, match="already holds other content") as info:
        push(run, "mario/taken", retry_wait=0.01)
    assert "--force" in str(info.value)
    assert hub.head("mario/taken") == head
    result = push(run, "mario/taken", force=True, retry_wait=0.01)
    assert result.deleted == ["model.safetensors"]
    assert "model.safetensors" not in hub.files("mario/taken") and "model.safetensors" in hub.files("mario/taken", head)
    # once published by hf-ita, the repo is "ours": the next push needs no --force; same files, no new commit
    again = push(run, "mario/taken", retry_wait=0.01)
    assert (again.tag, again.unchanged, again.commit_oid) == ("v2", True, result.commit_oid)


def test_existing_tag_is_refused_before_committing(hub, run):
    push(run, "mario/tiny-ita", tag="v1", retry_wait=0.01)
    commits = len(hub.commit_log("mario/tiny-ita"))
    with pytest.raises(HubError, match="tag 'v1' already exists"):
        push(run, "mario/tiny-ita", tag="v1", retry_wait=0.01)
    assert len(hub.commit_log("mario/tiny-ita")) == commits


def test_pickle_weights_are_refused(hub, run):
    torch.save({"x": torch.zeros(2)}, RunDir(run).adapter_dir / "training_args.bin")
    with pytest.raises(ModelError, match="training_args.bin.*pickle"):
        push(run, "mario/tiny-ita")
    assert ("model", "mario/tiny-ita") not in hub.repos


def test_token_written_in_a_file_is_never_published(hub, run):
    metrics = json.loads(RunDir(run).metrics_path.read_text())
    metrics["notes"] = f"logged in with {hub.token}"
    RunDir(run).metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(ConfigError, match="metrics.json: .*contains the Hugging Face token"):
        push(run, "mario/tiny-ita")
    assert ("model", "mario/tiny-ita") not in hub.repos


def test_local_path_left_in_a_file_is_never_published(hub, run):
    (RunDir(run).adapter_dir / "training_notes.json").write_text(json.dumps({"data": str(run / "data.jsonl")}))
    with pytest.raises(ConfigError, match="training_notes.json: .*contains a local path"):
        push(run, "mario/tiny-ita")
    assert ("model", "mario/tiny-ita") not in hub.repos


def test_publish_kinds_put_the_right_files_at_the_root(run):
    from hf_ita_plugin.hub.staging import stage_publish

    merged = stage_publish(run, "mario/tiny-ita-merged", kind="merged", lookup=False)  # merges first (peft)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(merged.files)
    assert "adapter_config.json" not in merged.files and "gguf/tiny-ita-Q8_0.gguf" in merged.files
    card = ModelCard(merged.files["README.md"].decode())
    assert (card.data.library_name, card.data.to_dict()["base_model_relation"]) == ("transformers", "finetune")

    gguf = stage_publish(run, "mario/tiny-ita-GGUF", kind="gguf", lookup=False)
    assert {"tiny-ita-Q8_0.gguf", "tiny-ita-Q8_0.Modelfile", "README.md"} <= set(gguf.files)
    assert not any(p.endswith(".safetensors") for p in gguf.files)  # merged/ exists now, but was not asked for
    gguf_card = ModelCard(gguf.files["README.md"].decode()).data.to_dict()
    # no fine-tune published from this run: the GGUF holds the original base with the adapter merged in
    assert (gguf_card["base_model"], gguf_card["base_model_relation"]) == (card.data.base_model, "finetune")

    adapter = stage_publish(run, "mario/tiny-ita", lookup=False)  # what OUTPUT_DIR holds is published alongside
    assert {"adapter_model.safetensors", "merged/model.safetensors", "gguf/tiny-ita-Q8_0.gguf"} <= set(adapter.files)
    shutil.rmtree(RunDir(run).gguf_dir)
    with pytest.raises(ModelError, match="no .gguf files"):
        stage_publish(run, "mario/tiny-ita", gguf=[], lookup=False)


def test_gguf_card_names_the_published_finetune_as_quantized_base(hub, run):
    from hf_ita_plugin.errors import HubError
    from hf_ita_plugin.hub.staging import stage_publish

    result = push(run, "mario/tiny-ita")
    assert RunDir(run).read_publications()[-1] == {"repo_id": "mario/tiny-ita", "kind": "adapter", "revision": result.tag}
    gguf = stage_publish(run, "mario/tiny-ita-GGUF", kind="gguf", lookup=False)
    card = ModelCard(gguf.files["README.md"].decode())
    assert (card.data.base_model, card.data.to_dict()["base_model_relation"]) == ("mario/tiny-ita", "quantized")
    assert "[mario/tiny-ita](https://huggingface.co/mario/tiny-ita)" in card.text
    explicit = stage_publish(run, "mario/tiny-ita-GGUF", kind="gguf", lookup=False, finetune_repo="mario/altro")
    assert ModelCard(explicit.files["README.md"].decode()).data.base_model == "mario/altro"
    with pytest.raises(HubError, match="--finetune-repo: .*malformed"):
        stage_publish(run, "mario/tiny-ita-GGUF", kind="gguf", lookup=False, finetune_repo="not a repo")
    assert "publications.json" not in gguf.files  # a local note, never published
