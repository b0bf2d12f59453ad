"""bitsandbytes' packed 4-bit CPU layout: never while training, only where it works.

On CPUs with AVX512-BF16 (most Xeon and EPYC servers since 2020), bitsandbytes 0.50 converts a
``Linear4bit`` weight to a packed layout the first time the layer runs in eval mode without
grad (``_convert_weight_packed_for_cpu``) and keeps it. Two consequences:

* **Gradients stop.** With the packed layout ``matmul_4bit`` calls ``gemv_4bit``, which has no
  autograd kernel: after one evaluation (the recipe's "before" pass, or the trainer's periodic
  eval) no gradient flows through that frozen base layer any more, and LoRA training is silently
  wrong. :func:`for_training` turns the conversion off for every 4-bit layer and converts back any
  layer already packed.
* **Some shapes crash.** The packed layout needs ``out_features % 32 == 0`` and whole
  quantization blocks along ``in_features``; other layers fail with ``shape '[32, 0]' is
  invalid``. :func:`for_inference` keeps the (faster) packed path for the layers that fit and the
  standard path for the others.

The switch is the layer's own ``support_avx512bf16_for_cpu`` attribute, which bitsandbytes sets
from the CPU at construction and reads in ``forward``; versions without it need nothing here.
"""

from __future__ import annotations

import warnings

_FLAG = "support_avx512bf16_for_cpu"
_CPU_HAS_IT = "_hf_ita_cpu_supports_packed"
_PACK_BLOCK_N = 32  # bitsandbytes packs 32 output rows together


def _four_bit_layers(model):
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:  # bitsandbytes not installed: no 4-bit layers
        return []
    return [m for m in model.modules() if isinstance(m, Linear4bit) and hasattr(m, _FLAG)]


def is_packed(layer) -> bool:
    """Whether ``layer``'s weight is in bitsandbytes' packed CPU layout now."""
    state = getattr(layer.weight, "quant_state", None)
    return bool(getattr(state, "packing_format_for_cpu", False))


def can_pack(layer) -> bool:
    """Whether bitsandbytes' packed CPU kernel handles ``layer``'s shape."""
    state = getattr(layer.weight, "quant_state", None)
    blocksize = getattr(state, "blocksize", None) or getattr(layer.weight, "blocksize", 64)
    return (layer.out_features % _PACK_BLOCK_N == 0 and layer.in_features >= blocksize
            and layer.in_features % blocksize == 0)


def _unpack(layer) -> None:
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    layer.weight.data, state = _convert_weight_packed_for_cpu_inverse(layer.weight.data, layer.weight.quant_state)
    layer.weight.quant_state = state
    if hasattr(layer, "quant_state"):
        layer.quant_state = state


def _set_packing(model, allow) -> dict[str, int]:
    counts = {"layers": 0, "packable": 0, "unpacked": 0}
    for layer in _four_bit_layers(model):
        counts["layers"] += 1
        if not hasattr(layer, _CPU_HAS_IT):
            setattr(layer, _CPU_HAS_IT, bool(getattr(layer, _FLAG)))
        want = allow(layer) and getattr(layer, _CPU_HAS_IT)
        counts["packable"] += int(want)
        if not want and is_packed(layer):
            _unpack(layer)
            counts["unpacked"] += 1
        setattr(layer, _FLAG, want)
    return counts


def for_training(model) -> dict[str, int]:
    """Keep every 4-bit layer of ``model`` in the layout gradients flow through.

    Call it before the first forward pass of a training run (evaluations included). Layers an
    earlier evaluation already packed are converted back; that conversion re-quantizes the
    double-quantized scales from bfloat16, so a warning says so. Returns counts of the layers seen
    and converted back.
    """
    counts = _set_packing(model, lambda layer: False)
    if counts["unpacked"]:
        warnings.warn(f"hf-ita: {counts['unpacked']} 4-bit layers had been packed for CPU inference by an earlier "
                      "evaluation; converted back so gradients flow (their scales were rounded to bfloat16)",
                      stacklevel=2)
    return counts


def for_inference(model) -> dict[str, int]:
    """Let bitsandbytes pack the 4-bit layers whose shapes its CPU kernel handles, and no others.

    On CPUs without AVX512-BF16 nothing changes. Returns counts of the layers seen and of those
    allowed to pack.
    """
    return _set_packing(model, can_pack)
