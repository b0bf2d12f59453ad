"""Element conversions from safetensors dtypes to GGUF tensor types, in numpy, one chunk at a time.

Source chunks arrive in their raw dtype (F32, F16, F64, or BF16 as ``uint16`` bits). Same type in and
out is a byte copy; BF16 -> F32 widens the bits into the high half of a ``uint32``. To F16, ggml's own
CPU row conversions (:mod:`.ggml_rows`, hardware half-precision instructions) are used when
llama-cpp-python's libraries are available; otherwise numpy: a round-to-nearest-even cast from float32,
and BF16 -> F16 on the 16-bit patterns directly (exact for every value in F16's normal range, the rare
rest through float32). Every path gives the bytes of ``bf16/f32 -> float32 -> float16``. Other types are
quantized by the ``gguf`` package from float32.
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize

from .ggml_rows import row_converter

_T = GGMLQuantizationType
_SAME = {("F32", _T.F32), ("F16", _T.F16), ("BF16", _T.BF16)}


def is_byte_copy(src_dtype: str, out_type: GGMLQuantizationType) -> bool:
    """True when the GGUF bytes of a tensor are exactly its safetensors bytes."""
    return (src_dtype, out_type) in _SAME


def to_float32(raw: np.ndarray, src_dtype: str) -> np.ndarray:
    """Float32 values of a raw chunk (BF16 given as uint16 bits)."""
    if src_dtype == "F32":
        return raw
    if src_dtype == "BF16":
        wide = raw.astype(np.uint32)
        wide <<= 16
        return wide.view(np.float32)
    return raw.astype(np.float32)


def bf16_to_f16(raw: np.ndarray) -> np.ndarray:
    """BF16 bit patterns (uint16) -> float16, bit-identical to ``bf16 -> float32 -> float16`` (round to nearest even)."""
    magnitude = raw & np.uint16(0x7FFF)
    # F16 normal range is bf16 exponents 113..142: rebias the exponent and widen the 7-bit mantissa to 10 bits
    magnitude -= np.uint16(0x3800)
    outside = (magnitude - np.uint16(0x80)) >= np.uint16(0x0F00)  # wraps below 0x80: one unsigned compare
    out = magnitude << np.uint16(3)
    out |= raw & np.uint16(0x8000)
    if outside.any():  # zeros, F16 subnormals, overflow, inf/nan: exact rounding through float32
        idx = np.flatnonzero(outside)
        with np.errstate(over="ignore", invalid="ignore"):
            out[idx] = to_float32(raw[idx], "BF16").astype(np.float16).view(np.uint16)
    return out.view(np.float16)


class ChunkEncoder:
    """Converts the chunks of one tensor (flattened whole rows, raw source dtype) to the bytes of ``out_type``.

    F16 output goes into buffers allocated once for at most ``max_elements`` per chunk and reused: the
    returned array is only valid until the next call.
    """

    def __init__(self, src_dtype: str, out_type: GGMLQuantizationType, row_length: int, max_elements: int):
        self.src_dtype, self.out_type, self.row_length = src_dtype, out_type, row_length
        self._f16 = self._f32 = None
        self._to_f16 = None
        if out_type == _T.F16 and not is_byte_copy(src_dtype, out_type):
            self._to_f16 = row_converter("f32_to_f16")
            self._bf16_to_f32 = row_converter("bf16_to_f32") if src_dtype == "BF16" else None
            if self._to_f16 is not None:
                self._f16 = np.empty(max_elements, dtype=np.float16)
                if src_dtype == "BF16" and self._bf16_to_f32 is not None:
                    self._f32 = np.empty(max_elements, dtype=np.float32)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self._to_f16 is None:
            return encode_chunk(raw, self.src_dtype, self.out_type, self.row_length)
        n = raw.size
        if self.src_dtype == "F32":
            wide = raw
        elif self.src_dtype == "BF16" and self._f32 is not None:
            wide = self._f32[:n]
            self._bf16_to_f32(raw, wide)
        else:
            wide = np.ascontiguousarray(to_float32(raw, self.src_dtype), dtype=np.float32)
        out = self._f16[:n]
        self._to_f16(wide, out)
        return out


def encode_chunk(raw: np.ndarray, src_dtype: str, out_type: GGMLQuantizationType, row_length: int) -> np.ndarray:
    """Convert a chunk of whole rows (flattened, raw source dtype) to the bytes of ``out_type`` (numpy only)."""
    if is_byte_copy(src_dtype, out_type):
        return raw
    if out_type == _T.F16:
        if src_dtype == "BF16":
            return bf16_to_f16(raw)
        with np.errstate(over="ignore"):  # out-of-range values become inf, as in torch and llama.cpp
            return to_float32(raw, src_dtype).astype(np.float16)
    data = to_float32(raw, src_dtype)
    if out_type == _T.F32:
        return data
    return quantize(data.reshape(-1, row_length), out_type)
