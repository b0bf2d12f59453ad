"""Supported model architectures: how a Hugging Face config and its tensors map onto GGUF.

Each :class:`Architecture` knows its GGUF architecture name, writes its hyperparameters, maps
tensor names with the ``gguf`` package's tensor name map, and applies the per-tensor fixes
llama.cpp expects (rotary permutation of q/k for Llama, ``norm + 1`` for Gemma).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gguf
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFWriter, RopeScalingType

from ..errors import ModelError


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """Rope settings of the full-attention layers, old (``rope_theta``) or new (``rope_parameters``) style."""
    params = dict(config.get("rope_parameters") or {})
    if "full_attention" in params:
        params = dict(params["full_attention"])
    legacy = config.get("rope_scaling") or {}
    for key, value in legacy.items():
        params.setdefault("rope_type" if key == "type" else key, value)
    if "rope_theta" not in params and "rope_theta" in config:
        params["rope_theta"] = config["rope_theta"]
    return params


def head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def permute_rotary(weight, n_head: int):
    """Reorder q/k projection rows from Hugging Face's half-split rotary layout to llama.cpp's interleaved one."""
    rows = weight.shape[0]
    rest = weight.shape[1:]
    return weight.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(weight.shape)


@dataclass(frozen=True)
class Architecture:
    """How one Hugging Face architecture is written as GGUF."""

    hf_class: str
    gguf_arch: MODEL_ARCH
    permute_qk: bool = False
    norm_plus_one: bool = False
    extra_hparams: Callable[[GGUFWriter, dict[str, Any]], None] | None = None

    @property
    def name(self) -> str:
        return MODEL_ARCH_NAMES[self.gguf_arch]

    def tensor_name_map(self, config: dict[str, Any]) -> gguf.TensorNameMap:
        return gguf.get_tensor_name_map(self.gguf_arch, int(config["num_hidden_layers"]))

    def gguf_name(self, hf_name: str, names: gguf.TensorNameMap) -> str:
        """GGUF name of a Hugging Face tensor, or a ModelError naming the tensor."""
        mapped = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ModelError(
                f"tensore non riconosciuto / unknown tensor {hf_name!r} for architecture {self.hf_class}",
                hint="the checkpoint has weights this converter does not know how to place in GGUF",
            )
        return mapped

    def permutes(self, gguf_name: str) -> bool:
        """Whether ``gguf_name``'s rows are reordered (rotary q/k); a pure layout change, valid in any dtype."""
        return self.permute_qk and gguf_name.endswith(("attn_q.weight", "attn_k.weight"))

    def shifts_values(self, gguf_name: str) -> bool:
        """Whether ``gguf_name``'s values change (Gemma's ``norm + 1``); needs a float tensor."""
        return self.norm_plus_one and gguf_name.endswith("norm.weight")

    def transform(self, gguf_name: str, tensor, config: dict[str, Any]):
        """Apply the layout fixes llama.cpp expects to one tensor (numpy array or torch tensor).

        Row permutations work on any dtype (raw BF16 bits included); ``norm + 1`` needs float values.
        """
        if self.permute_qk and gguf_name.endswith("attn_q.weight"):
            return permute_rotary(tensor, int(config["num_attention_heads"]))
        if self.permute_qk and gguf_name.endswith("attn_k.weight"):
            return permute_rotary(tensor, int(config.get("num_key_value_heads") or config["num_attention_heads"]))
        if self.norm_plus_one and gguf_name.endswith("norm.weight"):
            return tensor + 1
        return tensor

    def write_hparams(self, writer: GGUFWriter, config: dict[str, Any]) -> None:
        """Write the architecture hyperparameters (sizes, heads, norms, rope) into ``writer``."""
        n_head = int(config["num_attention_heads"])
        writer.add_context_length(int(config.get("max_position_embeddings") or 4096))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_block_count(int(config["num_hidden_layers"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_head_count(n_head)
        writer.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))
        writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
        dim = head_dim(config)
        if dim != int(config["hidden_size"]) // n_head or self.gguf_arch in (MODEL_ARCH.GEMMA2, MODEL_ARCH.GEMMA3):
            writer.add_key_length(dim)
            writer.add_value_length(dim)
        writer.add_rope_dimension_count(dim)
        rope = rope_parameters(config)
        if rope.get("rope_theta") is not None:
            writer.add_rope_freq_base(float(rope["rope_theta"]))
        _write_rope_scaling(writer, rope, self.hf_class)
        if self.extra_hparams is not None:
            self.extra_hparams(writer, config)


def _write_rope_scaling(writer: GGUFWriter, rope: dict[str, Any], hf_class: str) -> None:
    kind = rope.get("rope_type") or "default"
    if kind == "default":
        return
    if kind == "linear":
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        if rope.get("original_max_position_embeddings"):
            writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    elif kind == "llama3":
        pass  # written as the rope_freqs tensor (see rope_freqs_tensor)
    else:
        raise ModelError(f"{hf_class}: rope scaling {kind!r} non supportato / not supported", hint="supported: default, linear, yarn, llama3")


def rope_freqs_tensor(model_dir, config: dict[str, Any]):
    """Llama-3.x rope frequency factors (``rope_freqs.weight``, float32 numpy) computed by transformers, or None.

    Only these checkpoints import torch/transformers during a conversion.
    """
    if (rope_parameters(config).get("rope_type") or "default") != "llama3":
        return None
    import torch
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf_config = AutoConfig.from_pretrained(str(model_dir))
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_config, torch.device("cpu"))
    base = float(rope_parameters(config)["rope_theta"])
    dim = head_dim(config)
    plain = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    return (plain / scaled).to(torch.float32).numpy()


def _sliding_layers(config: dict[str, Any]) -> list[bool] | None:
    """Per-layer sliding-window flags from ``layer_types`` (None when the config does not list them)."""
    types = config.get("layer_types")
    if not types:
        return None
    if len(types) != int(config["num_hidden_layers"]):
        raise ModelError(f"config.json: layer_types ha {len(types)} voci per {config['num_hidden_layers']} layer / layer_types does not match num_hidden_layers")
    return [t == "sliding_attention" for t in types]


def _check_gemma_attention_scale(config: dict[str, Any], layers_of_27b: int) -> None:
    """llama.cpp derives the query scale from the shapes, not from ``query_pre_attn_scalar``: refuse a mismatch.

    It uses ``1/sqrt(hidden_size / num_attention_heads)`` for the 27B layer count and ``1/sqrt(head_dim)``
    otherwise; a checkpoint with another ``query_pre_attn_scalar`` would silently compute different attention.
    """
    scalar = config.get("query_pre_attn_scalar")
    if scalar is None:
        return
    n_layer = int(config["num_hidden_layers"])
    expected = int(config["hidden_size"]) // int(config["num_attention_heads"]) if n_layer == layers_of_27b else head_dim(config)
    if float(scalar) != float(expected):
        raise ModelError(
            f"config.json: query_pre_attn_scalar={scalar} ma llama.cpp usa {expected} / llama.cpp scales queries by 1/sqrt({expected}), "
            f"the model by 1/sqrt({scalar})",
            hint="llama.cpp would compute different attention for this checkpoint; it cannot be exported faithfully",
        )


def _write_sliding_window(writer: GGUFWriter, config: dict[str, Any]) -> None:
    window = config.get("sliding_window")
    pattern = _sliding_layers(config)
    if not window or (pattern is not None and not any(pattern)):
        return
    writer.add_sliding_window(int(window))
    if pattern is not None:
        writer.add_sliding_window_pattern(pattern)  # per layer: llama.cpp's default period may not match this checkpoint


def _gemma2_hparams(writer: GGUFWriter, config: dict[str, Any]) -> None:
    _check_gemma_attention_scale(config, layers_of_27b=46)
    if config.get("attn_logit_softcapping") is not None:
        writer.add_attn_logit_softcapping(float(config["attn_logit_softcapping"]))
    if config.get("final_logit_softcapping") is not None:
        writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
    _write_sliding_window(writer, config)


def _gemma3_hparams(writer: GGUFWriter, config: dict[str, Any]) -> None:
    _check_gemma_attention_scale(config, layers_of_27b=62)
    if config.get("attn_logit_softcapping") is not None:
        raise ModelError("config.json: attn_logit_softcapping non è supportato da llama.cpp per gemma3 / not applied by llama.cpp's gemma3")
    if config.get("final_logit_softcapping") is not None:
        writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
    _write_sliding_window(writer, config)
    local = (config.get("rope_parameters") or {}).get("sliding_attention") or {}
    local_theta = local.get("rope_theta", config.get("rope_local_base_freq"))
    if local_theta is not None:
        if (local.get("rope_type") or "default") != "default":
            raise ModelError(f"config.json: rope {local['rope_type']!r} sugli strati locali non supportato / not supported on sliding layers")
        writer.add_rope_freq_base_swa(float(local_theta))


ARCHITECTURES: dict[str, Architecture] = {
    a.hf_class: a
    for a in (
        Architecture("LlamaForCausalLM", MODEL_ARCH.LLAMA, permute_qk=True),
        Architecture("MistralForCausalLM", MODEL_ARCH.LLAMA, permute_qk=True),
        Architecture("Qwen2ForCausalLM", MODEL_ARCH.QWEN2),
        Architecture("Gemma2ForCausalLM", MODEL_ARCH.GEMMA2, norm_plus_one=True, extra_hparams=_gemma2_hparams),
        Architecture("Gemma3ForCausalLM", MODEL_ARCH.GEMMA3, norm_plus_one=True, extra_hparams=_gemma3_hparams),
    )
}
"""Hugging Face ``architectures`` class -> GGUF description."""


def architecture_for(config: dict[str, Any], where: str = "config.json") -> Architecture:
    """The :class:`Architecture` of a checkpoint config, or a ModelError listing the supported ones."""
    classes = config.get("architectures") or []
    for cls in classes:
        if cls in ARCHITECTURES:
            return ARCHITECTURES[cls]
    raise ModelError(
        f"{where}: architettura non supportata / unsupported architecture {classes or config.get('model_type')!r}",
        hint="supported: " + ", ".join(ARCHITECTURES),
    )


def is_tied(config: dict[str, Any]) -> bool:
    """Whether the output head shares the token embedding (then no ``output.weight`` is written)."""
    default = config.get("model_type", "").startswith("gemma")
    return bool(config.get("tie_word_embeddings", default))
