"""Output types of a GGUF export: which ones Python writes, which ones llama.cpp's quantizer makes.

F32/F16/BF16/Q8_0/Q4_0/Q5_0 are written directly by the streaming converter (the ``gguf`` package
quantizes them in numpy). K-quants are produced from a 16-bit GGUF by llama.cpp's own quantizer
(``llama_model_quantize`` exposed by llama-cpp-python).
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGMLQuantizationType, LlamaFileType

from ..errors import ConfigError


@dataclass(frozen=True)
class QuantType:
    """One output type: its canonical name, how it is produced, and its llama.cpp file type."""

    name: str
    file_type: LlamaFileType
    tensor_type: GGMLQuantizationType | None  # set for types written by Python
    min_top1: float  # verify threshold: top-1 agreement with transformers

    @property
    def by_llama_cpp(self) -> bool:
        """True when llama.cpp's quantizer makes this type (K-quants)."""
        return self.tensor_type is None

    @property
    def is_float(self) -> bool:
        return self.name in ("F32", "F16", "BF16")


_T = GGMLQuantizationType
_F = LlamaFileType
QUANT_TYPES: dict[str, QuantType] = {
    q.name: q
    for q in (
        QuantType("F32", _F.ALL_F32, _T.F32, 0.99),
        QuantType("F16", _F.MOSTLY_F16, _T.F16, 0.99),
        QuantType("BF16", _F.MOSTLY_BF16, _T.BF16, 0.98),
        QuantType("Q8_0", _F.MOSTLY_Q8_0, _T.Q8_0, 0.97),
        QuantType("Q5_0", _F.MOSTLY_Q5_0, _T.Q5_0, 0.90),
        QuantType("Q4_0", _F.MOSTLY_Q4_0, _T.Q4_0, 0.85),
        QuantType("Q6_K", _F.MOSTLY_Q6_K, None, 0.95),
        QuantType("Q5_K_M", _F.MOSTLY_Q5_K_M, None, 0.92),
        QuantType("Q4_K_M", _F.MOSTLY_Q4_K_M, None, 0.88),
        QuantType("Q3_K_M", _F.MOSTLY_Q3_K_M, None, 0.75),
        QuantType("Q2_K", _F.MOSTLY_Q2_K, None, 0.55),
    )
}


def parse_quant_types(spec: str | list[str] | tuple[str, ...]) -> list[QuantType]:
    """Parse ``"q8_0,Q4_K_M"`` (or a list of names, any case) into known types, without duplicates."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    result: list[QuantType] = []
    for raw in names:
        key = str(raw).strip().upper()
        if not key:
            continue
        if key not in QUANT_TYPES:
            raise ConfigError(
                f"tipo di quantizzazione sconosciuto / unknown quantization type {raw!r}",
                hint="supported: " + ", ".join(QUANT_TYPES),
            )
        if QUANT_TYPES[key] not in result:
            result.append(QUANT_TYPES[key])
    if not result:
        raise ConfigError("nessun tipo di quantizzazione indicato / no quantization type given", hint="e.g. --quant q8_0,Q4_K_M")
    return result
