"""hf-ita-plugin: fine-tune open LLMs for Italian and ship them where people use them.

Public API::

    from hf_ita_plugin import ItalianSFT, RunConfig
    result = ItalianSFT.from_yaml("examples/smollm2-135m-cpu.yaml").train()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .utils.lazy import lazy_getattr

__version__ = "0.1.0"

# Heavy modules (torch, transformers) load on first use, so `hf-ita --help` stays fast.
_LAZY = {
    "ItalianSFT": ".training.recipe",
    "TrainResult": ".training.recipe",
    "RunConfig": ".config",
    "RunDir": ".rundir",
    "RunMetrics": ".rundir",
    "HfItaError": ".errors",
    "apply_template": ".templates",
    "DEFAULT_SYSTEM_PROMPT": ".templates",
    "ensure_embedded_model": ".models.embedded",
    "load_conversations": ".data",
    "load_adapter": ".hub.pull",
    "push": ".hub.push",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig
    from .data import load_conversations
    from .models.embedded import ensure_embedded_model
    from .errors import HfItaError
    from .hub.pull import load_adapter
    from .hub.push import push
    from .rundir import RunDir, RunMetrics
    from .training.recipe import ItalianSFT, TrainResult
    from .templates import DEFAULT_SYSTEM_PROMPT, apply_template


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
