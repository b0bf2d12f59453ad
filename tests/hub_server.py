"""A local Hugging Face Hub for tests: the Hub's HTTP protocol, as huggingface_hub 2.x speaks it.

The Hub itself cannot be reached from CI, and the rules forbid mocking its client, so the tests
drive the *real* ``huggingface_hub`` client against this server (``HF_ENDPOINT`` / ``endpoint=``
pointing at it, Xet disabled). It implements the routes the client uses to publish and download
model repositories:

- ``GET /api/whoami-v2``; ``POST /api/repos/create``; ``DELETE /api/repos/delete``;
  ``POST /api/validate-yaml``
- ``GET /api/{type}s/{repo}`` and ``.../revision/{rev}`` (repo info with siblings)
- ``POST .../preupload/{rev}`` (answers ``uploadMode`` ``regular`` or ``lfs``)
- ``POST /{repo}.git/info/lfs/objects/batch`` + signed ``PUT`` upload + ``verify`` (LFS basic transfer)
- ``POST .../commit/{rev}`` (NDJSON: ``header``, ``file`` base64, ``lfsFile``, ``deletedFile``,
  ``deletedFolder``), applied atomically, ``parentCommit`` checked (412 on a stale parent)
- ``GET .../tree/{rev}/{path}``, ``POST .../paths-info/{rev}``, ``GET .../commits/{rev}``, ``GET .../refs``
- ``POST/DELETE .../tag/{rev}``, ``POST/DELETE .../branch/{name}``
- ``HEAD/GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Size`` /
  ``X-Linked-Etag`` (LFS) and byte ranges

Authentication uses Bearer tokens registered with :meth:`HubServer.add_token` (role ``read`` or
``write``); a read token gets 403 on any write. Faults can be injected per route
(:meth:`HubServer.inject_fault`): an HTTP status, a dropped connection before the request is
handled, or a dropped connection *after* it was handled (the response is lost).

Storage is a directory (a fresh temporary one by default): LFS objects and regular blobs are files
named by their hash, repository state lives in memory.

Example::

    with HubServer() as hub:
        token = hub.add_token("alice", role="write")
        HfApi(endpoint=hub.url, token=token).create_repo("alice/demo")
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.safetensors", "*.gguf", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle",
        "*.h5", "*.msgpack", "*.onnx", "*.npy", "*.npz", "*.zip", "*.gz", "*.tar", "*.model",
        "*.parquet", "*.arrow", "*tfevents*",
    )
)
"""The ``.gitattributes`` committed when a repo is created (LFS for weight-like files)."""

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ``oid`` for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file stored in git for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Entry:
    """One file of a commit's tree."""

    size: int
    oid: str  # git blob id (of the pointer file for LFS)
    sha256: str  # content hash, the storage key
    lfs: bool
    pointer_size: int = 0


@dataclass
class Commit:
    sha: str
    parent: str | None
    tree: dict[str, Entry]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision.startswith("refs/heads/") and revision[11:] in self.branches:
            return self.branches[revision[11:]]
        if revision.startswith("refs/tags/") and revision[10:] in self.tags:
            return self.tags[revision[10:]]
        if _SHA_RE.match(revision) and revision in self.commits:
            return revision
        return None


@dataclass
class Token:
    user: str
    role: str  # "read" or "write"
    name: str


@dataclass
class Fault:
    route: str
    skip: int
    action: int | str
    times: int


@dataclass
class RequestRecord:
    method: str
    route: str
    path: str
    status: int | str


class HubError(Exception):
    """Turned into an HTTP error response by the request handler."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.extra = extra or {}


class _Drop(Exception):
    """Close the connection without answering."""


class HubServer:
    """A Hub HTTP server on ``127.0.0.1`` with a free port; use as a context manager or start/stop."""

    def __init__(self, storage_dir: str | os.PathLike | None = None, *, lfs_threshold: int = 10 * 1024 * 1024):
        self._own_storage = storage_dir is None
        self.storage = Path(storage_dir) if storage_dir is not None else Path(tempfile.mkdtemp(prefix="hub-server-"))
        (self.storage / "objects").mkdir(parents=True, exist_ok=True)
        self.lfs_threshold = lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.users: dict[str, list[str]] = {}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self._secret = secrets.token_bytes(16)
        self._lock = threading.RLock()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def handler_base(self) -> type:
        """The request handler class; subclasses (e.g. the Jobs server) return their own."""
        return _Handler

    def start(self) -> "HubServer":
        server = self

        class Handler(self.handler_base()):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test controls
    def add_user(self, name: str, orgs: tuple[str, ...] | list[str] = ()) -> None:
        with self._lock:
            self.users[name] = list(orgs)

    def add_token(self, user: str, role: str = "write", orgs: tuple[str, ...] | list[str] = ()) -> str:
        """Register ``user`` (if new) and return a fresh token with ``role`` ``read`` or ``write``."""
        if role not in ("read", "write"):
            raise ValueError("role must be 'read' or 'write'")
        with self._lock:
            self.users.setdefault(user, list(orgs))
            token = "hf_" + secrets.token_hex(16)
            self.tokens[token] = Token(user=user, role=role, name=f"{user}-{role}")
            return token

    def inject_fault(self, route: str, action: int | str = 500, *, nth: int = 1, times: int = 1) -> None:
        """Make the ``nth`` next request to ``route`` (and ``times - 1`` after it) fail.

        ``action``: an HTTP status code (answered without handling the request), ``"drop"`` (close
        the connection before handling it) or ``"drop_after"`` (handle it, then close the
        connection without answering). Route names: ``whoami``, ``create_repo``, ``delete_repo``,
        ``validate_yaml``, ``repo_info``, ``preupload``, ``lfs_batch``, ``lfs_upload``,
        ``lfs_verify``, ``commit``, ``tree``, ``paths_info``, ``commits``, ``refs``, ``tag``,
        ``branch``, ``resolve``.
        """
        with self._lock:
            self.faults.append(Fault(route=route, skip=nth - 1, action=action, times=times))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, route: str, method: str | None = None, repo_id: str | None = None) -> int:
        """How many requests reached ``route`` (optionally only with ``method``, only for ``repo_id``)."""
        with self._lock:
            return sum(1 for r in self.requests if r.route == route and (method is None or r.method == method)
                       and (repo_id is None or f"/{repo_id}/" in r.path or f"/{repo_id}.git/" in r.path))

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str:
        return self._repo(repo_type, repo_id).branches[branch]

    def commit_log(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[Commit]:
        """Commits reachable from ``revision``, newest first."""
        repo = self._repo(repo_type, repo_id)
        out, sha = [], repo.resolve(revision)
        while sha is not None:
            commit = repo.commits[sha]
            out.append(commit)
            sha = commit.parent
        return out

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Path -> content of every file at ``revision``."""
        repo = self._repo(repo_type, repo_id)
        sha = repo.resolve(revision)
        if sha is None:
            raise KeyError(revision)
        return {path: self._read_object(e.sha256) for path, e in repo.commits[sha].tree.items()}

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        with self._lock:
            return self.repos[(repo_type, repo_id)]

    # ------------------------------------------------------------------ storage
    def _object_path(self, sha256: str) -> Path:
        return self.storage / "objects" / sha256[:2] / sha256

    def _has_object(self, sha256: str) -> bool:
        return self._object_path(sha256).is_file()

    def _write_object(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        target = self._object_path(sha)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{sha}.{threading.get_ident()}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)
        return sha

    def _read_object(self, sha256: str) -> bytes:
        return self._object_path(sha256).read_bytes()

    def _sign(self, oid: str) -> str:
        return hmac.new(self._secret, oid.encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ git-like state
    def _new_sha(self, *parts: str) -> str:
        with self._lock:
            self._counter += 1
            return hashlib.sha1("\0".join((*parts, str(self._counter), secrets.token_hex(4))).encode()).hexdigest()

    def _make_commit(self, repo: Repo, parent: str | None, tree: dict[str, Entry], title: str, message: str, author: str) -> Commit:
        sha = self._new_sha(repo.repo_id, parent or "", title, json.dumps(sorted((p, e.oid) for p, e in tree.items())))
        commit = Commit(sha=sha, parent=parent, tree=tree, title=title, message=message, author=author, date=_now())
        repo.commits[sha] = commit
        return commit

    def _regular_entry(self, content: bytes) -> Entry:
        sha = self._write_object(content)
        return Entry(size=len(content), oid=git_blob_oid(content), sha256=sha, lfs=False)

    def _lfs_entry(self, sha256: str, size: int) -> Entry:
        pointer = lfs_pointer(sha256, size)
        return Entry(size=size, oid=git_blob_oid(pointer), sha256=sha256, lfs=True, pointer_size=len(pointer))

    def _lfs_patterns(self, tree: dict[str, Entry]) -> list[str]:
        entry = tree.get(".gitattributes")
        if entry is None:
            return []
        patterns = []
        for line in self._read_object(entry.sha256).decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                patterns.append(parts[0])
        return patterns

    def _is_lfs_path(self, patterns: list[str], path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


# ---------------------------------------------------------------------------------- HTTP layer
_API = r"/api/(?P<kind>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
_ROUTES: list[tuple[str, str, re.Pattern]] = [
    (m, name, re.compile(rx))
    for m, name, rx in [
        ("GET", "whoami", r"^/api/whoami-v2$"),
        ("POST", "create_repo", r"^/api/repos/create$"),
        ("DELETE", "delete_repo", r"^/api/repos/delete$"),
        ("POST", "validate_yaml", r"^/api/validate-yaml$"),
        ("POST", "preupload", _API + r"/preupload/(?P<rev>[^/]+)$"),
        ("POST", "commit", _API + r"/commit/(?P<rev>[^/]+)$"),
        ("GET", "tree", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"),
        ("POST", "paths_info", _API + r"/paths-info/(?P<rev>[^/]+)$"),
        ("GET", "commits", _API + r"/commits/(?P<rev>[^/]+)$"),
        ("GET", "refs", _API + r"/refs$"),
        ("POST", "tag", _API + r"/tag/(?P<rev>[^/]+)$"),
        ("DELETE", "tag", _API + r"/tag/(?P<rev>[^/]+)$"),
        ("POST", "branch", _API + r"/branch/(?P<rev>[^/]+)$"),
        ("DELETE", "branch", _API + r"/branch/(?P<rev>[^/]+)$"),
        ("GET", "repo_info", _API + r"(?:/revision/(?P<rev>[^/]+))?$"),
        ("POST", "lfs_batch", r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$"),
        ("PUT", "lfs_upload", r"^/_lfs/(?P<oid>[0-9a-f]{64})$"),
        ("POST", "lfs_verify", r"^/_lfs/(?P<oid>[0-9a-f]{64})/verify$"),
        ("GET", "resolve", r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
        ("HEAD", "resolve", r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer  # set by HubServer.start

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -------------------------------------------------------------- plumbing
    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        raw_path = split.path
        self.query = parse_qs(split.query)
        route, params = None, {}
        for m, name, rx in _ROUTES:
            match = rx.match(raw_path)
            if m == method and match:
                route, params = name, {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                break
        body = self._read_body()
        hub = self.hub
        action = None
        if route is not None:
            with hub._lock:
                for fault in hub.faults:
                    if fault.route == route and fault.times > 0:
                        if fault.skip > 0:
                            fault.skip -= 1
                            continue
                        fault.times -= 1
                        action = fault.action
                        break
        record = RequestRecord(method=method, route=route or "?", path=raw_path, status=0)
        with hub._lock:
            hub.requests.append(record)
        if action == "drop":
            record.status = "dropped"
            return self._drop()
        if isinstance(action, int):
            record.status = action
            return self._send_json(action, {"error": f"injected fault {action}"})
        try:
            if route is None:
                raise HubError(404, f"no route for {method} {raw_path}")
            status, payload, headers, raw = getattr(self, f"_route_{route}")(method, params, body)
        except HubError as err:
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message
            status, payload, raw = err.status, {"error": err.message, **err.extra}, None
        record.status = status
        if action == "drop_after":
            record.status = f"{status} (response dropped)"
            return self._drop()
        if raw is not None:
            self._send_raw(status, raw, headers)
        else:
            self._send_json(status, payload, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_raw(status, data, {"Content-Type": "application/json", **(headers or {})})

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        self.send_response(status)
        length = headers.pop("Content-Length", None)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length if length is not None else len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"invalid JSON body: {exc}") from None

    # -------------------------------------------------------------- auth
    def _token(self) -> Token | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        if not auth.startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")
        token = self.hub.tokens.get(auth[7:].strip())
        if token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return token

    def _namespaces(self, token: Token | None) -> set[str]:
        if token is None:
            return set()
        return {token.user, *self.hub.users.get(token.user, [])}

    def _require_write(self, namespace: str) -> Token:
        token = self._token()
        if token is None:
            raise HubError(401, "You must be authenticated to write (no token)")
        if token.role != "write":
            raise HubError(403, f"Your token '{token.name}' has read access only: write operations are forbidden")
        if namespace not in self._namespaces(token):
            raise HubError(403, f"You don't have the rights to write in the namespace '{namespace}'")
        return token

    def _get_repo(self, params: dict[str, str], *, write: bool = False) -> tuple[Repo, Token | None]:
        kind = params.get("kind") or "models"
        repo_type = _REPO_TYPES[kind]
        repo_id = params["repo"]
        token = self._token()
        repo = self.hub.repos.get((repo_type, repo_id))
        visible = repo is not None and (not repo.private or repo.namespace in self._namespaces(token))
        if not visible:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if write:
            token = self._require_write(repo.namespace)
        return repo, token

    def _resolve(self, repo: Repo, rev: str) -> str:
        sha = repo.resolve(rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return sha

    def _base(self) -> str:
        return self.hub.url

    def _repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self._base()}/{prefix}{repo.repo_id}"

    # -------------------------------------------------------------- account & repos
    def _route_whoami(self, method, params, body):
        token = self._token()
        if token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = self.hub.users.get(token.user, [])
        return 200, {
            "type": "user",
            "id": hashlib.sha1(token.user.encode()).hexdigest()[:24],
            "name": token.user,
            "fullname": token.user,
            "email": None,
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "orgs": [{"type": "org", "name": o, "fullname": o, "roleInOrg": "write"} for o in orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": token.name, "role": token.role, "createdAt": _now()}},
        }, {}, None

    def _route_create_repo(self, method, params, body):
        data = self._json(body)
        name, org = data.get("name"), data.get("organization")
        repo_type = data.get("type") or "model"
        if repo_type not in _REPO_TYPES.values():
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        token = self._token()
        namespace = org or (token.user if token else None)
        if not isinstance(name, str) or not _NAME_RE.match(name) or "--" in name or ".." in name:
            raise HubError(400, f"Invalid repo name {name!r}: use letters, digits, '-', '_', '.'")
        if namespace is None:
            raise HubError(401, "You must be authenticated to create a repo")
        token = self._require_write(namespace)
        repo_id = f"{namespace}/{name}"
        hub = self.hub
        with hub._lock:
            existing = hub.repos.get((repo_type, repo_id))
            if existing is not None:
                raise HubError(409, f"You already created this {repo_type} repo", extra={"url": self._repo_url(existing)})
            private = data.get("private")
            if private is None:
                private = data.get("visibility") == "private"
            repo = Repo(repo_id=repo_id, repo_type=repo_type, private=bool(private), created_at=_now())
            tree = {".gitattributes": hub._regular_entry(DEFAULT_GITATTRIBUTES.encode())}
            commit = hub._make_commit(repo, None, tree, "initial commit", "", token.user)
            repo.branches["main"] = commit.sha
            hub.repos[(repo_type, repo_id)] = repo
        return 200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id}, {}, None

    def _route_delete_repo(self, method, params, body):
        data = self._json(body)
        token = self._token()
        namespace = data.get("organization") or (token.user if token else None)
        repo_type = data.get("type") or "model"
        repo_id = f"{namespace}/{data.get('name')}"
        if (repo_type, repo_id) not in self.hub.repos:
            raise HubError(404, "Repository not found", "RepoNotFound")
        self._require_write(namespace)
        with self.hub._lock:
            del self.hub.repos[(repo_type, repo_id)]
        return 200, {}, {}, None

    def _route_validate_yaml(self, method, params, body):
        content = self._json(body).get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if not match:
            return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}, {}, None
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"YAML parse error: {exc}"}], "warnings": []}, {}, None
        errors = []
        if not isinstance(meta, dict):
            errors.append({"message": "metadata must be a mapping"})
        else:
            for key in ("license", "library_name", "pipeline_tag"):
                if key in meta and not isinstance(meta[key], str):
                    errors.append({"message": f'"{key}" must be a string'})
            for key in ("tags", "datasets", "language"):
                if key in meta and not isinstance(meta[key], (str, list)):
                    errors.append({"message": f'"{key}" must be a string or a list of strings'})
        return (400 if errors else 200), {"errors": errors, "warnings": []}, {}, None

    def _route_repo_info(self, method, params, body):
        repo, _ = self._get_repo(params)
        sha = self._resolve(repo, params["rev"]) if "rev" in params else repo.branches["main"]
        commit = repo.commits[sha]
        card = self._card_data(commit)
        blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, e in sorted(commit.tree.items()):
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=e.size, blobId=e.oid)
                if e.lfs:
                    sib["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
            siblings.append(sib)
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.namespace,
            "sha": sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []) if isinstance(card.get("tags"), list) else [],
            "siblings": siblings,
        }
        for key in ("library_name", "pipeline_tag"):
            if isinstance(card.get(key), str):
                info[key] = card[key]
        if card:
            info["cardData"] = card
        return 200, info, {}, None

    def _card_data(self, commit: Commit) -> dict:
        entry = commit.tree.get("README.md")
        if entry is None:
            return {}
        text = self.hub._read_object(entry.sha256).decode("utf-8", "replace")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
        if not match:
            return {}
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return {}
        return meta if isinstance(meta, dict) else {}

    # -------------------------------------------------------------- uploads
    def _route_preupload(self, method, params, body):
        repo, _ = self._get_repo(params, write=True)
        if self.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by this test server")
        sha = self._resolve(repo, params["rev"])
        tree = repo.commits[sha].tree
        data = self._json(body)
        patterns = self.hub._lfs_patterns(tree)
        files = []
        for item in data.get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = size >= self.hub.lfs_threshold or self.hub._is_lfs_path(patterns, path) or b"\0" in sample
            existing = tree.get(path)
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else existing.oid
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return 200, {"files": files, "commitOid": sha}, {}, None

    def _route_lfs_batch(self, method, params, body):
        repo, _ = self._get_repo(params, write=True)
        data = self._json(body)
        if data.get("operation") != "upload":
            raise HubError(400, "only the upload operation is supported")
        if "basic" not in data.get("transfers", ["basic"]):
            raise HubError(400, "only the basic transfer is supported")
        objects = []
        for obj in data.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                out["error"] = {"code": 422, "message": "invalid oid"}
            elif not self.hub._has_object(oid):
                sig = self.hub._sign(oid)
                out["actions"] = {
                    "upload": {"href": f"{self._base()}/_lfs/{oid}?size={size}&sig={sig}", "header": {}},
                    "verify": {"href": f"{self._base()}/_lfs/{oid}/verify", "header": {}},
                }
            objects.append(out)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, {"Content-Type": "application/vnd.git-lfs+json"}, None

    def _route_lfs_upload(self, method, params, body):
        oid = params["oid"]
        sig = self.query.get("sig", [""])[0]
        if not hmac.compare_digest(sig, self.hub._sign(oid)):
            raise HubError(403, "invalid upload signature")
        expected_size = int(self.query.get("size", ["-1"])[0])
        if hashlib.sha256(body).hexdigest() != oid or (expected_size >= 0 and len(body) != expected_size):
            raise HubError(400, f"uploaded content does not match oid {oid} / size {expected_size}")
        self.hub._write_object(body)
        return 200, {}, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}, None

    def _route_lfs_verify(self, method, params, body):
        data = self._json(body)
        oid = params["oid"]
        if data.get("oid") != oid or not self.hub._has_object(oid):
            raise HubError(404, f"LFS object {oid} not found")
        if self.hub._object_path(oid).stat().st_size != int(data.get("size", -1)):
            raise HubError(422, f"LFS object {oid} has a different size")
        return 200, {"oid": oid, "size": data.get("size")}, {}, None

    def _route_commit(self, method, params, body):
        repo, token = self._get_repo(params, write=True)
        if self.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by this test server")
        branch = params["rev"]
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        hub = self.hub
        # Validate and stage every operation before touching the branch: the commit is all or nothing.
        staged: list[tuple[str, str, Entry | None]] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"invalid path {path!r}")
            if key == "file":
                content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                if len(content) > hub.lfs_threshold or b"\0" in content[:8000]:
                    raise HubError(400, f"{path}: binary or large files must be uploaded with LFS")
                staged.append(("add", path, hub._regular_entry(content)))
            elif key == "lfsFile":
                oid = value.get("oid", "")
                if not hub._has_object(oid):
                    raise HubError(422, f"{path}: LFS object {oid} was never uploaded")
                size = hub._object_path(oid).stat().st_size
                if value.get("size") is not None and int(value["size"]) != size:
                    raise HubError(422, f"{path}: LFS object size mismatch")
                staged.append(("add", path, hub._lfs_entry(oid, size)))
            elif key == "deletedFile":
                staged.append(("del", path, None))
            elif key == "deletedFolder":
                staged.append(("delfolder", path.rstrip("/"), None))
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        with hub._lock:
            head = repo.branches[branch]
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(repo.commits[head].tree)
            for op, path, entry in staged:
                if op == "add":
                    tree[path] = entry
                elif op == "del":
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                else:
                    doomed = [p for p in tree if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
            commit = hub._make_commit(repo, head, tree, header.get("summary", ""), header.get("description", ""), token.user)
            repo.branches[branch] = commit.sha
        return 200, {
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
            "hookOutput": "",
            "pullRequestUrl": None,
        }, {}, None

    # -------------------------------------------------------------- listings & refs
    def _entry_json(self, path: str, e: Entry) -> dict:
        out: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": path}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
        return out

    def _dir_json(self, path: str) -> dict:
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}

    def _route_tree(self, method, params, body):
        repo, _ = self._get_repo(params)
        tree = repo.commits[self._resolve(repo, params["rev"])].tree
        base = params.get("path", "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = base + "/" if base else ""
        if base and base in tree:
            raise HubError(400, f"{base} is a file, not a folder")
        items, dirs = [], set()
        for path, e in sorted(tree.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                if recursive or i == 1:
                    dirs.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                items.append(self._entry_json(path, e))
        if base and not items and not dirs:
            raise HubError(404, f"{base} does not exist at this revision", "EntryNotFound")
        return 200, [self._dir_json(d) for d in sorted(dirs)] + items, {}, None

    def _route_paths_info(self, method, params, body):
        repo, _ = self._get_repo(params)
        tree = repo.commits[self._resolve(repo, params["rev"])].tree
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = self._json(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in tree:
                out.append(self._entry_json(path, tree[path]))
            elif any(p.startswith(path + "/") for p in tree):
                out.append(self._dir_json(path))
        return 200, out, {}, None

    def _route_commits(self, method, params, body):
        repo, _ = self._get_repo(params)
        sha = self._resolve(repo, params["rev"])
        out = []
        while sha is not None:
            c = repo.commits[sha]
            out.append({"id": c.sha, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date})
            sha = c.parent
        return 200, out, {}, None

    def _route_refs(self, method, params, body):
        repo, _ = self._get_repo(params)
        return 200, {
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in sorted(repo.branches.items())],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in sorted(repo.tags.items())],
            "converts": [],
        }, {}, None

    def _route_tag(self, method, params, body):
        repo, _ = self._get_repo(params, write=True)
        with self.hub._lock:
            if method == "DELETE":
                if params["rev"] not in repo.tags:
                    raise HubError(404, f"Tag {params['rev']} not found", "RevisionNotFound")
                del repo.tags[params["rev"]]
                return 200, {}, {}, None
            sha = self._resolve(repo, params["rev"])
            tag = self._json(body).get("tag")
            if not isinstance(tag, str) or not tag or not re.fullmatch(r"[A-Za-z0-9._/-]+", tag):
                raise HubError(400, f"invalid tag name {tag!r}")
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = sha
        return 200, {}, {}, None

    def _route_branch(self, method, params, body):
        repo, _ = self._get_repo(params, write=True)
        name = params["rev"]
        with self.hub._lock:
            if method == "DELETE":
                if name not in repo.branches or name == "main":
                    raise HubError(404 if name not in repo.branches else 403, f"cannot delete branch {name}")
                del repo.branches[name]
                return 200, {}, {}, None
            if name in repo.branches:
                raise HubError(409, f"Branch {name} already exists")
            start = self._json(body).get("startingPoint") or "main"
            repo.branches[name] = self._resolve(repo, start)
        return 200, {}, {}, None

    # -------------------------------------------------------------- downloads
    def _route_resolve(self, method, params, body):
        repo, _ = self._get_repo(params)
        sha = self._resolve(repo, params["rev"])
        path = params["path"]
        entry = repo.commits[sha].tree.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if entry.lfs:
            headers.update({"ETag": f'"{entry.sha256}"', "X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        else:
            headers["ETag"] = f'"{entry.oid}"'
        if method == "HEAD":
            headers["Content-Length"] = str(entry.size)
            return 200, None, headers, b""
        content = self.hub._read_object(entry.sha256)
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if not match:
                raise HubError(416, f"unsupported range {range_header}")
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(content) - 1
            if start >= len(content):
                raise HubError(416, "range not satisfiable", headers={"Content-Range": f"bytes */{len(content)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            return 206, None, headers, content[start:end + 1]
        return 200, None, headers, content

