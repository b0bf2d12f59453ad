"""Process-wide environment defaults, applied once where a process starts (the ``hf-ita`` console
script and the Space's start-up), never at import, and never over a value the user set.

* ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that busy-wait burn the cores other work needs
  (llama.cpp next to torch, a Space's web server, a shared laptop, CI). On 2 loaded cores a
  100-token forward of the 135M model took several times longer with spinning threads. Sleeping
  costs little on an idle machine. It must be set before torch or llama.cpp start OpenMP.
* ``TOKENIZERS_PARALLELISM=false``: the Rust tokenizers' thread pool deadlocks in processes forked
  after it started (the data-prepare workers, DataLoader workers) and prints a warning each time.
"""

from __future__ import annotations

import os
from typing import MutableMapping

RUNTIME_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}


def apply_runtime_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each of :data:`RUNTIME_DEFAULTS` the environment lacks; returns those it set."""
    environ = os.environ if environ is None else environ
    applied = {}
    for name, value in RUNTIME_DEFAULTS.items():
        if name not in environ:
            environ[name] = value
            applied[name] = value
    return applied
