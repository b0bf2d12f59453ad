"""Loading models: compute dtype, base models in full precision or 4-bit, adapters on top.

One way to load, shared by training, evaluation, Hub pull, chat, GGUF merge and the data teacher:

- :func:`quantization_config`: bitsandbytes 4-bit (NF4 or FP4, optional double quantization);
- :func:`load_base`: a causal LM from a local folder or a Hub id, full precision or 4-bit, with a
  readable :class:`~hf_ita_plugin.errors.ModelError` naming the model when it cannot be loaded;
- :func:`attach_adapter`: a peft adapter on top (embeddings resized when the adapter's tokenizer
  is larger), trainable or frozen;
- :func:`load_tokenizer`: the adapter's tokenizer when it carries one, else the base model's.

Example::

    model = load_base("HuggingFaceTB/SmolLM2-135M-Instruct", quantization="nf4")
    tokenizer = load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct", adapter_dir="run/adapter")
    model = attach_adapter(model, "run/adapter", tokenizer=tokenizer).eval()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError, bilingual

QUANT_TYPES = ("nf4", "fp4")
"""bitsandbytes' 4-bit data types."""


def resolve_compute_dtype(name: str, *, training: bool = False):
    """``auto`` -> bfloat16 on GPUs that support it, float16 on older GPUs, float32 on a CPU; for
    training (``training=True``) on a CPU that computes bf16 natively (AVX512-BF16/AMX), bfloat16:
    measured faster than fp32 there (``bench/results/recipe-throughput.json``). Inference on a CPU stays
    float32, as the model card's snippets load it, so local and pulled models give the same logits."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        from ..utils.hardware import has_native_bf16

        return torch.bfloat16 if training and has_native_bf16() else torch.float32
    return getattr(torch, name)


def _dtype(value, *, training: bool = False):
    """A torch dtype from a dtype, its name or ``auto`` (see :func:`resolve_compute_dtype`); None stays None."""
    return resolve_compute_dtype(value, training=training) if isinstance(value, str) else value


def quantization_config(quant_type: str = "nf4", *, double_quant: bool = True, compute_dtype="auto",
                        quant_storage=None):
    """The ``BitsAndBytesConfig`` for 4-bit weights of ``quant_type`` (``nf4`` or ``fp4``); ``quant_storage``
    (a dtype or its name; None: uint8) is the dtype the packed weights are stored in (FSDP: the compute dtype)."""
    from transformers import BitsAndBytesConfig

    if quant_type not in QUANT_TYPES:
        raise ConfigError(f"quantization: serve nf4 o fp4 / expected nf4 or fp4, got {quant_type!r}")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=_dtype(compute_dtype),
                              **({"bnb_4bit_quant_storage": _dtype(quant_storage)} if quant_storage else {}))


def resolve_device(device: str | None) -> str | None:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cpu``/``cuda``/None unchanged."""
    if device is None or device in ("cpu", "cuda"):
        return device
    if device != "auto":
        raise ConfigError(bilingual("device deve essere auto, cpu o cuda", f"device must be auto, cpu or cuda, got {device!r}"))
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _fsdp_ram_efficient_loading() -> bool:
    from transformers.distributed.fsdp import is_fsdp_enabled

    return is_fsdp_enabled()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_base(name_or_path: str | Path, *, revision: str | None = None, quantization: str | None = None,
              double_quant: bool = True, compute_dtype: Any = "auto", dtype: Any = None, device: str | None = None,
              attn_implementation: str | None = None, allow_pickle: bool = False, trust_remote_code: bool = False,
              token: str | bool | None = None, training: bool = False, what: str | None = None,
              hint: str | None = None, quant_storage: Any = None):
    """Load the causal LM ``name_or_path`` (local folder or Hub id at ``revision``).

    ``quantization`` ``nf4``/``fp4`` loads 4-bit weights with bitsandbytes (``compute_dtype``,
    ``double_quant``, ``quant_storage``), placed on the GPU when there is one (this process's own,
    ``$LOCAL_RANK``, in a multi-process run), else the CPU; ``dtype`` defaults to
    the compute dtype then. Without quantization ``dtype`` (a torch dtype, its name or ``auto``;
    None: transformers' default) and ``device`` (``cpu``, ``cuda``, ``auto``; None: where
    transformers puts it) apply. Weights must be safetensors unless ``allow_pickle``. A 4-bit model
    loaded for inference (``training=False``) lets bitsandbytes pack only the layers its CPU kernel
    handles (:func:`hf_ita_plugin.models.quant_layout.for_inference`); training code calls
    :func:`~hf_ita_plugin.models.quant_layout.for_training` itself. Failures raise
    :class:`ModelError` naming the model (``what``, default ``model 'NAME'``).
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"use_safetensors": None if allow_pickle else True}
    for key, value in (("revision", revision), ("token", token), ("attn_implementation", attn_implementation)):
        if value is not None:
            kwargs[key] = value
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    if quantization:
        import torch

        compute = _dtype(compute_dtype, training=training)
        kwargs["quantization_config"] = quantization_config(quantization, double_quant=double_quant,
                                                            compute_dtype=compute, quant_storage=quant_storage)
        gpu = resolve_device(device or "auto") == "cuda" and torch.cuda.is_available()
        if not (gpu and _fsdp_ram_efficient_loading()):  # else FSDP loads on rank 0 and shards itself
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))} if gpu else {"": "cpu"}
        kwargs["dtype"] = _dtype(dtype, training=training) or compute
    elif dtype is not None:
        kwargs["dtype"] = _dtype(dtype, training=training)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as exc:
        label = what or f"model {str(name_or_path)!r}"
        raise ModelError(f"{label}: caricamento fallito / cannot load it ({_first_line(exc)})",
                         hint=hint or "check the path or Hub id, your access to it, and that it holds a causal LM"
                         ) from None
    if quantization:
        if not training:
            from . import quant_layout

            quant_layout.for_inference(model)
    else:
        target = resolve_device(device)
        if target is not None:
            model = model.to(target)
    return model


def attach_adapter(model, adapter_dir: str | Path, *, tokenizer=None, trainable: bool = False,
                   allow_pickle: bool = False):
    """Wrap ``model`` with the peft adapter in ``adapter_dir`` (a ``PeftModel``).

    The adapter weights are verified in full first (:func:`hf_ita_plugin.models.weights.check_adapter_weights`);
    pickle-only weights are refused unless ``allow_pickle``. When ``tokenizer`` (the adapter's) has more tokens than the model's embeddings, the embeddings
    are resized first, as training did. ``trainable`` keeps the adapter weights trainable.
    """
    from peft import PeftModel

    from .weights import check_adapter_weights

    check_adapter_weights(adapter_dir, allow_pickle=allow_pickle)
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    except (OSError, ValueError) as exc:
        raise ModelError(f"adapter {str(adapter_dir)!r}: caricamento fallito / cannot load it ({_first_line(exc)})",
                         hint="expected a peft adapter folder (adapter_config.json + adapter_model.safetensors)"
                         ) from None


def load_tokenizer(name_or_path: str | Path, *, adapter_dir: str | Path | None = None, revision: str | None = None,
                   token: str | bool | None = None, trust_remote_code: bool = False):
    """The tokenizer of ``adapter_dir`` when it holds one (its chat template included), else of ``name_or_path``."""
    from transformers import AutoTokenizer

    source = name_or_path
    if adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").is_file():
        source, revision = adapter_dir, None
    kwargs: dict[str, Any] = {k: v for k, v in (("revision", revision), ("token", token)) if v is not None}
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    try:
        return AutoTokenizer.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"tokenizer {str(source)!r}: caricamento fallito / cannot load it ({_first_line(exc)})") from None
