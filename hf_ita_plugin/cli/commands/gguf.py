"""``hf-ita gguf convert|adapter|verify``: export to GGUF (llama.cpp, Ollama, LM Studio) and prove it matches."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..options import add_json, add_output_dir, add_output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gguf", help="GGUF export: convert (merge + quantize + verify), LoRA adapter, verify",
        description="Esporta in GGUF per llama.cpp / Ollama / LM Studio e verifica la parità con transformers. "
                    "Export to GGUF and verify parity with transformers.")
    sub = parser.add_subparsers(dest="gguf_command", metavar="SUBCOMMAND")
    sub.required = True

    conv = sub.add_parser(
        "convert", help="model dir or training OUTPUT_DIR -> GGUF files (adapter merged first)",
        description="Converte un modello (o un OUTPUT_DIR di training, unendo prima l'adapter LoRA) in GGUF, "
                    "scrive un Modelfile Ollama e un report di verifica accanto a ogni file. / Convert a model or a "
                    "training OUTPUT_DIR (LoRA merged first) to GGUF, with an Ollama Modelfile and a verify report per file.")
    conv.add_argument("source", help="model directory (config.json + safetensors) or training OUTPUT_DIR")
    conv.add_argument("--quant", default="q8_0,Q4_K_M", help="comma-separated types: f32,f16,bf16,q8_0,q5_0,q4_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K (default q8_0,Q4_K_M)")
    add_output_dir(conv, "output directory (default SOURCE/gguf)")
    conv.add_argument("--name", help="base name of the files (default: the source directory name)")
    conv.add_argument("--no-verify", action="store_true", help="skip the parity check with transformers")
    conv.add_argument("--no-modelfile", action="store_true", help="do not write Ollama Modelfiles")
    conv.add_argument("--allow-mismatch", action="store_true", help="exit 0 even if verification fails (reports are kept)")
    add_json(conv, "print the result as JSON")
    conv.set_defaults(func=run_convert)

    ad = sub.add_parser(
        "adapter", help="LoRA adapter -> GGUF adapter for llama.cpp --lora",
        description="Esporta l'adapter LoRA come GGUF da applicare al modello base in llama.cpp (--lora). / "
                    "Export the LoRA adapter as a GGUF that llama.cpp applies on top of the base model (--lora).")
    ad.add_argument("adapter_dir", help="adapter directory or training OUTPUT_DIR")
    add_output_file(ad, "output file (default ADAPTER_DIR/adapter-lora.gguf)")
    ad.add_argument("--base", metavar="DIR", help="local base model directory (default: from adapter_config.json)")
    ad.add_argument("--base-gguf", metavar="FILE", help="GGUF of the base model: also write an Ollama Modelfile "
                    "(FROM the base, ADAPTER the LoRA) next to the adapter")
    ad.set_defaults(func=run_adapter)

    ver = sub.add_parser(
        "verify", help="parity report of a GGUF file against a transformers model",
        description="Verifica che llama.cpp esegua il file come transformers (token, template, logit, generazioni). "
                    "Il report JSON è salvato accanto al file. / Check a GGUF against transformers; the JSON report is "
                    "saved next to the file.")
    ver.add_argument("gguf_file", help="the .gguf file")
    ver.add_argument("--against", required=True, metavar="HF_DIR", help="model directory or training OUTPUT_DIR it came from")
    ver.add_argument("--lora", metavar="ADAPTER.gguf", help="apply this GGUF LoRA adapter in llama.cpp first")
    add_json(ver, "print the full report as JSON")
    ver.set_defaults(func=run_verify)


def run_convert(args: argparse.Namespace) -> int:
    from ...gguf import convert
    from ...utils.atomic import cleanup_on_terminate

    with cleanup_on_terminate():  # a terminated convert removes its scratch folder and partial files
        result = convert(
            args.source, quant=args.quant, out_dir=args.output_dir, verify=not args.no_verify, name=args.name,
            modelfile=not args.no_modelfile, strict=not args.allow_mismatch,
        )
    if args.json:
        print(json.dumps({
            "paths": [str(p) for p in result.paths], "modelfiles": [str(p) for p in result.modelfiles],
            "reports": [r.report_path for r in result.reports], "ok": result.ok, "notes": result.notes,
        }, indent=2, ensure_ascii=False))
        return 0
    if result.merged_adapter:
        print(f"adapter unito / adapter merged: {result.merged_adapter}")
    for i, path in enumerate(result.paths):
        size = path.stat().st_size / 2**20
        print(f"scritto / written: {path} ({size:.1f} MiB)")
        if i < len(result.reports):
            print(f"  {result.reports[i].summary()}")
    for mf in result.modelfiles:
        print(f"Modelfile Ollama: {mf}   (ollama create NAME -f {mf.name})")
    for note in result.notes:
        print(f"nota / note: {note}")
    return 0 if result.ok or args.allow_mismatch else 1


def run_adapter(args: argparse.Namespace) -> int:
    from ...gguf import export_adapter

    if args.base_gguf:  # refused before anything is written
        from ...gguf.export import check_base_gguf

        check_base_gguf(args.base_gguf)
    path = export_adapter(args.adapter_dir, out=args.output, base_dir=args.base)
    print(f"adapter GGUF scritto / written: {path}   (llama.cpp: --lora {Path(path).name})")
    if args.base_gguf:
        from ...gguf.export import adapter_modelfile

        modelfile = adapter_modelfile(path, args.base_gguf, args.adapter_dir)
        print(f"Modelfile Ollama: {modelfile}   (ollama create NAME -f {modelfile.name})")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ...gguf import verify

    report = verify(args.gguf_file, against=args.against, lora_path=args.lora)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
        print(f"report: {report.report_path}")
    return 0 if report.ok else 1
