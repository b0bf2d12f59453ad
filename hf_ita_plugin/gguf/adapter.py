"""A peft LoRA adapter as a GGUF LoRA file that llama.cpp applies on top of the base GGUF (``--lora``).

Tensors are named ``<gguf base tensor>.lora_a`` / ``.lora_b``; the rotary permutation that the base
q/k weights get is applied to ``lora_b`` (the output rows) so that ``B @ A`` lands in llama.cpp's
layout. peft's per-module scaling (alpha / r, rsLoRA, rank/alpha patterns) is preserved: as
``adapter.lora.alpha`` when it is uniform, folded into ``lora_b`` otherwise.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from ..utils.atomic import atomic_path
from ..errors import ModelError
from .architectures import architecture_for
from ..models.resolve import find_adapter_dir, read_adapter_config, resolve_base_dir

_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


def _module_scale(config: dict, module: str, rank: int) -> float:
    def pattern_value(patterns: dict, default):
        for key, value in (patterns or {}).items():
            if module == key or module.endswith("." + key) or re.search(key, module):
                return value
        return default

    alpha = float(pattern_value(config.get("alpha_pattern"), config.get("lora_alpha", 8)))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def export_adapter(adapter_dir: str | Path, out: str | Path | None = None, *, base_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Write the LoRA adapter of ``adapter_dir`` (an adapter dir or a training OUTPUT_DIR) as GGUF.

    Returns the path written (default: ``<adapter_dir>/adapter-lora.gguf``).
    """
    import torch
    from safetensors import safe_open
    from tqdm.auto import tqdm

    found = find_adapter_dir(adapter_dir)
    if found is None:
        raise ModelError(f"{adapter_dir}: adapter_config.json non trovato / no peft adapter here", hint="pass OUTPUT_DIR or OUTPUT_DIR/adapter")
    config = read_adapter_config(found)
    if config.get("peft_type") != "LORA":
        raise ModelError(f"{found / 'adapter_config.json'}: peft_type {config.get('peft_type')!r} non supportato / only LORA adapters can become GGUF")
    if config.get("use_dora"):
        raise ModelError(f"{found / 'adapter_config.json'}: DoRA non è supportato da llama.cpp / DoRA adapters are not supported by llama.cpp", hint="merge it instead: hf-ita gguf convert")
    if config.get("modules_to_save"):
        raise ModelError(
            f"{found / 'adapter_config.json'}: modules_to_save={config['modules_to_save']} non rappresentabili come LoRA / fully trained modules cannot be a LoRA GGUF",
            hint="merge it instead: hf-ita gguf convert",
        )
    weights = found / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights}: pesi dell'adapter mancanti / adapter weights missing (safetensors required)")
    from ..models.weights import verify_safetensors

    verify_safetensors(weights)
    base = Path(base_dir) if base_dir else resolve_base_dir(found)
    base_config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    arch = architecture_for(base_config, str(base / "config.json"))
    names = arch.tensor_name_map(base_config)
    out_path = Path(out) if out else found / "adapter-lora.gguf"

    with safe_open(str(weights), framework="pt") as st:
        pairs: dict[str, dict[str, str]] = {}
        for key in st.keys():
            m = _LORA_KEY.match(key)
            if m is None:
                raise ModelError(f"{weights}: tensore {key!r} non è un peso LoRA / not a LoRA weight", hint="embedding LoRA and extra trained modules cannot be exported as a GGUF adapter")
            pairs.setdefault(m["module"], {})[m["ab"]] = key
        plan = []
        for module, ab in pairs.items():
            if set(ab) != {"A", "B"}:
                raise ModelError(f"{weights}: {module} ha solo lora_{''.join(ab)} / has only one of lora_A, lora_B")
            gguf_base = arch.gguf_name(module + ".weight", names)
            rank = int(st.get_slice(ab["A"]).get_shape()[0])
            plan.append((module, gguf_base, ab, rank, _module_scale(config, module, rank)))
        scales = {scale * rank for _, _, _, rank, scale in plan}
        uniform_alpha = scales.pop() if len(scales) == 1 else None

        with atomic_path(out_path) as tmp:
            writer = GGUFWriter(tmp, arch.name)
            try:
                writer.add_type("adapter")
                writer.add_string("adapter.type", "lora")
                writer.add_name(f"{found.parent.name if found.name == 'adapter' else found.name} LoRA")
                if uniform_alpha is not None:
                    writer.add_float32("adapter.lora.alpha", float(uniform_alpha))
                for _, gguf_base, ab, _, _ in plan:
                    for kind in ("A", "B"):
                        shape = tuple(st.get_slice(ab[kind]).get_shape())
                        writer.add_tensor_info(f"{gguf_base}.lora_{kind.lower()}", shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
                writer.write_header_to_file()
                writer.write_kv_data_to_file()
                writer.write_ti_data_to_file()
                for _, gguf_base, ab, _, scale in tqdm(plan, desc="LoRA GGUF", disable=not progress):
                    writer.write_tensor_data(st.get_tensor(ab["A"]).to(torch.float32).numpy())
                    b = st.get_tensor(ab["B"]).to(torch.float32)
                    if uniform_alpha is None:
                        b = b * scale
                    b = arch.transform(gguf_base, b, base_config)
                    writer.write_tensor_data(np.ascontiguousarray(b.numpy()))
            finally:
                writer.close()
    return out_path
