"""Prove that a GGUF file runs in llama.cpp like the Hugging Face model it came from.

Checks, each reported with numbers: llama.cpp (llama-cpp-python) loads the file; an Italian text
suite tokenizes to the same ids; the embedded chat template renders the same text as
transformers; next-token logits on Italian prompts agree (max |delta|, top-1 agreement against a
per-type threshold); greedy generations are compared. The report is saved as JSON next to the file.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.atomic import write_json
from ..errors import ModelError
from . import italian_suite
from .quant_types import QUANT_TYPES, QuantType
from .quantize import require_llama_cpp


class VerificationFailed(ModelError):
    """A GGUF file was written but does not behave like the transformers model (see its report)."""


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`; ``ok`` is True when every gated check passed."""

    gguf_path: str
    against: str
    file_type: str
    tensor_types: dict[str, int] = field(default_factory=dict)  # what the file really holds: GGML type -> tensor count
    loaded: bool = False
    load_error: str | None = None
    tokenization: dict[str, Any] = field(default_factory=dict)
    chat_template: dict[str, Any] = field(default_factory=dict)
    logits: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    report_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.loaded and not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        """One human line (Italian first, English alongside)."""
        lg = self.logits
        status = "OK" if self.ok else "FALLITO / FAILED: " + "; ".join(self.failures)
        if not self.loaded:
            return f"{Path(self.gguf_path).name}: llama.cpp non carica il file / cannot load ({self.load_error})"
        return (
            f"{Path(self.gguf_path).name} [{self.file_type}{_census(self.tensor_types)}]: top-1 {lg.get('top1_agreement', 0):.1%}{_interval(lg.get('top1_agreement_ci95'))} "
            f"on {lg.get('positions', 0)} positions "
            f"(decisive {lg.get('top1_agreement_decisive') or 0:.1%} on {lg.get('decisive_positions', 0)}, "
            f"soglia/threshold {lg.get('threshold', 0):.0%}), max|Δlogit| {lg.get('max_abs_delta', float('nan')):.4f}, "
            f"token {self.tokenization.get('matched', 0)}/{self.tokenization.get('total', 0)}, "
            f"template {'=' if self.chat_template.get('ok') else '≠'}, generazioni/generations "
            f"{self.generation.get('exact_matches', 0)}/{self.generation.get('total', 0)} -> {status}"
        )


def _census(types: dict[str, int]) -> str:
    return " = " + ", ".join(f"{n}x{t}" for t, n in types.items()) if types else ""


def _interval(ci) -> str:
    return f" [95% {ci[0]:.1%}-{ci[1]:.1%}]" if ci else ""


def tensor_type_census(gguf_path: str | Path) -> dict[str, int]:
    """How many tensors of each GGML type the file holds, most frequent first.

    A file type names the main recipe, not every tensor: llama.cpp's K-quants fall back to Q5_0/Q8_0 for
    rows whose length is not a multiple of 256 (SmolLM2's 576), and keep norms in F32.
    """
    from collections import Counter

    from gguf import GGUFReader

    counts = Counter(t.tensor_type.name for t in GGUFReader(str(gguf_path)).tensors)
    return dict(counts.most_common())


def report_path_for(gguf_path: str | Path) -> Path:
    path = Path(gguf_path)
    return path.with_name(path.stem + ".verify.json")


def _quant_type_of(metadata: dict[str, str]) -> QuantType | None:
    try:
        file_type = int(metadata.get("general.file_type", "-1"))
    except ValueError:
        return None
    return next((q for q in QUANT_TYPES.values() if int(q.file_type) == file_type), None)


def _load_llama(gguf_path: Path, lora_path: str | Path | None, threads: int | None):
    llama_cpp = require_llama_cpp()
    kwargs: dict[str, Any] = dict(
        model_path=str(gguf_path), n_ctx=1024, n_batch=512, logits_all=True, verbose=False,
        n_threads=threads or os.cpu_count() or 1, seed=0,
    )
    if lora_path is not None:
        kwargs["lora_path"] = str(lora_path)
    return llama_cpp.Llama(**kwargs)


def check_tokenization(llm, tok, texts: list[str]) -> dict[str, Any]:
    """Compare llama.cpp and transformers token ids on ``texts``, with and without special tokens."""
    mismatches = []
    matched = 0
    for text in texts:
        for with_special in (False, True):
            hf_ids = tok(text, add_special_tokens=with_special)["input_ids"]
            gg_ids = llm.tokenize(text.encode("utf-8"), add_bos=with_special, special=True)
            if list(hf_ids) == list(gg_ids):
                matched += 1
            else:
                mismatches.append({"text": text, "add_special_tokens": with_special, "transformers": list(hf_ids)[:64], "llama_cpp": list(gg_ids)[:64]})
    return {"total": 2 * len(texts), "matched": matched, "ok": not mismatches, "mismatches": mismatches[:5]}


def check_chat_template(gguf_path: Path, llm, tok, conversations: list[list[dict[str, str]]]) -> dict[str, Any]:
    """Compare the chat template embedded in the GGUF with transformers' rendering of the same conversations."""
    try:
        from ..templates.parity import check_gguf_template_parity  # written by the templates module
    except ImportError:
        check_gguf_template_parity = None
    if check_gguf_template_parity is not None:
        result = check_gguf_template_parity(gguf_path, tok, conversations)
        data = result.to_dict() if hasattr(result, "to_dict") else (dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result))
        ok = getattr(result, "ok", data.get("ok"))
        return {"method": "hf_ita_plugin.templates.parity", "ok": bool(ok), **{k: v for k, v in data.items() if k != "ok"}}
    return _inline_template_check(llm, tok, conversations)


def _inline_template_check(llm, tok, conversations) -> dict[str, Any]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    embedded = llm.metadata.get("tokenizer.chat_template")
    expected = tok.chat_template if isinstance(tok.chat_template, str) else None
    result: dict[str, Any] = {"method": "inline (llama-cpp-python Jinja2ChatFormatter)", "embedded": embedded is not None, "same_source": embedded == expected}
    if embedded is None:
        result.update(ok=expected is None, error=None if expected is None else "chat template missing from the GGUF")
        return result
    formatter = Jinja2ChatFormatter(template=embedded, eos_token=tok.eos_token or "", bos_token=tok.bos_token or "", add_generation_prompt=True)
    compared, diffs = 0, []
    for conv in conversations:
        try:
            hf_text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # the template itself rejects this conversation (e.g. no system role)
            diffs.append({"conversation": conv, "skipped": f"transformers: {exc}"[:200]})
            continue
        gg_text = formatter(messages=conv).prompt
        compared += 1
        hf_ids = tok(hf_text, add_special_tokens=False)["input_ids"]
        gg_ids = llm.tokenize(gg_text.encode("utf-8"), add_bos=False, special=True)
        if hf_text != gg_text or list(hf_ids) != list(gg_ids):
            diffs.append({"conversation": conv, "transformers": hf_text, "gguf": gg_text, "same_ids": list(hf_ids) == list(gg_ids)})
    bos = tok.bos_token
    rendered = tok.apply_chat_template(conversations[0], tokenize=False, add_generation_prompt=True)
    double_bos = bool(bos) and rendered.startswith(bos) and llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    failed = [d for d in diffs if "skipped" not in d]
    result.update(ok=compared > 0 and not failed, compared=compared, differences=diffs[:3], double_bos_risk=double_bos)
    return result


def _hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _gguf_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


DECISIVE_MARGIN = 0.5
"""A position is *decisive* when transformers' top-1 logit leads its top-2 by at least this much."""
MIN_DECISIVE_POSITIONS = 20


def agreement_interval(agree_by_text: list[np.ndarray], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% interval of top-1 agreement, bootstrapping whole texts (positions inside a text are not independent)."""
    sizes = np.array([len(a) for a in agree_by_text])
    hits = np.array([int(a.sum()) for a in agree_by_text])
    if sizes.sum() == 0 or len(sizes) < 2:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(sizes), size=(resamples, len(sizes)))
    rates = hits[pick].sum(1) / np.maximum(sizes[pick].sum(1), 1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def check_logits(llm, model, tok, prompts: list[str], threshold: float, *, max_tokens: int = 1024) -> dict[str, Any]:
    """Next-token logits of llama.cpp vs transformers over all positions of ``prompts`` (each cut at ``max_tokens``).

    Reports max/mean |delta|, raw top-1 agreement with its 95% interval (texts bootstrapped), and top-1
    agreement on decisive positions (where transformers has a clear winner, see :data:`DECISIVE_MARGIN`).
    The gate uses the decisive figure: llama.cpp also quantizes activations, which flips near-ties even
    for a perfect conversion, while a broken one (wrong rotary layout, norms, vocabulary) fails on
    decisive positions too. With too few decisive positions the raw figure is gated instead.
    """
    agree_by_text, decisive_by_text = [], []
    max_delta, delta_sum, n_values = 0.0, 0.0, 0
    for prompt in prompts:
        ids = tok(prompt, add_special_tokens=True)["input_ids"][:max_tokens]
        hf = _hf_logits(model, ids)
        gg = _gguf_logits(llm, ids)
        n_vocab = min(hf.shape[1], gg.shape[1])
        hf, gg = hf[:, :n_vocab], gg[:, :n_vocab]
        delta = np.abs(hf - gg)
        max_delta = max(max_delta, float(delta.max()))
        delta_sum += float(delta.sum(dtype=np.float64))
        n_values += delta.size
        agree_by_text.append(hf.argmax(-1) == gg.argmax(-1))
        top2 = np.partition(hf, -2, axis=-1)[:, -2:]
        decisive_by_text.append((top2[:, 1] - top2[:, 0]) >= DECISIVE_MARGIN)
    agree, decisive = np.concatenate(agree_by_text), np.concatenate(decisive_by_text)
    raw = float(agree.mean()) if len(agree) else 0.0
    dec = float(agree[decisive].mean()) if decisive.any() else None
    gated_on = "decisive" if decisive.sum() >= MIN_DECISIVE_POSITIONS else "all"
    gated = dec if gated_on == "decisive" else raw
    raw_ci = agreement_interval(agree_by_text)
    dec_ci = agreement_interval([a[d] for a, d in zip(agree_by_text, decisive_by_text)])
    return {
        "prompts": len(prompts), "positions": int(len(agree)), "max_abs_delta": max_delta,
        "mean_abs_delta": delta_sum / max(n_values, 1), "top1_agreement": raw, "top1_agreement_ci95": raw_ci,
        "decisive_positions": int(decisive.sum()), "decisive_margin": DECISIVE_MARGIN,
        "top1_agreement_decisive": dec, "top1_agreement_decisive_ci95": dec_ci, "gated_on": gated_on, "threshold": threshold,
        "ok": gated is not None and gated >= threshold,
    }


def _greedy_gguf(llm, ids: list[int], n: int, eos: set[int]) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out: list[int] = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        if nxt in eos:
            break
        llm.eval([nxt])
    return out


def _greedy_hf(model, ids: list[int], n: int, eos: set[int]) -> list[int]:
    import torch

    out: list[int] = []
    with torch.no_grad():
        result = model(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            nxt = int(result.logits[0, -1].argmax())
            out.append(nxt)
            if nxt in eos:
                break
            result = model(torch.tensor([[nxt]]), past_key_values=result.past_key_values, use_cache=True)
    return out


def check_generation(llm, model, tok, prompts: list[str], n_tokens: int) -> dict[str, Any]:
    """Greedy continuations from both runtimes: exact matches and common-prefix length (informative)."""
    eos = {t for t in (tok.eos_token_id,) if t is not None}
    samples, exact, prefix_total = [], 0, 0
    for prompt in prompts:
        ids = tok(prompt, add_special_tokens=True)["input_ids"]
        hf = _greedy_hf(model, ids, n_tokens, eos)
        gg = _greedy_gguf(llm, ids, n_tokens, eos)
        common = next((i for i, (a, b) in enumerate(zip(hf, gg)) if a != b), min(len(hf), len(gg)))
        exact += int(hf == gg)
        prefix_total += common
        samples.append({"prompt": prompt, "transformers": tok.decode(hf), "llama_cpp": tok.decode(gg), "common_prefix_tokens": common})
    return {"total": len(prompts), "exact_matches": exact, "mean_common_prefix": prefix_total / max(1, len(prompts)), "n_tokens": n_tokens, "samples": samples}


def verify(
    gguf_path: str | Path,
    against: str | Path,
    *,
    lora_path: str | Path | None = None,
    tokenizer=None,
    model=None,
    n_generate: int = 12,
    threads: int | None = None,
    save: bool = True,
) -> VerifyReport:
    """Check ``gguf_path`` against the Hugging Face model directory (or training OUTPUT_DIR) ``against``.

    The JSON report is saved next to the file (``<name>.verify.json``). With ``lora_path`` the GGUF LoRA adapter is applied in llama.cpp (then ``against`` is the merged model).
    ``tokenizer``/``model`` may be passed to reuse already-loaded transformers objects.
    """
    started = time.perf_counter()
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ModelError(f"{gguf_path}: file GGUF inesistente / GGUF file not found")
    report = VerifyReport(gguf_path=str(gguf_path), against=str(against), file_type="?")
    try:
        llm = _load_llama(gguf_path, lora_path, threads)
    except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError on a bad file
        report.load_error = str(exc)
        report.failures.append("llama.cpp cannot load the file")
        return _finish(report, started, save)
    report.loaded = True
    try:
        return _run_checks(report, llm, gguf_path, against, tokenizer, model, n_generate, started, save)
    finally:
        llm.close() if hasattr(llm, "close") else None
        del llm


def _run_checks(report, llm, gguf_path, against, tok, model, n_generate, started, save) -> VerifyReport:
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM

    from ..models.resolve import find_adapter_dir
    from .merge import resolve_source
    from .tokenizer_meta import load_hf_tokenizer

    qtype = _quant_type_of(llm.metadata)
    report.file_type = qtype.name if qtype else llm.metadata.get("general.file_type", "?")
    report.tensor_types = tensor_type_census(gguf_path)
    threshold = qtype.min_top1 if qtype else 0.9
    with tempfile.TemporaryDirectory(prefix=".hf-ita-verify-", dir=gguf_path.parent) as work:
        model_dir = Path(against)
        if find_adapter_dir(model_dir) is not None and (tok is None or model is None):
            model_dir = resolve_source(model_dir, Path(work)).model_dir  # OUTPUT_DIR: compare with the merged model
        tok = tok if tok is not None else load_hf_tokenizer(model_dir)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        model.eval()
    report.tokenization = check_tokenization(llm, tok, italian_suite.TOKENIZATION_TEXTS)
    if not report.tokenization["ok"]:
        report.failures.append("tokenization differs from transformers")
    if getattr(tok, "chat_template", None):
        report.chat_template = check_chat_template(gguf_path, llm, tok, italian_suite.CONVERSATIONS)
        if not report.chat_template.get("ok"):
            report.failures.append("chat template renders differently")
    else:
        report.chat_template = {"ok": True, "note": "no chat template"}
    report.logits = check_logits(llm, model, tok, italian_suite.logit_texts(), threshold)
    if not report.logits["ok"]:
        key = "top1_agreement_decisive" if report.logits["gated_on"] == "decisive" else "top1_agreement"
        report.failures.append(f"top-1 agreement ({report.logits['gated_on']} positions) {report.logits[key]:.1%} < {threshold:.0%}")
    report.generation = check_generation(llm, model, tok, italian_suite.GENERATION_PROMPTS, n_generate)
    return _finish(report, started, save)


def save_report(report: VerifyReport) -> Path:
    """Write ``report`` as JSON next to its GGUF file (atomically) and return the path."""
    path = report_path_for(report.gguf_path)
    report.report_path = str(path)
    write_json(path, report.to_dict())
    return path


def _finish(report: VerifyReport, started: float, save: bool) -> VerifyReport:
    report.seconds = round(time.perf_counter() - started, 2)
    if save:
        save_report(report)
    return report
