"""K-quants (Q4_K_M, Q5_K_M, Q6_K, ...) made by llama.cpp's own quantizer through llama-cpp-python."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from pathlib import Path

from ..utils.atomic import atomic_path
from ..errors import ModelError
from .quant_types import QuantType


def require_llama_cpp():
    """Import ``llama_cpp`` or raise a ModelError that says how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelError(
            "llama-cpp-python non è installato / llama-cpp-python is not installed",
            hint="pip install 'hf-ita-plugin[gguf]'  (builds llama.cpp from source where no wheel exists)",
        ) from exc
    return llama_cpp


@contextlib.contextmanager
def _captured_native_stderr():
    """Collect what native code writes to fd 2 (llama.cpp's per-tensor log) instead of flooding the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        captured: list[str] = []
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


def quantize_gguf(source: str | Path, out_path: str | Path, qtype: QuantType, *, threads: int | None = None) -> Path:
    """Quantize a 16/32-bit GGUF ``source`` into ``out_path`` with llama.cpp's ``llama_model_quantize``."""
    llama_cpp = require_llama_cpp()
    source, out_path = Path(source), Path(out_path)
    if not source.is_file():
        raise ModelError(f"{source}: file GGUF sorgente mancante / source GGUF missing")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(qtype.file_type)
    params.nthread = int(threads or os.cpu_count() or 1)
    with atomic_path(out_path) as tmp:
        with _captured_native_stderr() as log:
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            tail = "".join(log)[-2000:]
            raise ModelError(f"{source}: quantizzazione {qtype.name} fallita / llama.cpp quantization to {qtype.name} failed (code {rc})\n{tail}")
    return out_path
