"""Shared pytest fixtures."""

from __future__ import annotations

import os
import re

import pytest

# Before torch loads: OpenMP busy-waiting makes torch crawl when llama.cpp threads, a local server
# or another process share the 2 cores (see hf_ita_plugin/utils/env.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    """A started local Hub (:class:`hub_server.HubServer`) that huggingface_hub talks to.

    ``HF_ENDPOINT`` points at it and Xet is off (env and ``huggingface_hub.constants``); no token of
    this machine leaks in (``HF_TOKEN`` unset, the token file moved to ``tmp_path``). Register
    tokens with ``hub_server.add_token(user, role)``.
    """
    from huggingface_hub import constants

    from hub_server import HubServer

    with HubServer(tmp_path / "hub-storage") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        yield server


# ---------------------------------------------------------------------------------------- CI policy
# Tests skip when an optional tool is missing (llama.cpp, lm-eval, Chromium, Playwright), which is
# right on a laptop and wrong in CI: there a missing tool means the install step broke, and a
# green run would hide it. Under CI=true such a skip fails instead. Skips for other reasons (a
# CPU without an instruction set, say) stay skips.
_MISSING_TOOL = re.compile(r"not installed|could not import|no module named", re.IGNORECASE)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_missing_tool(report) -> None:
    if _in_ci() and report.skipped and _MISSING_TOOL.search(str(report.longrepr)):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a tool the suite needs is missing (would have skipped): {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_tool(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_tool(outcome.get_result())
