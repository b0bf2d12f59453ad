"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest

# Before torch loads: OpenMP busy-waiting makes torch crawl when llama.cpp threads, a local server
# or another process share the 2 cores (see hf_ita_plugin/cli.py).
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
