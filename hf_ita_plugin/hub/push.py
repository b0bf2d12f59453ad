"""Publish a training OUTPUT_DIR to the Hub: one atomic commit, then a revision tag.

Steps: check the repo id and the token (``whoami``), create the repo if needed, refuse a repo that
holds someone else's content (unless ``force``), stage and check the files
(:mod:`~hf_ita_plugin.hub.staging`), send everything in **one** ``create_commit`` (large files via
LFS, small ones inline) with ``parent_commit`` set, then tag the commit.

Retries: huggingface_hub already retries its idempotent calls (preupload, LFS). The commit itself
is retried here. Because the commit names its parent, a retry can never create a second commit:
after a failure we look at the repo's history for this publish's id (the response may have been
lost after the commit landed) and otherwise retry; the Hub applies a commit whole or not at all, so
the repo is never left half-published.

Example::

    result = push("outputs/run1", "mario/smollm2-ita")
    print(result.url, result.tag)
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HfItaError, HubError
from .card import PROJECT_TAG
from .failures import explain, is_transient, status_of
from .paths import hub_endpoint, resolve_token, validate_repo_id
from .staging import PublishSet, scan_for_secrets, stage_publish

PUBLISH_ID_PREFIX = "hf-ita-publish-id: "
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class PublishResult:
    """What a push did: the commit, the tag, the files and how many commit attempts it took."""

    repo_id: str
    url: str
    commit_oid: str
    tag: str | None
    files: list[str]
    deleted: list[str] = field(default_factory=list)
    attempts: int = 1
    recovered: bool = False  # the commit landed but its response was lost; found in the history
    unchanged: bool = False  # same files as the repo's head: no new commit, the tag points at the head

    @property
    def revision(self) -> str:
        return self.tag or self.commit_oid


def push(output_dir: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool = False,
         kind: str = "adapter", merged: bool = False, gguf: list[str] | None = None, tag: str | None = "auto",
         force: bool = False, base_model: str | None = None, keep_card: bool = False, endpoint: str | None = None,
         commit_message: str | None = None, max_attempts: int = 4, retry_wait: float = 2.0,
         finetune_repo: str | None = None) -> PublishResult:
    """Publish ``output_dir`` to ``repo_id`` in one commit and tag it (``tag="auto"``: ``v1``, ``v2``...).

    Raises :class:`~hf_ita_plugin.errors.HubError` (bad repo id, no/invalid token, no permission,
    repo with other content, tag taken, network failure) and
    :class:`~hf_ita_plugin.errors.ModelError`/``ConfigError`` for a bad OUTPUT_DIR (pickle weights,
    missing adapter, local base model path...).
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    validate_repo_id(repo_id)
    token = resolve_token(token)
    if not token:
        raise HubError(f"push {repo_id}: nessun token Hugging Face / no Hugging Face token found",
                       hint="run `hf auth login` or set HF_TOKEN to a token with write access")
    if tag not in (None, "", "auto") and not _TAG_RE.match(tag):
        raise HubError(f"--tag: nome di tag non valido / invalid tag name {tag!r}", hint="use letters, digits, '.', '_' or '-', e.g. v1")
    endpoint = hub_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)

    user = _whoami(api, repo_id, max_attempts, retry_wait)
    namespace = repo_id.split("/")[0]
    if namespace not in user["namespaces"]:
        raise HubError(f"push {repo_id}: il token di {user['name']} non può scrivere in {namespace!r} / "
                       f"{user['name']}'s token cannot write to namespace {namespace!r}",
                       hint=f"publish under {user['name']}/... or use a token of a member of {namespace}")
    if user["role"] == "read":
        raise HubError(f"push {repo_id}: il token è di sola lettura / the token is read-only",
                       hint="create a token with write access at https://huggingface.co/settings/tokens")

    pset = stage_publish(output_dir, repo_id, kind=kind, merged=merged, gguf=gguf, base_model=base_model,
                         keep_card=keep_card, endpoint=endpoint, token=token, finetune_repo=finetune_repo)
    scan_for_secrets(pset, token=token, local_roots=_local_roots(Path(output_dir)))
    print(f"hf-ita: {len(pset.files)} file da pubblicare / files to publish ({pset.size() / 2**20:.1f} MB) -> {repo_id}")

    _call(lambda: api.create_repo(repo_id, private=private, exist_ok=True), "push", repo_id, max_attempts, retry_wait)
    remote = _call(lambda: _remote_state(api, repo_id), "push", repo_id, max_attempts, retry_wait)
    foreign = [f for f in remote["files"] if f != ".gitattributes"]
    if foreign and not remote["ours"] and not force:
        sample = ", ".join(foreign[:4]) + (" ..." if len(foreign) > 4 else "")
        raise HubError(f"push {repo_id}: il repository contiene già altro / the repo already holds other content ({sample})",
                       hint="publish to a new repo id, or pass --force to replace its files (history and tags are kept)")
    tag_name = _choose_tag(tag, remote["tags"], repo_id)
    deleted = sorted(f for f in foreign if f not in pset.files)

    publish_id = uuid.uuid4().hex
    message = commit_message or f"hf-ita: publish {kind} ({len(pset.files)} files)"
    description = f"{PUBLISH_ID_PREFIX}{publish_id}\n\nPublished with hf-ita-plugin."
    hashes: dict[str, bytes] = {}

    def operations():
        ops = []
        for path_in_repo, content in pset.files.items():
            op = CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=content)
            if path_in_repo in hashes:
                op.upload_info.sha256 = hashes[path_in_repo]
            ops.append(op)
        ops += [CommitOperationDelete(path_in_repo=p) for p in deleted]
        return ops

    oid, attempts, recovered = _commit(api, repo_id, operations, hashes, message, description, remote["head"],
                                       publish_id, max_attempts, retry_wait)
    if tag_name:
        _create_tag(api, repo_id, tag_name, oid, max_attempts, retry_wait)
    url = f"{endpoint}/{repo_id}"
    unchanged = oid == remote["head"]
    if unchanged:
        print("hf-ita: nessun file cambiato, nessun nuovo commit / no file changed, no new commit")
    print(f"hf-ita: pubblicato / published {url} (commit {oid[:8]}" + (f", tag {tag_name})" if tag_name else ")"))
    _record_publication(Path(output_dir), repo_id, kind, tag_name or oid)
    return PublishResult(repo_id=repo_id, url=url, commit_oid=oid, tag=tag_name or None, files=sorted(pset.files),
                         deleted=deleted, attempts=attempts, recovered=recovered, unchanged=unchanged)


# ---------------------------------------------------------------------- steps
def _record_publication(output_dir: Path, repo_id: str, kind: str, revision: str) -> None:
    """Note the publish in OUTPUT_DIR/publications.json (a later GGUF card names this fine-tune).
    The publish already happened: a folder that cannot be written only costs that note."""
    from ..rundir import RunDir

    try:
        RunDir(output_dir).record_publication(repo_id, kind, revision)
    except (OSError, HfItaError) as exc:
        print(f"hf-ita: avviso / warning: publications.json non aggiornato / not updated ({exc})")


def _call(fn, action: str, repo_id: str, max_attempts: int, wait: float):
    """Run an idempotent Hub call, retrying transient failures, explaining the others."""
    for attempt in range(1, max_attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == max_attempts:
                raise explain(exc, action=action, repo_id=repo_id) from exc
            time.sleep(wait * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _whoami(api, repo_id: str, max_attempts: int, wait: float) -> dict:
    info = _call(lambda: api.whoami(), "push", repo_id, max_attempts, wait)
    orgs = [o.get("name") for o in info.get("orgs") or [] if isinstance(o, dict)]
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    return {"name": info.get("name"), "namespaces": {info.get("name"), *orgs}, "role": role}


def _remote_state(api, repo_id: str) -> dict:
    info = api.model_info(repo_id)
    files = [s.rfilename for s in info.siblings or []]
    tags = (info.card_data or {}).get("tags") if info.card_data is not None else None
    refs = api.list_repo_refs(repo_id)
    return {
        "head": info.sha,
        "files": files,
        "ours": "README.md" in files and isinstance(tags, list) and PROJECT_TAG in tags,
        "tags": {t.name: t.target_commit for t in refs.tags},
    }


def _choose_tag(tag: str | None, existing: dict[str, str], repo_id: str) -> str | None:
    if not tag:
        return None
    if tag == "auto":
        numbers = [int(m.group(1)) for name in existing if (m := re.fullmatch(r"v(\d+)", name))]
        return f"v{max(numbers, default=0) + 1}"
    if tag in existing:
        raise HubError(f"push {repo_id}: il tag {tag!r} esiste già / tag {tag!r} already exists",
                       hint="choose another --tag (or omit it: v1, v2... are numbered automatically)")
    return tag


def _commit(api, repo_id: str, operations, hashes: dict[str, bytes], message: str, description: str,
            parent: str, publish_id: str, max_attempts: int, wait: float) -> tuple[str, int, bool]:
    last_exc: BaseException | None = None
    verified_absent = False
    for attempt in range(1, max_attempts + 1):
        ops = operations()
        try:
            info = api.create_commit(repo_id, ops, commit_message=message, commit_description=description,
                                     parent_commit=parent)
            return info.oid, attempt, False
        except Exception as exc:
            _remember_hashes(ops, hashes)
            if not (is_transient(exc) or status_of(exc) == 412):
                raise explain(exc, action="push", repo_id=repo_id) from exc
            last_exc = exc
        try:
            landed = _find_publish(api, repo_id, parent, publish_id)
        except Exception as exc:  # the Hub is still unreachable: state unknown, try again
            if not is_transient(exc):
                raise explain(exc, action="push", repo_id=repo_id) from exc
            verified_absent = False
        else:
            if landed is not None:
                return landed, attempt, True
            verified_absent = True
        if attempt < max_attempts:
            print(f"hf-ita: commit non riuscito, riprovo / commit failed, retrying ({attempt}/{max_attempts - 1}): "
                  f"{str(last_exc).splitlines()[0] if str(last_exc) else type(last_exc).__name__}")
            time.sleep(wait * 2 ** (attempt - 1))
    if verified_absent:
        state = f"nulla è stato pubblicato / nothing was published (the repo still points at {parent[:8]})"
    else:
        state = "stato del repository non verificabile / the repo state could not be verified"
    raise HubError(f"push {repo_id}: errore di rete dopo {max_attempts} tentativi / network failure after "
                   f"{max_attempts} attempts: {state}",
                   hint="run the same command again: a publish is one commit, it is either complete or absent") from last_exc


def _remember_hashes(ops, hashes: dict[str, bytes]) -> None:
    for op in ops:
        info = getattr(op, "upload_info", None)
        if info is not None and info.is_hashed:
            hashes[op.path_in_repo] = info.sha256


def _find_publish(api, repo_id: str, parent: str, publish_id: str) -> str | None:
    """The commit of this publish if it landed after ``parent``; raises if someone else pushed."""
    commits = api.list_repo_commits(repo_id)
    for commit in commits:
        if commit.commit_id == parent:
            return None
        if f"{PUBLISH_ID_PREFIX}{publish_id}" in (commit.message or ""):
            return commit.commit_id
    raise HubError(f"push {repo_id}: il repository è cambiato durante la pubblicazione / the repo changed during the push",
                   hint="someone else pushed meanwhile: check the repo, then run the command again")


def _create_tag(api, repo_id: str, tag: str, oid: str, max_attempts: int, wait: float) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, max_attempts + 1):
        try:
            api.create_tag(repo_id, tag=tag, revision=oid, tag_message=f"hf-ita publish {oid[:8]}")
            return
        except HfHubHTTPError as exc:
            if status_of(exc) == 409:  # a lost response on a previous attempt, or a race
                refs = api.list_repo_refs(repo_id)
                if any(t.name == tag and t.target_commit == oid for t in refs.tags):
                    return
                raise HubError(f"push {repo_id}: pubblicato (commit {oid[:8]}) ma il tag {tag!r} è già usato / "
                               f"published (commit {oid[:8]}) but tag {tag!r} is taken", hint="tag the commit by hand") from exc
            if not is_transient(exc) or attempt == max_attempts:
                raise HubError(f"push {repo_id}: pubblicato (commit {oid[:8]}) ma il tag {tag!r} non è stato creato / "
                               f"published (commit {oid[:8]}) but the tag {tag!r} could not be created: {explain(exc, action='tag', repo_id=repo_id)}",
                               hint=f"the files are online; load them with revision={oid[:8]!r} or retry the tag") from exc
        except Exception as exc:
            if not is_transient(exc) or attempt == max_attempts:
                raise HubError(f"push {repo_id}: pubblicato (commit {oid[:8]}) ma il tag {tag!r} non è stato creato / "
                               f"published (commit {oid[:8]}) but the tag {tag!r} could not be created",
                               hint="the files are online; retry the tag later") from exc
        time.sleep(wait * 2 ** (attempt - 1))


def _local_roots(output_dir: Path) -> list[str]:
    from ..models.embedded import cache_dir

    roots = [str(output_dir.resolve()), str(cache_dir().resolve())]
    home = str(Path.home())
    if home not in ("/", ""):
        roots.append(home)
    return roots


def publish_set_for(output_dir: str | os.PathLike, repo_id: str, **kwargs) -> PublishSet:
    """The files a push would send (for inspection, e.g. ``hf-ita push --dry-run``)."""
    validate_repo_id(repo_id)
    return stage_publish(output_dir, repo_id, **kwargs)
