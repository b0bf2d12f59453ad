"""``convert``: merge (if needed) -> GGUF of each requested type -> Ollama Modelfile -> verification."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..utils.atomic import remove_stale_temps, temp_directory
from .converter import write_gguf
from .merge import ModelSource, resolve_source
from .modelfile import training_system_prompt, write_adapter_modelfile, write_modelfile
from .quant_types import QUANT_TYPES, QuantType, parse_quant_types
from .quantize import quantize_gguf
from .verify import VerificationFailed, VerifyReport, save_report, verify as verify_gguf


@dataclass
class ConvertResult:
    """Files written by :func:`convert` and their verification reports (same order as ``paths``)."""

    paths: list[Path]
    reports: list[VerifyReport] = field(default_factory=list)
    modelfiles: list[Path] = field(default_factory=list)
    merged_adapter: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


def _intermediate_type(requested: list[QuantType], model_dir: Path) -> QuantType:
    """The 16/32-bit type the K-quants are made from: a requested float type if any, else F16 (BF16 for bf16 models)."""
    for name in ("F32", "BF16", "F16"):
        if QUANT_TYPES[name] in requested:
            return QUANT_TYPES[name]
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "")
    return QUANT_TYPES["BF16"] if "bfloat16" in dtype else QUANT_TYPES["F16"]


def convert(
    model_or_output_dir: str | Path,
    quant: str | list[str] | tuple[str, ...] = ("q8_0", "Q4_K_M"),
    out_dir: str | Path | None = None,
    verify: bool = True,
    *,
    name: str | None = None,
    modelfile: bool = True,
    strict: bool = True,
    progress: bool = True,
) -> ConvertResult:
    """Export a model directory or a training OUTPUT_DIR (adapter merged first) to GGUF files.

    ``quant``: e.g. ``"q8_0,Q4_K_M"``; F32/F16/BF16/Q8_0/Q5_0/Q4_0 are written in Python, K-quants
    (Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q2_K) by llama.cpp's quantizer. Files go to ``out_dir``
    (default ``<input>/gguf``) as ``<name>-<TYPE>.gguf``, each with ``<name>-<TYPE>.Modelfile`` and,
    when ``verify``, ``<name>-<TYPE>.verify.json``. With ``strict`` a failed verification raises
    :class:`VerificationFailed` (the files and reports stay for inspection).

    Example::

        result = convert("outputs/run1", quant="q8_0,Q4_K_M")
        print(result.paths, [r.ok for r in result.reports])
    """
    source_path = Path(model_or_output_dir)
    qtypes = parse_quant_types(quant)
    if not source_path.exists():  # before anything is created
        raise ModelError(f"{source_path}: percorso inesistente / path does not exist")
    out = Path(out_dir) if out_dir else source_path / "gguf"
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out}: esiste e non è una cartella / exists and is not a directory",
                         hint="pass a folder to --output-dir")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # merged models and partial .gguf files of killed runs
    for legacy in out.glob(".hf-ita-gguf-*"):  # scratch folders of versions before pid-named ones
        shutil.rmtree(legacy, ignore_errors=True)
    base_name = _safe_name(name or source_path.resolve().name)
    result = ConvertResult(paths=[])
    try:
        with temp_directory(out, "hf-ita-gguf") as work:
            _convert_into(result, source_path, out, work, qtypes, base_name, verify=verify, modelfile=modelfile,
                          progress=progress)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed first convert leaves no empty folder behind
        raise
    if verify and strict and not result.ok:
        failed = [r.summary() for r in result.reports if not r.ok]
        raise VerificationFailed("verifica GGUF fallita / GGUF verification failed:\n  " + "\n  ".join(failed), hint="see the .verify.json reports next to the files")
    return result


def _convert_into(result: ConvertResult, source_path: Path, out: Path, work: Path, qtypes: list[QuantType],
                  base_name: str, *, verify: bool, modelfile: bool, progress: bool) -> None:
    """The body of :func:`convert`: scratch files (merged model, intermediate GGUF) go to ``work``."""
    source: ModelSource = resolve_source(source_path, work)
    result.merged_adapter = source.adapter_dir
    tok = None
    if verify or modelfile:  # transformers is the reference for both; a plain conversion does not load it
        from .tokenizer_meta import load_hf_tokenizer

        tok = load_hf_tokenizer(source.model_dir)
    config = json.loads((source.model_dir / "config.json").read_text(encoding="utf-8"))
    targets = {q.name: out / f"{base_name}-{q.name}.gguf" for q in qtypes}
    direct = [q for q in qtypes if not q.by_llama_cpp]
    kquants = [q for q in qtypes if q.by_llama_cpp]
    for q in direct:
        write_gguf(source.model_dir, targets[q.name], q, name=base_name, tokenizer=tok, progress=progress)
    if kquants:
        inter = _intermediate_type(qtypes, source.model_dir)
        inter_path = targets.get(inter.name) or work / f"{base_name}-{inter.name}.gguf"
        if not inter_path.exists():
            write_gguf(source.model_dir, inter_path, inter, name=base_name, tokenizer=tok, progress=progress)
        for q in kquants:
            quantize_gguf(inter_path, targets[q.name], q)
    result.paths = [targets[q.name] for q in qtypes]
    if modelfile:
        run_dir = source.adapter_dir.parent if source.adapter_dir is not None else source_path
        system = training_system_prompt(run_dir)
        for path in result.paths:
            try:
                result.modelfiles.append(write_modelfile(path, tok, source.model_dir, add_bos=_uses_bos(tok),
                                                         context_length=config.get("max_position_embeddings"), system=system))
            except ModelError as exc:
                result.notes.append(f"Modelfile non scritto / not written for {path.name}: {exc}")
    if verify:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(source.model_dir), dtype=torch.float32)
        for path in result.paths:
            report = verify_gguf(path, source.model_dir, tokenizer=tok, model=model, save=False)
            report.against = str(source_path)
            save_report(report)
            result.reports.append(report)
        del model


def _uses_bos(tok) -> bool:
    """Whether the tokenizer starts every text with BOS (llama.cpp / Ollama then add it themselves)."""
    return tok(" ", add_special_tokens=True)["input_ids"][:1] == [tok.bos_token_id]


def check_base_gguf(base_gguf: str | Path) -> None:
    """A :class:`ModelError` unless ``base_gguf`` is a GGUF file of a model (not of a LoRA adapter)."""
    import gguf as gguf_py

    base_gguf = Path(base_gguf)
    if not base_gguf.is_file():
        raise ModelError(f"{base_gguf}: GGUF del modello base inesistente / base model GGUF not found",
                         hint="convert the base model first: hf-ita gguf convert BASE_MODEL_DIR --quant f16")
    try:
        field = gguf_py.GGUFReader(str(base_gguf)).get_field("general.type")
    except Exception as exc:  # gguf-py raises ValueError/struct errors on foreign files
        raise ModelError(f"{base_gguf}: non è un file GGUF leggibile / not a readable GGUF file ({exc})") from None
    if field is not None and field.contents() == "adapter":
        raise ModelError(f"{base_gguf}: è un adapter, non un modello base / is an adapter GGUF, not a base model")


def adapter_modelfile(adapter_gguf: str | Path, base_gguf: str | Path, adapter_dir: str | Path) -> Path:
    """Write the Ollama Modelfile that applies the LoRA GGUF ``adapter_gguf`` (from :func:`export_adapter`)
    on ``base_gguf``: the adapter's tokenizer gives TEMPLATE and stops, the run's training system prompt
    the ``SYSTEM`` line. Raises :class:`ModelError` when the base GGUF is missing or is itself an adapter."""
    from ..models.resolve import find_adapter_dir
    from .tokenizer_meta import load_hf_tokenizer

    check_base_gguf(base_gguf)
    found = find_adapter_dir(adapter_dir) or Path(adapter_dir)
    tok = load_hf_tokenizer(found)
    run_dir = found.parent if found.name == "adapter" else found
    return write_adapter_modelfile(adapter_gguf, base_gguf, tok, found, add_bos=_uses_bos(tok),
                                   system=training_system_prompt(run_dir))
