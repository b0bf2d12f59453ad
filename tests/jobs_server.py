"""The local Hub test server, extended with the HF Jobs API (as huggingface_hub 2.4 speaks it).

:class:`JobsHubServer` is :class:`hub_server.HubServer` plus these routes:

- ``GET  /api/jobs/hardware``                     hardware flavors with prices
- ``POST /api/jobs/{namespace}``                  create a job (the spec is kept for assertions)
- ``GET  /api/jobs/{namespace}``                  list jobs, filtered by ``label=k=v`` / ``stage=S``
- ``GET  /api/jobs/{namespace}/{id}``             inspect
- ``GET  /api/jobs/{namespace}/{id}/logs``        Server-Sent Events, one ``data: {timestamp, data}`` per line
- ``POST /api/jobs/{namespace}/{id}/cancel``      cancel (asynchronous)

Each job lives through a simulated lifecycle on its own thread, driven by a :class:`JobScenario`:
SCHEDULING for ``scheduling_s``, then RUNNING while its log lines appear one every
``line_interval_s``, then ``final_stage`` (COMPLETED or ERROR).

Where clients depend on it, the server behaves like the real service as huggingface_hub 2.4's
``fetch_job_logs`` / ``_stream_sse_events`` expect it:

- cancel answers at once but is asynchronous: the job stops logging, its stage stays what it was
  (RUNNING) for ``cancel_delay_s``, then becomes CANCELED;
- the log stream replays every line from the start on each connection (the client skips those it
  has seen by index), sends ``: keep-alive`` comments every :attr:`JobsHubServer.keepalive_s`
  (30 s like the Hub), ends once the job is finished and, with ``first_stream_max_s``, ends its first
  connection early while the job still runs (the client checks the stage, waits 2 s and reconnects;
  lines logged after that early end are lost if the job finishes within that wait); ``tail=N`` replays
  the last N lines only. Without ``follow`` the client reads until the answer's ``Date`` + 1 s or a
  5 s silence, so the server keeps a running job's stream open like the Hub does;
- job creation checks what huggingface_hub documents: the ``name`` label matches
  ``[a-zA-Z0-9_-]*`` (``_sanitize_job_name``: names are also stored as tags), ``timeoutSeconds`` is
  a positive integer (``run_job``: seconds or a number with s/m/h/d; no maximum is documented, so
  none is enforced). Label keys/values other than ``name``: huggingface_hub documents no limit; the
  server assumes ``[A-Za-z0-9._-]``, at most 63 characters (Kubernetes label rules), an assumption;
- refusals with the status codes the Hub uses: 401 no/invalid token, 403 no write access to the
  namespace (read token, other user's namespace), 403 naming the flavor for hardware an account may
  not use (:meth:`JobsHubServer.restrict_flavors`), 402 payment required for paid hardware
  (:meth:`JobsHubServer.require_payment`), 429 quota of jobs at once (:meth:`JobsHubServer.set_job_quota`),
  each with the reason in ``X-Error-Message`` (huggingface_hub's ``server_message``).
``on_complete(job)`` runs before COMPLETED is reported: tests use it to do what the real job's
``hf-ita push`` does (with the job's own ``HF_TOKEN`` secret). Every Jobs request is recorded with the
token that made it (:attr:`JobsHubServer.job_requests`).

Fixtures: ``jobs_hub`` (a started server) and ``hub_endpoint`` (points huggingface_hub at it and
registers a Space owner's token as the machine's login).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit, parse_qs

import pytest

from hub_server import HubError, HubServer, Token, _Handler

GRADIO_MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"
"""The access token Gradio's local OAuth mock puts in the session (gradio/oauth.py)."""

HARDWARE = [
    # name, pretty name, cpu, ram, accelerator (model, vram, quantity) or None, micro-USD per minute
    ("cpu-basic", "CPU Basic", "2 vCPU", "16 GB", None, 167),
    ("cpu-upgrade", "CPU Upgrade", "8 vCPU", "32 GB", None, 500),
    ("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", ("T4", "16 GB", "1"), 6667),
    ("l4x1", "1x Nvidia L4", "8 vCPU", "30 GB", ("L4", "24 GB", "1"), 13333),
    ("a10g-small", "Nvidia A10G - small", "4 vCPU", "15 GB", ("A10G", "24 GB", "1"), 16667),
    ("a10g-large", "Nvidia A10G - large", "12 vCPU", "46 GB", ("A10G", "24 GB", "1"), 25000),
    ("a100-large", "Nvidia A100 - large", "12 vCPU", "142 GB", ("A100", "80 GB", "1"), 41667),
    ("h200", "Nvidia H200", "23 vCPU", "256 GB", ("H200", "141 GB", "1"), 83333),
    ("a100x4", "4x Nvidia A100", "48 vCPU", "568 GB", ("A100", "320 GB", "4"), 166667),
]

_LABEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class JobScenario:
    """How a simulated job behaves."""

    scheduling_s: float = 0.3
    log_lines: list[str] = field(default_factory=lambda: [
        "Installing hf-ita-plugin...", "hf-ita: loading the base model", "step 1/3 loss 2.41",
        "step 2/3 loss 1.97", "step 3/3 loss 1.62", "hf-ita: pushing the adapter",
    ])
    line_interval_s: float = 0.1
    final_stage: str = "COMPLETED"
    message: str | None = None
    on_complete: Callable[["SimJob"], None] | None = None
    cancel_delay_s: float = 0.5
    """After a cancel request the stage stays as it was this long, then becomes CANCELED."""
    first_stream_max_s: float | None = None
    """The first log stream connection ends after this long even if the job still runs (the Hub's
    stream may end before the job does); later ones last until the job's end."""
    execute_env: dict[str, str] | None = None
    """When set, the job really runs: its command list is executed here as a subprocess, with this
    environment plus the job's own ``environment`` and ``secrets`` (the image stand-in: PATH to a
    fresh virtualenv...). Its output becomes the logs; its exit code the final stage."""
    execute_cwd: str | None = None


@dataclass
class SimJob:
    id: str
    namespace: str
    owner_id: str
    spec: dict[str, Any]
    scenario: JobScenario
    created_at: str
    stage: str = "SCHEDULING"
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    logs: list[tuple[str, str]] = field(default_factory=list)
    cancel_requested: bool = False
    log_connections: int = 0

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.spec.get("labels") or {})

    @property
    def secret_values(self) -> dict[str, str]:
        """The secrets as sent (test-side only: the API answers with their names)."""
        return dict(self.spec.get("secrets") or {})

    def info(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "dockerImage": spec.get("dockerImage"),
            "spaceId": spec.get("spaceId"),
            "command": spec.get("command"),
            "arguments": spec.get("arguments", []),
            "environment": spec.get("environment", {}),
            "secrets": {name: None for name in (spec.get("secrets") or {})},
            "flavor": spec.get("flavor"),
            "labels": spec.get("labels"),
            "status": {"stage": self.stage, "message": self.message},
            "owner": {"id": self.owner_id, "name": self.namespace, "type": "user"},
            "initiator": {"type": "user", "id": self.owner_id, "name": self.namespace},
        }


@dataclass
class JobRequest:
    method: str
    route: str
    path: str
    token: str | None
    user: str | None
    status: int = 0
    job_stage: str | None = None
    """The job's stage when the request arrived (routes naming a job)."""


class JobsHubServer(HubServer):
    """The Hub test server with the HF Jobs routes and simulated jobs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs: dict[str, SimJob] = {}
        self.job_requests: list[JobRequest] = []
        self.default_scenario = JobScenario()
        self._scenarios: list[JobScenario] = []
        self._changed = threading.Condition(self._lock)
        self.keepalive_s = 30.0
        self.allowed_flavors: dict[str, set[str]] = {}
        self.payment_required: set[str] = set()
        self.job_quota: dict[str, int] = {}

    # ------------------------------------------------------------------ test controls
    def handler_base(self) -> type:
        return _JobsHandler

    def stop(self) -> None:
        with self._changed:
            for job in self.jobs.values():
                job.cancel_requested = True
            self._changed.notify_all()
        super().stop()

    def add_named_token(self, token: str, user: str, role: str = "write") -> str:
        """Register a token with a fixed value (e.g. Gradio's mocked OAuth token) for ``user``."""
        with self._lock:
            self.users.setdefault(user, [])
            self.tokens[token] = Token(user=user, role=role, name=f"{user}-{role}")
        return token

    def restrict_flavors(self, user: str, flavors: list[str] | tuple[str, ...]) -> None:
        """``user`` may only run jobs on ``flavors``: others get 403 naming the flavor."""
        with self._lock:
            self.allowed_flavors[user] = set(flavors)

    def require_payment(self, user: str) -> None:
        """``user`` has no payment method: any flavor but ``cpu-basic`` gets 402 Payment Required."""
        with self._lock:
            self.payment_required.add(user)

    def set_job_quota(self, user: str, max_active: int) -> None:
        """``user`` may have at most ``max_active`` unfinished jobs: one more gets 429."""
        with self._lock:
            self.job_quota[user] = max_active

    def queue_scenario(self, scenario: JobScenario) -> None:
        """The next created job follows ``scenario`` (then back to :attr:`default_scenario`)."""
        with self._lock:
            self._scenarios.append(scenario)

    def wait_for_stage(self, job_id: str, stages: tuple[str, ...], timeout: float = 30.0) -> SimJob:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.jobs[job_id].stage not in stages:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} still {self.jobs[job_id].stage}, wanted {stages}")
                self._changed.wait(left)
            return self.jobs[job_id]

    # ------------------------------------------------------------------ lifecycle
    def _create_job(self, namespace: str, owner: str, spec: dict[str, Any]) -> SimJob:
        with self._lock:
            scenario = self._scenarios.pop(0) if self._scenarios else self.default_scenario
            job_id = secrets.token_hex(12)
            job = SimJob(id=job_id, namespace=namespace, owner_id=hashlib.sha1(owner.encode()).hexdigest()[:24],
                         spec=spec, scenario=scenario, created_at=_now())
            self.jobs[job_id] = job
        threading.Thread(target=self._run_job, args=(job,), name=f"job-{job_id}", daemon=True).start()
        return job

    def _sleep_unless_canceled(self, job: SimJob, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        with self._changed:
            while not job.cancel_requested:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._changed.wait(left)
            return False

    def _set(self, job: SimJob, **changes) -> None:
        with self._changed:
            for key, value in changes.items():
                setattr(job, key, value)
            self._changed.notify_all()

    def _log(self, job: SimJob, line: str) -> None:
        with self._changed:
            job.logs.append((_now(), line))
            self._changed.notify_all()

    def _run_job(self, job: SimJob) -> None:
        sc = job.scenario
        if not self._sleep_unless_canceled(job, sc.scheduling_s):
            return self._finish_canceled(job)
        self._set(job, stage="RUNNING", started_at=_now())
        self._log(job, f"===== Job started at {job.started_at} =====")
        if sc.execute_env is not None:
            return self._execute(job)
        for line in sc.log_lines:
            if not self._sleep_unless_canceled(job, sc.line_interval_s):
                return self._finish_canceled(job)
            self._log(job, line)
        if sc.final_stage == "COMPLETED" and sc.on_complete is not None:
            try:
                sc.on_complete(job)
            except Exception as exc:  # the simulated job fails like a real one would
                self._log(job, f"Error: {type(exc).__name__}: {exc}")
                return self._set(job, stage="ERROR", message=f"on_complete failed: {exc}", finished_at=_now())
        with self._changed:
            if job.cancel_requested:
                return self._finish_canceled(job)
            job.stage, job.message, job.finished_at = sc.final_stage, sc.message, _now()
            self._changed.notify_all()

    def _execute(self, job: SimJob) -> None:
        """Run the job's command list for real (see :attr:`JobScenario.execute_env`)."""
        spec, sc = job.spec, job.scenario
        env = {**sc.execute_env, **(spec.get("environment") or {}), **(spec.get("secrets") or {})}
        proc = subprocess.Popen(list(spec["command"]) + list(spec.get("arguments") or []), env=env, cwd=sc.execute_cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        threading.Thread(target=self._kill_on_cancel, args=(job, proc), daemon=True).start()
        for line in proc.stdout:
            self._log(job, line.rstrip("\n"))
        code = proc.wait()
        if job.cancel_requested:
            return self._finish_canceled(job)
        self._set(job, stage="COMPLETED" if code == 0 else "ERROR",
                  message=None if code == 0 else f"exit code {code}", finished_at=_now())

    def _kill_on_cancel(self, job: SimJob, proc: subprocess.Popen) -> None:
        with self._changed:
            while proc.poll() is None and not job.cancel_requested:
                self._changed.wait(0.5)
        if proc.poll() is None:
            proc.kill()

    def _finish_canceled(self, job: SimJob) -> None:
        """The Hub's cancel is asynchronous: the stage changes only ``cancel_delay_s`` after the request."""
        time.sleep(job.scenario.cancel_delay_s)
        with self._changed:
            if job.stage not in ("COMPLETED", "ERROR", "CANCELED"):
                job.stage, job.finished_at = "CANCELED", _now()
            self._changed.notify_all()


# ---------------------------------------------------------------------------------- HTTP layer
_JOB_ROUTES: list[tuple[str, str, re.Pattern]] = [
    (m, name, re.compile(rx))
    for m, name, rx in [
        ("GET", "jobs_hardware", r"^/api/jobs/hardware$"),
        ("POST", "jobs_create", r"^/api/jobs/(?P<ns>[^/]+)$"),
        ("GET", "jobs_list", r"^/api/jobs/(?P<ns>[^/]+)$"),
        ("GET", "jobs_logs", r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[^/]+)/logs$"),
        ("POST", "jobs_cancel", r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[^/]+)/cancel$"),
        ("GET", "jobs_inspect", r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[^/]+)$"),
    ]
]


class _JobsHandler(_Handler):
    hub: JobsHubServer

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        for m, name, rx in _JOB_ROUTES:
            match = rx.match(split.path)
            if m == method and match:
                self.query = parse_qs(split.query)
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return self._dispatch_job(name, params, split.path)
        return super()._dispatch(method)

    def _dispatch_job(self, route: str, params: dict[str, str], path: str) -> None:
        body = self._read_body()
        auth = self.headers.get("Authorization", "")
        raw_token = auth[7:].strip() if auth.startswith("Bearer ") else None
        job = self.hub.jobs.get(params.get("id", ""))
        record = JobRequest(method=self.command, route=route, path=path, token=raw_token, user=None,
                            job_stage=job.stage if job is not None else None)
        with self.hub._lock:
            self.hub.job_requests.append(record)
        try:
            token = self._token()
            record.user = token.user if token else None
            if route == "jobs_logs":
                return self._stream_logs(params, record)
            status, payload = getattr(self, f"_route_{route}")(params, body, token)
        except HubError as err:
            status, payload = err.status, {"error": err.message}
            record.status = status
            return self._send_json(status, payload, {"X-Error-Message": err.message})
        record.status = status
        self._send_json(status, payload)

    def _route_whoami(self, method, params, body):
        """The base answer plus ``avatarUrl`` (the real Hub sends it; Gradio's OAuth mock reads it)."""
        status, payload, headers, raw = super()._route_whoami(method, params, body)
        payload.setdefault("avatarUrl", f"/avatars/{payload['name']}.svg")
        return status, payload, headers, raw

    # -------------------------------------------------------------- helpers
    def _job(self, params: dict[str, str], token: Token | None) -> SimJob:
        self._require_read(params["ns"], token)
        job = self.hub.jobs.get(params["id"])
        if job is None or job.namespace != params["ns"]:
            raise HubError(404, f"Job {params['id']} not found")
        return job

    def _require_read(self, namespace: str, token: Token | None) -> None:
        if token is None:
            raise HubError(401, "You must be authenticated to access jobs")
        if namespace not in self._namespaces(token):
            raise HubError(403, f"You don't have access to the jobs of '{namespace}'")

    # -------------------------------------------------------------- routes
    def _route_jobs_hardware(self, params, body, token):
        out = []
        for name, pretty, cpu, ram, acc, micro in HARDWARE:
            out.append({
                "name": name, "prettyName": pretty, "cpu": cpu, "ram": ram, "ephemeralStorage": "50 GB",
                "accelerator": None if acc is None else {
                    "type": "gpu", "model": acc[0], "vram": acc[1], "quantity": acc[2], "manufacturer": "Nvidia"},
                "unitCostMicroUSD": micro, "unitCostUSD": micro / 1e6, "unitLabel": "minute",
            })
        return 200, out

    def _route_jobs_create(self, params, body, token):
        namespace = params["ns"]
        token = self._require_write(namespace)
        spec = self._json(body)
        flavors = {h[0] for h in HARDWARE}
        flavor = spec.get("flavor")
        if flavor not in flavors:
            raise HubError(400, f"Invalid flavor {flavor!r}")
        hub = self.hub
        allowed = hub.allowed_flavors.get(token.user)
        if allowed is not None and flavor not in allowed:
            raise HubError(403, f"Your account is not allowed to use the hardware flavor '{flavor}'")
        if token.user in hub.payment_required and flavor != "cpu-basic":
            raise HubError(402, f"Payment required: add a payment method to run jobs on '{flavor}'")
        quota = hub.job_quota.get(token.user)
        if quota is not None:
            with hub._lock:
                active = sum(1 for j in hub.jobs.values() if j.namespace == namespace
                             and j.stage in ("SCHEDULING", "RUNNING"))
            if active >= quota:
                raise HubError(429, f"Quota exceeded: {active} jobs already running (limit {quota})")
        timeout = spec.get("timeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
            raise HubError(400, f"timeoutSeconds must be a positive integer, got {timeout!r}")
        if not (spec.get("dockerImage") or spec.get("spaceId")):
            raise HubError(400, "dockerImage or spaceId is required")
        command = spec.get("command")
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise HubError(400, "command must be a non-empty list of strings")
        for key in ("environment", "secrets", "labels"):
            value = spec.get(key) or {}
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise HubError(400, f"{key} must map strings to strings")
        name = (spec.get("labels") or {}).get("name")
        if name is not None and not re.fullmatch(r"[A-Za-z0-9_-]*", name):
            raise HubError(400, f"invalid job name {name!r}: names are stored as tags (letters, digits, '-', '_')")
        for key, value in (spec.get("labels") or {}).items():
            if not _LABEL_RE.match(key) or not re.fullmatch(r"[A-Za-z0-9._-]{0,63}", value):
                raise HubError(400, f"invalid label {key}={value!r}: use letters, digits, '.', '_', '-'")
        job = self.hub._create_job(namespace, token.user, spec)
        return 200, job.info()

    def _route_jobs_list(self, params, body, token):
        namespace = params["ns"]
        self._require_read(namespace, token)
        wanted = [item.partition("=")[::2] for item in self.query.get("label", [])]
        stages = set(self.query.get("stage", []))
        with self.hub._lock:
            jobs = [j for j in self.hub.jobs.values() if j.namespace == namespace]
            out = [j.info() for j in jobs
                   if all(j.labels.get(k) == v for k, v in wanted) and (not stages or j.stage in stages)]
        return 200, out

    def _route_jobs_inspect(self, params, body, token):
        with self.hub._lock:
            return 200, self._job(params, token).info()

    def _route_jobs_cancel(self, params, body, token):
        job = self._job(params, token)
        self._require_write(params["ns"])
        hub = self.hub
        with hub._changed:
            if job.stage in ("SCHEDULING", "RUNNING"):
                job.cancel_requested = True  # the job's thread reports CANCELED after cancel_delay_s
                hub._changed.notify_all()
        return 200, {}

    def _stream_logs(self, params, record: JobRequest) -> None:
        """SSE like the Hub's: replay the lines so far (or the last ``tail``), follow new ones with
        ``: keep-alive`` comments, end when the job is finished (or after ``stream_max_s``)."""
        job = self._job(params, self._token())
        record.status = 200
        self.send_response(200)  # adds the Date header the client's no-follow mode reads
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        hub = self.hub
        tail = self.query.get("tail")
        with hub._lock:
            sent = max(0, len(job.logs) - int(tail[0])) if tail else 0
            job.log_connections += 1
            limit = job.scenario.first_stream_max_s if job.log_connections == 1 else None
        ends_at = None if limit is None else time.monotonic() + limit
        keepalive_at = time.monotonic() + hub.keepalive_s
        finished = ("COMPLETED", "ERROR", "CANCELED", "DELETED")
        try:
            while True:
                with hub._changed:
                    while sent >= len(job.logs) and job.stage not in finished:
                        now = time.monotonic()
                        if hub._httpd is None or (ends_at is not None and now >= ends_at) or now >= keepalive_at:
                            break
                        hub._changed.wait(min(0.5, keepalive_at - now))
                    pending, done = job.logs[sent:], job.stage in finished
                if hub._httpd is None:
                    return
                for ts, line in pending:
                    event = json.dumps({"timestamp": ts, "data": line})
                    self.wfile.write(f"data: {event}\n\n".encode())
                sent += len(pending)
                if time.monotonic() >= keepalive_at:
                    self.wfile.write(b": keep-alive\n\n")
                    keepalive_at = time.monotonic() + hub.keepalive_s
                self.wfile.flush()
                if (done and sent >= len(job.logs)) or (ends_at is not None and time.monotonic() >= ends_at):
                    return
        except (BrokenPipeError, ConnectionResetError):
            return


# ---------------------------------------------------------------------------------- fixtures
@dataclass
class HubEndpoint:
    server: JobsHubServer
    url: str
    owner_token: str
    """The machine's own login (the 'Space owner'): must never be used for a user's jobs."""


def point_hub_client_at(mp: pytest.MonkeyPatch, server: JobsHubServer) -> HubEndpoint:
    """Point huggingface_hub (env, constants, the module-level client) at ``server``.

    The machine is logged in as ``space-owner`` (``HF_TOKEN``): Gradio's OAuth mock needs a login,
    and the tests check that this token is never the one a user's jobs run with.
    """
    from huggingface_hub import constants, hf_api

    owner_token = server.add_token("space-owner", role="write")
    mp.setenv("HF_ENDPOINT", server.url)
    mp.setenv("HF_TOKEN", owner_token)
    mp.setenv("HF_HUB_DISABLE_XET", "1")
    mp.setattr(constants, "ENDPOINT", server.url)
    mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
    mp.setattr(hf_api.api, "endpoint", server.url)
    # jobs install the running code's wheel: build it once per content for the whole test session
    mp.setenv("HF_ITA_WHEEL_CACHE", str(Path(tempfile.gettempdir()) / f"hf-ita-test-wheels-{os.getuid()}"))
    return HubEndpoint(server=server, url=server.url, owner_token=owner_token)


def publish_like_the_job(server: JobsHubServer) -> Callable[[SimJob], None]:
    """An ``on_complete`` that does what ``hf-ita push`` does, with the job's own HF_TOKEN secret."""

    def publish(job: SimJob) -> None:
        from huggingface_hub import HfApi

        repo = job.labels["hf-ita-repo"].replace("--", "/", 1)
        api = HfApi(endpoint=server.url, token=job.secret_values["HF_TOKEN"])
        api.create_repo(repo, private=True, exist_ok=True)
        api.upload_file(path_or_fileobj=b"---\nlanguage: it\n---\n# adapter\n", path_in_repo="README.md", repo_id=repo)

    return publish


@pytest.fixture
def jobs_hub():
    """A started :class:`JobsHubServer`."""
    with JobsHubServer() as server:
        yield server


@pytest.fixture
def hub_endpoint(jobs_hub, monkeypatch) -> HubEndpoint:
    """huggingface_hub pointed at ``jobs_hub``, the machine logged in as ``space-owner``."""
    return point_hub_client_at(monkeypatch, jobs_hub)
