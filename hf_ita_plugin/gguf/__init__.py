"""GGUF export: merge, streaming conversion, K-quants via llama.cpp, LoRA adapter GGUF, verification, Modelfile.

Public API::

    from hf_ita_plugin.gguf import convert, export_adapter, verify

    result = convert("outputs/run1", quant="q8_0,Q4_K_M")   # merges outputs/run1/adapter first
    export_adapter("outputs/run1")                           # outputs/run1/adapter/adapter-lora.gguf
    report = verify("model-Q8_0.gguf", against="outputs/run1")
"""

from __future__ import annotations

from .adapter import export_adapter
from .architectures import ARCHITECTURES
from .export import ConvertResult, convert
from .quant_types import QUANT_TYPES, QuantType, parse_quant_types
from .verify import VerificationFailed, VerifyReport, verify

SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)

__all__ = [
    "convert", "ConvertResult", "export_adapter", "verify", "VerifyReport", "VerificationFailed",
    "QUANT_TYPES", "QuantType", "parse_quant_types", "SUPPORTED_ARCHITECTURES",
]
