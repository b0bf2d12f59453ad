"""Models: the embedded default model, loading (base, 4-bit, adapters), bitsandbytes' 4-bit CPU layout."""

from .loader import attach_adapter, load_base, load_tokenizer, quantization_config, resolve_compute_dtype, resolve_device

__all__ = ["attach_adapter", "load_base", "load_tokenizer", "quantization_config", "resolve_compute_dtype",
           "resolve_device"]
