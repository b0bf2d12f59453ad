"""What machine a run or benchmark ran on: CPU model, the instruction sets that matter, GPU.

Speed and even correctness depend on them: bitsandbytes packs 4-bit layers differently on CPUs
with AVX512-BF16, bf16 matmuls are native only with AVX512-BF16 or AMX, llama.cpp picks kernels by
instruction set. Every metrics.json, model card and benchmark result records them.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

RELEVANT_CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                      "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
"""The x86 flags (as /proc/cpuinfo spells them) that change which kernels torch, bitsandbytes and llama.cpp run."""
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
    except OSError:  # not Linux: model from platform, no flags
        pass
    return model, flags


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    return _cpuinfo()[0]


def cpu_flags() -> list[str]:
    """The :data:`RELEVANT_CPU_FLAGS` this CPU has, in that order."""
    flags = _cpuinfo()[1]
    return [flag for flag in RELEVANT_CPU_FLAGS if flag in flags]


def has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    return any(flag in _cpuinfo()[1] for flag in NATIVE_BF16_FLAGS)


def describe() -> dict:
    """A JSON-ready summary: CPU model and flags, cores, load, platform, GPU when there is one."""
    info: dict = {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "cpu_count": os.cpu_count(),
                  "platform": platform.platform(terse=True), "python": platform.python_version()}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info
