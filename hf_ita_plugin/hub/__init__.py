"""Hub publishing: model cards, one-commit pushes, safe pulls.

Public API::

    from hf_ita_plugin.hub import push, load_adapter, write_card, ModelCardCallback

    push("outputs/run1", "mario/smollm2-ita")                     # one commit + tag v1
    model, tokenizer = load_adapter("mario/smollm2-ita", revision="v1", load_in_4bit=True)
    write_card("outputs/run1")                                    # outputs/run1/README.md
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_getattr

_LAZY = {
    "push": ".push",
    "PublishResult": ".push",
    "load_adapter": ".pull",
    "fetch_adapter": ".pull",
    "generate_reply": ".pull",
    "write_card": ".card",
    "render_card": ".card",
    "facts_from_output_dir": ".facts",
    "LicenseConflictWarning": ".licenses",
    "ModelCardCallback": ".callback",
    "stage_publish": ".staging",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .callback import ModelCardCallback
    from .card import render_card, write_card
    from .facts import facts_from_output_dir
    from .licenses import LicenseConflictWarning
    from .pull import fetch_adapter, generate_reply, load_adapter
    from .push import PublishResult, push
    from .staging import stage_publish


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
