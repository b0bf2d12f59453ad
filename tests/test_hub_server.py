"""The local Hub test server speaks the protocol the real huggingface_hub client expects (no model needed)."""

from __future__ import annotations

import os

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError


@pytest.fixture
def api(hub_server):
    hub_server.token = hub_server.add_token("anna", orgs=["lab"])
    return HfApi(endpoint=hub_server.url, token=hub_server.token)


def test_regular_and_lfs_files_branches_tags_and_downloads(hub_server, api, tmp_path):
    api.create_repo("lab/demo")
    big = os.urandom(300_000)
    info = api.create_commit("lab/demo", [CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# demo\n"),
                                          CommitOperationAdd("w/model.safetensors", big)], commit_message="add")
    api.create_branch("lab/demo", branch="dev")
    api.create_commit("lab/demo", [CommitOperationAdd("notes.txt", b"solo su dev")], commit_message="dev", revision="dev")
    api.create_tag("lab/demo", tag="v1", revision=info.oid)

    refs = api.list_repo_refs("lab/demo")
    assert {b.name for b in refs.branches} == {"main", "dev"} and refs.tags[0].target_commit == info.oid
    assert "notes.txt" not in api.list_repo_files("lab/demo")
    assert "notes.txt" in api.list_repo_files("lab/demo", revision="dev")
    entries = {e.path: e for e in api.get_paths_info("lab/demo", ["README.md", "w/model.safetensors", "w"])}
    assert entries["w/model.safetensors"].lfs.size == len(big) and entries["README.md"].lfs is None
    assert type(entries["w"]).__name__ == "RepoFolder"
    assert [c.title for c in api.list_repo_commits("lab/demo", revision="dev")] == ["dev", "add", "initial commit"]

    path = hf_hub_download("lab/demo", "w/model.safetensors", revision="v1", endpoint=hub_server.url,
                           token=hub_server.token, cache_dir=tmp_path)
    assert open(path, "rb").read() == big
    snap = snapshot_download("lab/demo", revision="dev", endpoint=hub_server.url, token=hub_server.token, cache_dir=tmp_path)
    assert sorted(os.listdir(snap)) == [".gitattributes", "README.md", "notes.txt", "w"]
    assert api.model_info("lab/demo").card_data.license == "mit"
    with pytest.raises(RevisionNotFoundError):
        api.model_info("lab/demo", revision="v9")
    api.delete_tag("lab/demo", tag="v1")
    assert api.list_repo_refs("lab/demo").tags == []


def test_stale_parent_commit_is_rejected_and_nothing_changes(hub_server, api):
    api.create_repo("anna/race")
    first = hub_server.head("anna/race")
    api.create_commit("anna/race", [CommitOperationAdd("a.txt", b"a")], commit_message="a")
    with pytest.raises(HfHubHTTPError) as info:
        api.create_commit("anna/race", [CommitOperationAdd("b.txt", b"b")], commit_message="b", parent_commit=first)
    assert info.value.response.status_code == 412
    assert "b.txt" not in hub_server.files("anna/race")


def test_private_repos_and_namespaces(hub_server, api):
    api.create_repo("anna/secret", private=True)
    other = HfApi(endpoint=hub_server.url, token=hub_server.add_token("bruno"))
    with pytest.raises(RepositoryNotFoundError):
        other.model_info("anna/secret")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub_server.url, token=False).list_repo_files("anna/secret")
    with pytest.raises(HfHubHTTPError) as info:
        other.create_repo("lab/not-yours")
    assert info.value.response.status_code == 403
    assert api.model_info("anna/secret").private is True


def test_fault_on_the_nth_request_of_a_route(hub_server, api):
    api.create_repo("anna/faulty")
    hub_server.inject_fault("repo_info", 503, nth=2)
    api.model_info("anna/faulty")
    with pytest.raises(HfHubHTTPError) as info:
        api.model_info("anna/faulty")
    assert info.value.response.status_code == 503
    api.model_info("anna/faulty")
    assert [r.status for r in hub_server.requests if r.route == "repo_info"] == [200, 503, 200]
