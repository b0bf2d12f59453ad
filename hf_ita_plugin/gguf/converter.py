"""Streaming Hugging Face -> GGUF converter built on the ``gguf`` package's GGUFWriter.

All tensor infos are declared first (names, shapes, output types), the header, key/values and
tensor infos are written, then each tensor is read from the memory-mapped safetensors, fixed up,
converted and written before the next one is touched: peak memory is one tensor, not the model.
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_VERSION, GGMLQuantizationType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quant_shape_to_byte_shape, quantize

from ..atomic import atomic_path
from ..errors import ModelError
from .architectures import Architecture, architecture_for, is_tied, rope_freqs_tensor
from .checkpoint import Checkpoint
from .quant_types import QuantType
from .tokenizer_meta import tokenizer_meta

logging.getLogger("gguf").setLevel(logging.ERROR)  # SpecialVocab heuristics warn about what we set explicitly
_SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass
class _PlannedTensor:
    hf_name: str | None  # None for generated tensors (rope_freqs)
    gguf_name: str
    shape: tuple[int, ...]
    out_type: GGMLQuantizationType
    generated: Any = None

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
        shape = tuple(ckpt.shape(hf_name))
        plan.append(_PlannedTensor(hf_name, gguf_name, shape, _tensor_type(qtype, gguf_name, shape)))
    freqs = rope_freqs_tensor(ckpt.path, ckpt.config)
    if freqs is not None:
        plan.append(_PlannedTensor(None, "rope_freqs.weight", tuple(freqs.shape), GGMLQuantizationType.F32, generated=freqs))
    if not any(p.gguf_name == "token_embd.weight" for p in plan):
        raise ModelError(f"{ckpt.path}: embedding dei token mancante / token embedding missing from the checkpoint")
    return plan


def make_readable(path: Path) -> None:
    """Give a finished temp file the usual permissions (mkstemp creates it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _encode(tensor, out_type: GGMLQuantizationType) -> np.ndarray:
    import torch

    if out_type == GGMLQuantizationType.F16:
        return tensor.to(torch.float16).numpy()
    data = tensor.to(torch.float32).numpy()
    if out_type == GGMLQuantizationType.F32:
        return data
    return quantize(data, out_type)


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
    import torch
    from tqdm.auto import tqdm

    with Checkpoint(model_dir) as ckpt:
        arch = architecture_for(ckpt.config, str(ckpt.path / "config.json"))
        plan = plan_tensors(ckpt, arch, qtype)
        n_vocab = int(ckpt.shape(next(p.hf_name for p in plan if p.gguf_name == "token_embd.weight"))[0])
        meta = tokenizer_meta(ckpt.path, n_vocab, tokenizer=tokenizer)
        with atomic_path(out_path) as tmp:
            writer = GGUFWriter(tmp, arch.name)
            try:
                writer.add_name(name or ckpt.path.name)
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
                    tensor = p.generated if p.hf_name is None else ckpt.get(p.hf_name)
                    if p.hf_name is not None:
                        if not (p.out_type == GGMLQuantizationType.F16 and tensor.dtype == torch.float16):
                            tensor = tensor.float()
                        tensor = arch.transform(p.gguf_name, tensor, ckpt.config)
                    data = _encode(tensor, p.out_type)
                    writer.write_tensor_data(data)
                    bar.update(p.nbytes)
                    del tensor, data
                bar.close()
            finally:
                writer.close()
            make_readable(tmp)
    return out_path
