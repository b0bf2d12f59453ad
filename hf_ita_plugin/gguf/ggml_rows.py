"""ggml's own CPU row conversions (F32 -> F16, BF16 -> F32), from the libraries llama-cpp-python ships.

llama.cpp's CPU backend converts rows with the processor's half-precision instructions (F16C/AVX),
tens of times faster than numpy's element-wise cast and bit-identical to it (round to nearest even,
overflow to inf). The shared libraries are loaded with ``ctypes`` from the installed ``llama_cpp``
package without importing it; where they cannot be found or loaded, :func:`row_converter` returns
None and the caller keeps numpy's cast.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import sys
from pathlib import Path
from typing import Callable

import numpy as np

RowFn = Callable[[np.ndarray, np.ndarray], None]


def _library_dir() -> Path | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "lib"


def _load(lib_dir: Path, stem: str) -> ctypes.CDLL:
    suffix = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")
    name = stem + suffix if sys.platform != "win32" else stem.removeprefix("lib") + suffix
    return ctypes.CDLL(str(lib_dir / name))


@functools.lru_cache(maxsize=None)
def _cpu_library() -> ctypes.CDLL | None:
    lib_dir = _library_dir()
    if lib_dir is None or not lib_dir.is_dir():
        return None
    try:
        _load(lib_dir, "libggml-base")  # dependency of the CPU backend, loaded from the same folder
        cpu = _load(lib_dir, "libggml-cpu")
        cpu.ggml_cpu_init.argtypes, cpu.ggml_cpu_init.restype = [], None
        for fn in (cpu.ggml_cpu_fp32_to_fp16, cpu.ggml_cpu_bf16_to_fp32):
            fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64], None
        cpu.ggml_cpu_init()  # builds ggml's conversion tables; idempotent
    except (OSError, AttributeError):  # other build layout (e.g. per-CPU backend variants): numpy instead
        return None
    return cpu


def _checked(src: np.ndarray, out: np.ndarray, src_dtype, out_dtype) -> None:
    if src.dtype != src_dtype or out.dtype != out_dtype or src.size != out.size or not (src.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError(f"row conversion needs contiguous {src_dtype} -> {out_dtype} arrays of equal size")


def row_converter(kind: str) -> RowFn | None:
    """ggml's converter ``kind`` (``"f32_to_f16"`` or ``"bf16_to_f32"``, BF16 given as uint16 bits), or None.

    The returned function writes ``out`` from ``src`` (both 1-D, contiguous, same length).
    """
    cpu = _cpu_library()
    if cpu is None:
        return None
    if kind == "f32_to_f16":
        fn, src_dtype, out_dtype = cpu.ggml_cpu_fp32_to_fp16, np.dtype(np.float32), np.dtype(np.float16)
    elif kind == "bf16_to_f32":
        fn, src_dtype, out_dtype = cpu.ggml_cpu_bf16_to_fp32, np.dtype(np.uint16), np.dtype(np.float32)
    else:
        raise ValueError(f"unknown row conversion {kind!r}")

    def convert(src: np.ndarray, out: np.ndarray) -> None:
        _checked(src, out, src_dtype, out_dtype)
        fn(src.ctypes.data, out.ctypes.data, src.size)

    return convert
