"""A Hugging Face checkpoint directory read lazily: config plus memory-mapped safetensors.

Tensors are opened with ``safetensors.safe_open`` (memory-mapped) and materialised one at a time,
so reading never holds more than one tensor in memory.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator

from ..errors import ModelError


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
        self._stack = ExitStack()
        self._handles: dict[Path, Any] = {}
        self._where: dict[str, Path] = {}
        for file in self._files:
            for name in self._open(file).keys():
                self._where[name] = file

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

    def _open(self, file: Path):
        if file not in self._handles:
            from safetensors import safe_open

            self._handles[file] = self._stack.enter_context(safe_open(str(file), framework="pt"))
        return self._handles[file]

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    @property
    def nbytes(self) -> int:
        """Total size of the weight files on disk."""
        return sum(f.stat().st_size for f in self._files)

    def names(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> list[int]:
        return list(self._open(self._where[name]).get_slice(name).get_shape())

    def dtype(self, name: str) -> str:
        return str(self._open(self._where[name]).get_slice(name).get_dtype())

    def get(self, name: str):
        """Materialise one tensor (a ``torch.Tensor``, a copy) from a short-lived memory map.

        The file is mapped only while this tensor is read, so pages of tensors already written do not
        stay resident (peak RSS is bounded by the largest tensor, not the file).
        """
        from safetensors import safe_open

        with safe_open(str(self._where[name]), framework="pt") as handle:
            return handle.get_tensor(name)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def close(self) -> None:
        self._stack.close()
        self._handles.clear()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
