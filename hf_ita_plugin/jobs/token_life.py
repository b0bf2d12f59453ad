"""A job's timeout capped by the life left to the token it runs with.

The job gets the user's token as its ``HF_TOKEN`` secret and cannot refresh it: once it expires,
checkpoint pushes and the final push fail. So the timeout never exceeds the token's remaining life
minus :data:`TOKEN_MARGIN_S` (time for the SIGTERM checkpoint push at the timeout).

Where the expiry is known: the Space's sign-in (``gr.OAuthToken.expires_at``, 8 h by default) and a
``hf auth login`` browser/device login (huggingface_hub records ``expires_at`` in its stored-tokens
file). A classic access token (``HF_TOKEN``, or pasted into ``hf auth login``) carries no expiry the
client can read: then nothing is capped (:func:`local_token_expiry` returns ``None``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import ConfigError, bilingual
from .spec import DEFAULT_TIMEOUT, parse_timeout

TOKEN_MARGIN_S = 15 * 60
"""Token life kept after the timeout: the last checkpoint push happens after SIGTERM."""
MIN_RUN_S = 10 * 60
"""A run shorter than this is refused: sign in again instead."""


@dataclass(frozen=True)
class TimeoutChoice:
    """The timeout a job gets and, when it was capped, why (one bilingual line)."""

    timeout: str
    seconds: int
    capped: bool = False
    note: str | None = None


def cap_timeout(timeout: str | int | float | None, expires_at: float | None, *, now: float | None = None,
                margin_s: int = TOKEN_MARGIN_S) -> TimeoutChoice:
    """``timeout`` (``None``: the default), lowered to the token's life left minus ``margin_s``.

    ``expires_at`` is a Unix time (``None``: unknown, nothing capped). ConfigError when less than
    :data:`MIN_RUN_S` would be left.
    """
    seconds = parse_timeout(timeout)
    text = str(timeout).strip() if timeout not in (None, "") else DEFAULT_TIMEOUT
    if expires_at is None:
        return TimeoutChoice(text, seconds)
    now = time.time() if now is None else now
    left = int(expires_at - now - margin_s)
    until = datetime.fromtimestamp(expires_at, timezone.utc).strftime("%H:%M UTC")
    if left < MIN_RUN_S:
        raise ConfigError(bilingual(f"il token di accesso scade alle {until}: troppo presto per un run",
                                    f"the sign-in token expires at {until}: too soon for a run (a job cannot renew it)"),
                          hint="sign out and in again (or `hf auth login`) for a fresh token")
    if seconds <= left:
        return TimeoutChoice(text, seconds)
    minutes = left // 60
    shown = _duration(minutes * 60)
    note = bilingual(f"timeout ridotto a {shown}: il token di accesso scade alle {until} e il job non può rinnovarlo "
                     f"(margine {margin_s // 60} min per inviare l'ultimo checkpoint)",
                     f"timeout capped to {shown}: the sign-in token expires at {until} and the job cannot renew it "
                     f"({margin_s // 60} min kept to push the last checkpoint); resume later with a fresh token")
    return TimeoutChoice(f"{minutes}m", minutes * 60, capped=True, note=note)


def _duration(seconds: int) -> str:
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def local_token_expiry(token: str | None = None) -> int | None:
    """When the token this machine's huggingface_hub uses expires (Unix time), or ``None`` if unknown.

    Known only for a token from ``hf auth login``'s stored tokens that carries ``expires_at`` (an
    OAuth login); ``HF_TOKEN`` from the environment and classic access tokens give ``None``.
    """
    import configparser

    from huggingface_hub import constants, get_token

    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return None
    token = token or get_token()
    path = constants.HF_STORED_TOKENS_PATH
    if not token or not os.path.isfile(path):
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    for section in parser.sections():
        fields = parser[section]
        if fields.get("hf_token", "").strip() == token:
            try:
                return int(fields["expires_at"])
            except (KeyError, ValueError):
                return None
    return None
