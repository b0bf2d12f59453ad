"""Builders shared by the Hub tests: tiny real models and training OUTPUT_DIRs laid out like the recipe's.

(No tests here; the module name only follows the tests/test_hub*.py convention of this area.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
PROMPT = "Ciao! Qual è la capitale d'Italia?"


def tiny_base(folder: Path) -> Path:
    """A tiny random Llama (2 layers, hidden 32) with the embedded SmolLM2 tokenizer, as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_ita_plugin.models.embedded import ensure_embedded_model

    embedded = ensure_embedded_model(verbose=False)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(embedded / name, folder / name)
    vocab = json.loads((embedded / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    # Every linear layer fits bitsandbytes' packed CPU kernel (outputs a multiple of 32, whole 64-blocks
    # of inputs), as in real models: on AVX512-BF16 CPUs the 4-bit tests then run that kernel.
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def make_run(out: Path, base_dir: Path, base_model_id: str | None, *, r: int = 4, seed: int = 0,
             metrics_extra: dict | None = None, bin_weights: bool = False) -> Path:
    """A training OUTPUT_DIR: adapter/ (random, non-zero LoRA), run_config.yaml, metrics.json, loss_curve.png."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_ita_plugin.config import RunConfig
    from hf_ita_plugin.rundir import RunDir, RunMetrics
    from hf_ita_plugin.training.plotting import plot_loss_curve

    run = RunDir(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear",
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(run.adapter_dir, safe_serialization=not bin_weights)
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(run.adapter_dir)
    run.write_config(RunConfig.from_preset("smollm2-135m-cpu", [f"training.output_dir={out}", "training.learning_rate=0.00031"]))
    history = [{"step": 1, "loss": 3.1}, {"step": 2, "loss": 2.7}, {"step": 2, "eval_loss": 2.9}]
    metrics = {
        "base_model": base_model_id,
        "base_model_path": str(base_dir),
        "template": "chatml",
        "quantization": "nf4",
        "data": {"train_examples": 24, "eval_examples": 6, "train_tokens": 3100, "dropped_truncated": 0,
                 "train_source": "bundled", "eval_source": "bundled-heldout"},
        "train": {"steps": 2, "epochs": 0.33, "final_loss": 2.7, "mean_loss": 2.9, "eval_loss": 2.9,
                  "trained_tokens": 3100, "tokens_per_second": 88.5, "train_runtime_s": 35.0,
                  "peak_memory_mb": {"process_rss": 2100.5}, "resumed": False},
        "eval": {"before": {"bits_per_byte": 1.4321, "response_loss": 2.61},
                 "after": {"bits_per_byte": 1.2345, "response_loss": 2.02}, "change": {}},
        "hyperparameters": {"r": r, "alpha": 2 * r, "dropout": 0.05, "target_modules": "all-linear",
                            "learning_rate": 0.00031, "compute_dtype": "float32", "double_quant": True},
        "hardware": {"platform": "Linux-test", "python": "3.11", "torch": torch.__version__, "cpu_threads": 2},
        "loss_history": history,
        "wall_time_s": 61.5,
    }
    metrics.update(metrics_extra or {})
    run.write_metrics(RunMetrics.from_dict(metrics))
    plot_loss_curve(history, run.loss_curve_path, title="test")
    return out


def adapter_logits(model, tokenizer, text: str = PROMPT) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(**{k: v.to(device) for k, v in ids.items()}).logits.float().cpu()


def reference_model(base_dir: Path, adapter_dir: Path, *, load_in_4bit: bool = False):
    """The adapter loaded locally with plain transformers + peft (the expected result of a pull)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {"dtype": torch.float32}
    if load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True,
                                                           bnb_4bit_compute_dtype=torch.float32)
        kwargs["device_map"] = {"": "cpu"}
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), **kwargs)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def push_folder(hub, token: str, repo_id: str, folder: Path, repo_type: str = "model") -> None:
    """Upload a folder with the plain huggingface_hub client (to seed the local Hub)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=token)
    api.create_repo(repo_id, repo_type=repo_type, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type)
