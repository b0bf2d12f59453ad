"""A Hugging Face checkpoint directory read lazily: config plus safetensors read without torch.

The safetensors headers (an 8-byte length and a JSON table) are parsed directly, and tensor bytes are
read with ``os.preadv`` into caller-sized numpy buffers, in chunks: nothing stays mapped or resident
after a chunk is converted, so peak memory is a chunk (or, for tensors that need a layout fix, one
tensor), never the model. BF16, which numpy lacks, is read as its raw ``uint16`` bits.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ModelError
from .encode import to_float32

RAW_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
}
"""safetensors dtype -> numpy dtype of its raw elements (BF16 as its uint16 bit pattern)."""

_MAX_HEADER = 100 * 2**20


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: its file, absolute byte offset and size, dtype and shape."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def raw_dtype(self) -> np.dtype:
        return RAW_DTYPES[self.dtype]


def read_safetensors_header(file: Path) -> dict[str, TensorRef]:
    """Tensor table of one ``.safetensors`` file (a ModelError naming the file when it is malformed)."""
    from ..models.weights import read_header

    read_header(file)  # the header must describe the whole file: a truncated checkpoint is refused here
    try:
        with open(file, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelError(f"{file}: file safetensors troncato / truncated safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > _MAX_HEADER:
                raise ModelError(f"{file}: intestazione safetensors non valida / invalid safetensors header (length {length})")
            table = json.loads(fh.read(length))
            size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file}: intestazione safetensors illeggibile / unreadable safetensors header ({exc})") from exc
    base = 8 + length
    refs: dict[str, TensorRef] = {}
    for name, info in table.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in info["data_offsets"])
            ref = TensorRef(name, file, str(info["dtype"]), tuple(int(d) for d in info["shape"]), base + begin, end - begin)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{file}: voce {name!r} dell'intestazione non valida / invalid header entry ({exc})") from exc
        if ref.offset + ref.nbytes > size:
            raise ModelError(f"{file}: il tensore {name!r} supera la fine del file / tensor {name!r} extends past the end of the file")
        if ref.dtype in RAW_DTYPES and ref.numel * ref.raw_dtype.itemsize != ref.nbytes:
            raise ModelError(f"{file}: il tensore {name!r} ha dimensione incoerente / size of {name!r} does not match its shape and dtype")
        refs[name] = ref
    return refs


class Checkpoint:
    """Config and tensors of a safetensors checkpoint directory."""

    def __init__(self, model_dir: str | Path):
        self.path = Path(model_dir)
        config_file = self.path / "config.json"
        if not config_file.is_file():
            raise ModelError(f"{self.path}: config.json non trovato / config.json not found", hint="pass a Hugging Face model directory (config.json + *.safetensors)")
        try:
            self.config: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelError(f"{config_file}: JSON non valido / invalid JSON ({exc})") from exc
        self._files = self._safetensors_files()
        self._refs: dict[str, TensorRef] = {}
        for file in self._files:
            self._refs.update(read_safetensors_header(file))
        self._fds: dict[Path, int] = {}

    def _safetensors_files(self) -> list[Path]:
        index = self.path / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            files = sorted({self.path / f for f in weight_map.values()})
        else:
            files = sorted(self.path.glob("*.safetensors"))
        if not files:
            hint = "re-save it with save_pretrained(..., safe_serialization=True)" if list(self.path.glob("*.bin")) else None
            raise ModelError(f"{self.path}: nessun file .safetensors / no .safetensors weights found", hint=hint)
        for f in files:
            if not f.is_file():
                raise ModelError(f"{f}: file di pesi mancante / weight shard listed in the index is missing")
        return files

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    @property
    def nbytes(self) -> int:
        """Total size of the weight files on disk."""
        return sum(f.stat().st_size for f in self._files)

    def names(self) -> list[str]:
        return list(self._refs)

    def ref(self, name: str) -> TensorRef:
        """Location, dtype and shape of tensor ``name``; a ModelError for a dtype that is not a float type."""
        ref = self._refs[name]
        if ref.dtype not in RAW_DTYPES:
            raise ModelError(
                f"{ref.file}: tensore {name!r} di tipo {ref.dtype} non supportato / unsupported dtype {ref.dtype} for {name!r}",
                hint="supported: " + ", ".join(RAW_DTYPES),
            )
        return ref

    def shape(self, name: str) -> list[int]:
        return list(self._refs[name].shape)

    def dtype(self, name: str) -> str:
        return self._refs[name].dtype

    def fileno(self, ref: TensorRef) -> int:
        """Read-only file descriptor of the shard holding ``ref`` (opened once, closed by :meth:`close`)."""
        if ref.file not in self._fds:
            self._fds[ref.file] = os.open(ref.file, os.O_RDONLY)
        return self._fds[ref.file]

    def read_raw(self, name: str, start: int = 0, count: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Elements ``[start, start + count)`` of tensor ``name`` (flattened), in its raw dtype (BF16 as uint16).

        ``out``: a buffer of the raw dtype with at least ``count`` elements to read into (reused between chunks).
        """
        ref = self.ref(name)
        count = ref.numel - start if count is None else count
        dtype = ref.raw_dtype
        if out is None:
            out = np.empty(count, dtype=dtype)
        else:
            out = out[:count]
        view = memoryview(out.view(np.uint8))
        fd, pos, done = self.fileno(ref), ref.offset + start * dtype.itemsize, 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], pos + done)
            if got <= 0:
                raise ModelError(f"{ref.file}: lettura di {name!r} interrotta / file ended while reading {name!r}")
            done += got
        return out

    def get(self, name: str) -> np.ndarray:
        """One whole tensor as a float32 numpy array of its shape (a fresh copy)."""
        ref = self.ref(name)
        return to_float32(self.read_raw(name), ref.dtype).reshape(ref.shape)

    def __contains__(self, name: str) -> bool:
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
