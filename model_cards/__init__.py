"""Jinja templates of the model cards (adapter, merged, gguf), packaged as ``hf_ita_plugin.model_cards``."""
