"""Hub failures: which ones are worth retrying, and how to explain the others to a user.

Shared by push and pull. Exceptions from huggingface_hub (``HfHubHTTPError`` and subclasses) and
from its HTTP client (``httpx2`` transport errors, possibly wrapped in ``RuntimeError`` by the LFS
uploader) are classified by walking the ``__cause__`` chain.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import HubError

TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of the first HTTP error in the chain, if any."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """True for network errors and 408/429/5xx answers: the same request may succeed later."""
    import httpx2

    for item in _chain(exc):
        if isinstance(item, httpx2.TransportError):
            return True
    return status_of(exc) in TRANSIENT_STATUS


def explain(exc: BaseException, *, action: str, repo_id: str) -> HubError:
    """A :class:`HubError` with a one-line cause and a hint, for a non-transient Hub failure."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalTokenNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = status_of(exc)
    detail = _server_message(exc)
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, LocalTokenNotFoundError):
        return HubError(f"{action} {repo_id}: nessun token Hugging Face / no Hugging Face token found",
                        hint="run `hf auth login` or set HF_TOKEN (a token with write access to publish)")
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{action} {repo_id}: revisione inesistente / revision not found{detail}",
                        hint="check the tag or branch name (e.g. `v1`, `main`)")
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubError(f"{action} {repo_id}: file non trovato nel repository / file not found in the repo{detail}")
    if isinstance(exc, GatedRepoError):
        return HubError(f"{action} {repo_id}: repository ad accesso controllato / gated repo: access not granted{detail}",
                        hint="request access on the model page, then use a token of that account")
    if status == 401:
        return HubError(f"{action} {repo_id}: token non valido o scaduto / invalid or expired token{detail}",
                        hint="create a new token at https://huggingface.co/settings/tokens and run `hf auth login`")
    if status == 403:
        return HubError(f"{action} {repo_id}: permesso negato / permission denied{detail}",
                        hint="use a token with write access to this namespace (user or organization)")
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return HubError(f"{action} {repo_id}: repository inesistente o privato / repo not found or private{detail}",
                        hint="check the repo id; for a private repo use a token that can read it")
    if status == 412:
        return HubError(f"{action} {repo_id}: il repository è cambiato durante l'operazione / the repo changed while publishing",
                        hint="someone else pushed meanwhile: run the command again")
    if is_transient(exc):
        return HubError(f"{action} {repo_id}: errore di rete o del server / network or server error: {_first_line(exc)}",
                        hint="check your connection and try again")
    return HubError(f"{action} {repo_id}: {_first_line(exc)}")


def _server_message(exc: BaseException) -> str:
    for item in _chain(exc):
        response = getattr(item, "response", None)
        if response is not None:
            message = response.headers.get("X-Error-Message") if hasattr(response, "headers") else None
            if message:
                return f" ({message})"
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
