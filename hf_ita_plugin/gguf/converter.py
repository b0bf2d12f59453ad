"""Streaming Hugging Face -> GGUF converter built on the ``gguf`` package's GGUFWriter.

All tensor infos are declared first (names, shapes, output types), the header, key/values and
tensor infos are written, then each tensor is streamed through ``GGUFWriter.write_tensor_data``:
read from the safetensors file in chunks of whole rows, converted in numpy and written with large
sequential writes (a tensor whose bytes do not change is copied file-to-file by the kernel). Only the
rotary q/k permutation and Gemma's ``norm + 1`` hold one tensor in memory. No torch, no transformers
for a plain checkpoint with a ``tokenizer.json`` BPE tokenizer. The file is written under a
temporary name, fsynced once and renamed when complete.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGML_QUANT_VERSION, GGMLQuantizationType, GGUFEndian, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quant_shape_to_byte_shape

from ..utils.atomic import atomic_path
from ..errors import ModelError
from .architectures import Architecture, architecture_for, is_tied, rope_freqs_tensor
from .checkpoint import Checkpoint
from .encode import ChunkEncoder, encode_chunk, is_byte_copy
from .quant_types import QuantType
from .tokenizer_meta import tokenizer_meta

logging.getLogger("gguf").setLevel(logging.ERROR)  # SpecialVocab heuristics warn about what we set explicitly
_SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)
CHUNK_ELEMENTS = 1 << 20
"""Elements converted per step (rounded to whole rows): a few MiB, small enough to stay in cache."""
class StreamingGGUFWriter(GGUFWriter):
    """GGUFWriter whose key/value section packs long arrays (vocabulary, merges, token types, scores) in one pass.

    The bytes are those of :meth:`GGUFWriter._pack_val` (length-prefixed UTF-8 strings; INT32 for ints,
    FLOAT32 for floats, as ``GGUFValueType.get_type`` picks them), without a Python call and a bytearray per
    item: for a 50k-token vocabulary this is most of the metadata time.
    """

    _NUMPY_ITEMS = {int: (GGUFValueType.INT32, "i4"), float: (GGUFValueType.FLOAT32, "f4")}

    def _pack_val(self, val: Any, vtype: GGUFValueType, add_vtype: bool, sub_type: GGUFValueType | None = None) -> bytes:
        if vtype != GGUFValueType.ARRAY or not isinstance(val, (list, tuple)) or len(val) < 64:
            return super()._pack_val(val, vtype, add_vtype, sub_type)
        kinds = set(map(type, val))
        if len(kinds) != 1:
            return super()._pack_val(val, vtype, add_vtype, sub_type)
        kind = kinds.pop()
        order = "<" if self.endianess == GGUFEndian.LITTLE else ">"
        head = struct.pack(order + "I", vtype) if add_vtype else b""
        if kind is str and sub_type in (None, GGUFValueType.STRING):
            encoded = list(map(str.encode, val))  # UTF-8; every loop below runs in C
            lengths = map(struct.Struct(order + "Q").pack, map(len, encoded))
            items = b"".join(itertools.chain.from_iterable(zip(lengths, encoded)))
            return head + struct.pack(order + "IQ", GGUFValueType.STRING, len(val)) + items
        if kind in self._NUMPY_ITEMS and sub_type in (None, self._NUMPY_ITEMS[kind][0]):
            ltype, code = self._NUMPY_ITEMS[kind]
            try:
                with np.errstate(over="raise"):
                    items = np.asarray(val, dtype=order + code)
            except (OverflowError, FloatingPointError):  # out of range: struct raises its own error
                return super()._pack_val(val, vtype, add_vtype, sub_type)
            return head + struct.pack(order + "IQ", ltype, len(val)) + items.tobytes()
        return super()._pack_val(val, vtype, add_vtype, sub_type)


@dataclass
class _PlannedTensor:
    hf_name: str | None  # None for generated tensors (rope_freqs)
    gguf_name: str
    shape: tuple[int, ...]
    out_type: GGMLQuantizationType
    generated: Any = None  # float32 numpy array

    @property
    def nbytes(self) -> int:
        if self.out_type == GGMLQuantizationType.F32:
            return int(np.prod(self.shape)) * 4
        if self.out_type == GGMLQuantizationType.F16:
            return int(np.prod(self.shape)) * 2
        return int(np.prod(quant_shape_to_byte_shape(self.shape, self.out_type)))


def _tensor_type(qtype: QuantType, gguf_name: str, shape: tuple[int, ...]) -> GGMLQuantizationType:
    """Output type of one tensor: 1-D tensors stay F32; rows that do not fit the block fall back to F16."""
    target = qtype.tensor_type
    assert target is not None
    if len(shape) < 2 or gguf_name == "rope_freqs.weight":
        return GGMLQuantizationType.F32
    block, _ = GGML_QUANT_SIZES[target]
    if shape[-1] % block != 0:
        return GGMLQuantizationType.F16
    return target


def plan_tensors(ckpt: Checkpoint, arch: Architecture, qtype: QuantType) -> list[_PlannedTensor]:
    """Map every checkpoint tensor to its GGUF name, shape and output type (no data is read)."""
    names = arch.tensor_name_map(ckpt.config)
    tied = is_tied(ckpt.config)
    plan: list[_PlannedTensor] = []
    for hf_name in ckpt.names():
        if hf_name.endswith(_SKIPPED_SUFFIXES) or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = arch.gguf_name(hf_name, names)
        shape = ckpt.ref(hf_name).shape  # also refuses non-float dtypes before anything is written
        plan.append(_PlannedTensor(hf_name, gguf_name, shape, _tensor_type(qtype, gguf_name, shape)))
    freqs = rope_freqs_tensor(ckpt.path, ckpt.config)
    if freqs is not None:
        plan.append(_PlannedTensor(None, "rope_freqs.weight", tuple(freqs.shape), GGMLQuantizationType.F32, generated=freqs))
    if not any(p.gguf_name == "token_embd.weight" for p in plan):
        raise ModelError(f"{ckpt.path}: embedding dei token mancante / token embedding missing from the checkpoint")
    return plan


class _TensorStream:
    """One planned tensor as GGUFWriter's ``write_tensor_data`` sees it: ``nbytes`` and ``tofile(fout)``.

    ``tofile`` produces the GGUF bytes chunk by chunk instead of materialising the converted tensor.
    """

    def __init__(self, planned: _PlannedTensor, ckpt: Checkpoint, arch: Architecture, bar):
        self.p, self.ckpt, self.arch, self.bar = planned, ckpt, arch, bar
        self.nbytes = planned.nbytes

    def tofile(self, fout) -> None:
        p, ckpt = self.p, self.ckpt
        written = 0
        if p.generated is not None:
            written += self._write(fout, encode_chunk(np.ascontiguousarray(p.generated, dtype=np.float32).reshape(-1), "F32", p.out_type, p.shape[-1]))
        else:
            ref = ckpt.ref(p.hf_name)
            if self.arch.shifts_values(p.gguf_name) or self.arch.permutes(p.gguf_name):
                as_float = self.arch.shifts_values(p.gguf_name)
                whole = ckpt.get(p.hf_name) if as_float else ckpt.read_raw(p.hf_name).reshape(ref.shape)
                fixed = np.ascontiguousarray(self.arch.transform(p.gguf_name, whole, ckpt.config)).reshape(-1)
                del whole
                written += self._convert(fout, lambda start, count, _buf: fixed[start:start + count], "F32" if as_float else ref.dtype, ref.numel)
            elif is_byte_copy(ref.dtype, p.out_type):
                written += self._copy(fout, ref)
            else:
                written += self._convert(fout, lambda start, count, buf: ckpt.read_raw(p.hf_name, start, count, out=buf), ref.dtype, ref.numel, ref.raw_dtype)
        if written != self.nbytes:  # pragma: no cover - would be a bug in the planner
            raise ModelError(f"{p.gguf_name}: scritti {written} byte invece di {self.nbytes} / wrote {written} bytes instead of {self.nbytes}")

    def _write(self, fout, data: np.ndarray) -> int:
        n = fout.write(memoryview(np.ascontiguousarray(data)).cast("B"))
        self.bar.update(n)
        return n

    def _convert(self, fout, read, src_dtype: str, numel: int, buffer_dtype=None) -> int:
        row = self.p.shape[-1] if self.p.shape else 1
        step = max(1, CHUNK_ELEMENTS // row) * row
        buf = np.empty(min(step, numel), dtype=buffer_dtype) if buffer_dtype is not None else None
        encode = ChunkEncoder(src_dtype, self.p.out_type, row, min(step, numel))
        written = 0
        for start in range(0, numel, step):
            raw = read(start, min(step, numel - start), buf)
            written += self._write(fout, encode(raw))
        return written

    def _copy(self, fout, ref) -> int:
        """Same bytes in and out: kernel copy between the files (read/write fallback where unsupported)."""
        fout.flush()
        src, dst = self.ckpt.fileno(ref), fout.fileno()
        done = 0
        try:
            while done < ref.nbytes:
                n = os.copy_file_range(src, dst, ref.nbytes - done, ref.offset + done)
                if n <= 0:
                    break
                done += n
                self.bar.update(n)
        except OSError:
            pass  # e.g. a filesystem without copy_file_range: continue with plain reads
        if done < ref.nbytes:
            itemsize = ref.raw_dtype.itemsize
            rest = ref.nbytes - done
            buf = np.empty(min(CHUNK_ELEMENTS, rest // itemsize), dtype=ref.raw_dtype)
            for start in range(done // itemsize, ref.numel, len(buf)):
                done += self._write(fout, self.ckpt.read_raw(ref.name, start, min(len(buf), ref.numel - start), out=buf))
        return done


def describe_model(writer, model_dir: Path, name: str | None, *, total_params: int) -> None:
    """``general.*`` keys as llama.cpp's converter writes them (gguf's :class:`gguf.Metadata`): name,
    basename, size_label, finetune, license and ``general.base_model.*`` from the model card and config."""
    meta = gguf.Metadata.load(model_path=Path(model_dir), model_name=name or Path(model_dir).name, total_params=total_params)
    if meta.size_label is None and total_params > 0:
        meta.size_label = gguf.size_label(total_params, 0, 0, 0)
    meta.set_gguf_meta_model(writer)


def write_gguf(
    model_dir: str | Path,
    out_path: str | Path,
    qtype: QuantType,
    *,
    name: str | None = None,
    tokenizer=None,
    progress: bool = True,
) -> Path:
    """Convert the safetensors checkpoint in ``model_dir`` into one GGUF file of type ``qtype``.

    ``qtype`` must be a type written in Python (F32/F16/BF16/Q8_0/Q5_0/Q4_0); K-quants go through
    :func:`hf_ita_plugin.gguf.quantize.quantize_gguf`.
    """
    if qtype.by_llama_cpp:
        raise ModelError(f"{qtype.name} è prodotto dal quantizzatore di llama.cpp / {qtype.name} is made by llama.cpp's quantizer, not written directly")
    out_path = Path(out_path)
    from tqdm.auto import tqdm

    with Checkpoint(model_dir) as ckpt:
        arch = architecture_for(ckpt.config, str(ckpt.path / "config.json"))
        plan = plan_tensors(ckpt, arch, qtype)
        n_vocab = int(ckpt.shape(next(p.hf_name for p in plan if p.gguf_name == "token_embd.weight"))[0])
        meta = tokenizer_meta(ckpt.path, n_vocab, tokenizer=tokenizer)
        with atomic_path(out_path) as tmp:
            writer = StreamingGGUFWriter(tmp, arch.name)
            try:
                describe_model(writer, ckpt.path, name, total_params=sum(int(np.prod(p.shape)) for p in plan))
                writer.add_languages(["it"])
                writer.add_file_type(int(qtype.file_type))
                if not qtype.is_float:
                    writer.add_quantization_version(GGML_QUANT_VERSION)
                writer.add_vocab_size(n_vocab)
                arch.write_hparams(writer, ckpt.config)
                meta.add_to(writer)
                for p in plan:
                    np_dtype = {GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16}.get(p.out_type)
                    if np_dtype is not None:
                        writer.add_tensor_info(p.gguf_name, p.shape, np.dtype(np_dtype), p.nbytes)
                    else:
                        byte_shape = quant_shape_to_byte_shape(p.shape, p.out_type)
                        writer.add_tensor_info(p.gguf_name, byte_shape, np.dtype(np.uint8), p.nbytes, raw_dtype=p.out_type)
                writer.write_header_to_file()
                writer.write_kv_data_to_file()
                writer.write_ti_data_to_file()
                bar = tqdm(total=sum(p.nbytes for p in plan), unit="B", unit_scale=True, desc=f"GGUF {qtype.name}", disable=not progress)
                for p in plan:
                    writer.write_tensor_data(_TensorStream(p, ckpt, arch, bar))
                bar.close()
            finally:
                writer.close()
    return out_path
