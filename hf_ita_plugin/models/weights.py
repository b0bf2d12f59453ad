"""Whole-file checks of safetensors weights: the one verifier every reader and publisher calls.

A safetensors file is an 8-byte header length, a JSON table (dtype, shape, byte range of each
tensor) and the tensor bytes. A file cut short (a crash while saving, an interrupted copy) still has
a readable header, so checking the header alone publishes broken weights. :func:`verify_safetensors`
checks that the byte ranges cover the file exactly, that each range matches its dtype and shape,
and (``values=True``) that every tensor reads back with finite values.

Example::

    verify_safetensors("outputs/run/adapter/adapter_model.safetensors")   # ModelError naming file and tensor
    verify_weights_dir("outputs/run/adapter")                              # every *.safetensors in a folder
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from ..errors import ModelError

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
"""Weight/state formats that execute code when loaded (pickle): never published, never loaded by default."""
_HINT = "the file is damaged (an interrupted save or copy): write it again (train, merge or download it again)"


def _bad(path: Path, italian: str, english: str, tensor: str | None = None) -> ModelError:
    where = f"{path}" + (f", tensore / tensor {tensor!r}" if tensor else "")
    return ModelError(f"{where}: {italian} / {english}", hint=_HINT)


def read_header(path: str | os.PathLike) -> dict[str, dict]:
    """The tensor table of a safetensors file (``__metadata__`` left out), checked against the file size."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise _bad(path, "file troncato", f"truncated file ({size} bytes, no header)")
            (length,) = struct.unpack("<Q", raw)
            if length <= 1 or 8 + length > size:
                raise _bad(path, "intestazione non valida", f"invalid or truncated header (length {length}, file {size} bytes)")
            header = json.loads(fh.read(length))
    except OSError as exc:
        raise ModelError(f"{path}: illeggibile / cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(path, "intestazione JSON non valida", f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _bad(path, "intestazione non valida", "header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - length
    end_max = 0
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _bad(path, "voce dell'intestazione non valida", "malformed header entry", name) from None
        count = 1
        for dim in shape:
            count *= int(dim)
        width = _DTYPE_BYTES.get(dtype)
        if width is not None and end - start != count * width:
            raise _bad(path, "dimensione non coerente", f"{end - start} bytes for {dtype} {list(shape)} "
                       f"(expected {count * width})", name)
        if end > data_size:
            raise _bad(path, "file troncato", f"truncated file: tensor bytes {start}-{end} past the end of the data "
                       f"({data_size} bytes)", name)
        end_max = max(end_max, end)
    if end_max != data_size:
        raise _bad(path, "dimensione del file errata", f"file size does not match the header ({data_size} data bytes, "
                   f"header covers {end_max})")
    return header


def verify_safetensors(path: str | os.PathLike, *, values: bool = True) -> int:
    """Check one safetensors file in full; returns its number of tensors.

    The header must describe the file exactly (no missing or extra bytes); with ``values`` every
    tensor is read and its floating-point values must be finite. Failures raise :class:`ModelError`
    naming the file and, when one is at fault, the tensor.
    """
    path = Path(path)
    header = read_header(path)
    if not values:
        return len(header)
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as st:
            for name in header:
                try:
                    tensor = st.get_tensor(name)
                except (SafetensorError, RuntimeError, ValueError) as exc:
                    raise _bad(path, "tensore illeggibile", f"cannot read the tensor ({exc})", name) from None
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise _bad(path, "valori non finiti", "non-finite values (NaN or inf)", name)
    except SafetensorError as exc:
        raise _bad(path, "file illeggibile", f"cannot open it ({exc})") from None
    return len(header)


def verify_weights_dir(folder: str | os.PathLike, *, values: bool = True) -> list[Path]:
    """Verify every ``*.safetensors`` file directly in ``folder``; returns them (sorted)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    for file in files:
        verify_safetensors(file, values=values)
    return files


def check_adapter_weights(adapter_dir: str | os.PathLike, *, allow_pickle: bool = False) -> Path | None:
    """Verify the weights of a peft adapter folder before anything loads them; returns the weight file.

    ``adapter_model.safetensors`` is verified in full; an adapter with only pickle weights
    (``adapter_model.bin``...) is refused unless ``allow_pickle`` (pickle files run code when loaded).
    """
    folder = Path(adapter_dir)
    weights = folder / "adapter_model.safetensors"
    if weights.is_file():
        verify_safetensors(weights)
        return weights
    pickles = sorted(p for p in folder.glob("adapter_model.*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles and not allow_pickle:
        raise ModelError(f"{pickles[0]}: pesi solo in formato pickle, rifiutati / weights only in pickle format: refused, "
                         "pickle files can run code when loaded",
                         hint="re-save the adapter with safetensors, or pass --allow-pickle (allow_pickle=True) if you trust it")
    return pickles[0] if pickles else None


__all__ = ["PICKLE_SUFFIXES", "read_header", "verify_safetensors", "verify_weights_dir", "check_adapter_weights"]
