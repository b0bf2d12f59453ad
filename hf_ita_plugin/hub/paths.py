"""Names on the Hub versus paths on this machine: repo ids, endpoints, tokens, public model ids.

Shared by card, push and pull: a Hub id is validated before any request, a local path never
reaches a pushed file, and the endpoint is read at call time (``HF_ENDPOINT`` may change after
``huggingface_hub`` was imported).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import HubError

_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID_RE = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")


def validate_repo_id(repo_id: str | None, *, what: str = "--repo") -> str:
    """Return ``repo_id`` stripped if it is ``namespace/name`` as the Hub accepts it, else raise :class:`HubError`.

    The one check of a Hub repo id before any request (push, pull, jobs, chat); ``what`` names the
    field or option in the message.
    """
    hint = "use NAMESPACE/NAME with letters, digits, '-', '_' or '.', e.g. mario/smollm2-ita-qlora"
    text = repo_id.strip() if isinstance(repo_id, str) else ""
    if not text:
        raise HubError(f"{what}: manca l'id del repository / missing repo id", hint=hint)
    if not REPO_ID_RE.match(text) or "--" in text or ".." in text:
        raise HubError(f"{what}: id di repository non valido / malformed repo id {text!r}", hint=hint)
    return text


def is_repo_id(text: str | None) -> bool:
    """Whether ``text`` passes :func:`validate_repo_id` (no exception)."""
    try:
        validate_repo_id(text)
    except HubError:
        return False
    return True


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub endpoint: ``endpoint``, else ``$HF_ENDPOINT`` (read now), else huggingface_hub's default."""
    if endpoint:
        return endpoint.rstrip("/")
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT


def resolve_token(token: str | None = None) -> str | None:
    """``token`` or the one huggingface_hub finds (``HF_TOKEN``, then ``hf auth login``'s file)."""
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def is_local_path(value: str | os.PathLike | None) -> bool:
    """True for strings that name a place on this machine rather than a Hub id."""
    if value is None:
        return False
    text = str(value)
    if os.path.isabs(text) or text.startswith(("./", "../", "~", ".\\")) or re.match(r"^[A-Za-z]:[\\/]", text):
        return True
    if text.count("/") != 1:
        return Path(text).exists() or "\\" in text
    return Path(text).is_dir()


def public_model_id(*candidates: str | None) -> str | None:
    """The first candidate that is a Hub model id; an embedded model's local copy maps to its Hub id."""
    from ..models.embedded import EMBEDDED_MODELS

    for candidate in candidates:
        if not candidate:
            continue
        text = str(candidate)
        if is_local_path(text):
            try:
                local = Path(text).resolve()
                for embedded in EMBEDDED_MODELS.values():
                    if local == embedded.model_dir().resolve():
                        return embedded.hub_id
            except OSError:
                pass
            continue
        if is_repo_id(text):
            return text
    return None
