"""Benchmark: hf-ita's streaming GGUF converter vs llama.cpp's convert_hf_to_gguf.py, same model, same run.

The reference converter comes from the llama-cpp-python sdist, downloaded with pip into a temporary
directory and run in place (never copied into this repository). Both converters run as child
processes doing the same work: the same checkpoint to one F16 GGUF, nothing else (ours through the
public ``convert`` API with ``verify=False, modelfile=False``, since the reference neither verifies nor
writes a Modelfile). Runs alternate which converter goes first; wall time and peak RSS (``os.wait4``
rusage of that child) are compared as medians. F16 throughput (source bytes / s) is compared with a
plain copy of the same safetensors bytes (``shutil.copyfile`` + fsync), both end to end (whole child
process, interpreter start included) and for the ``convert`` call alone (timed inside the child).

Models: the embedded SmolLM2-135M, and a ~1B-parameter random Llama checkpoint (bf16) generated into
a temporary directory.

    python bench/bench_gguf.py [--runs 3] [--big-runs 1] [--skip-big]
    python bench/bench_gguf.py --quality     # top-1 agreement of F16/Q8_0/Q4_K_M... with transformers instead

``--quality`` exports SmolLM2-135M to each type and scores every position of the verify suite's prompts
plus the whole bundled Italian prose (~10k positions) with :func:`hf_ita_plugin.gguf.verify.check_logits`:
raw and decisive top-1 agreement with 95% intervals (texts bootstrapped), and the tensor types in each file.

Targets: time <= 0.8x, peak RSS <= 0.5x of the reference, throughput >= 50% of a plain copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
OURS = (
    "import sys, time; from hf_ita_plugin.gguf import convert; t = time.perf_counter(); "
    "convert(sys.argv[1], quant='f16', out_dir=sys.argv[2], name='ours', verify=False, modelfile=False, progress=False); "
    "print(f'CONVERT_S {time.perf_counter() - t:.4f}')"
)


def fetch_reference(tmp: Path) -> Path:
    """Download the llama-cpp-python sdist and return the path of its convert_hf_to_gguf.py."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", LLAMA_CPP_PYTHON, "-d", str(tmp)],
                   check=True, stdout=subprocess.DEVNULL)
    archive = next(tmp.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name and ("/gguf-py/" in m.name or "/conversion/" in m.name or m.name.endswith("convert_hf_to_gguf.py"))]
        tar.extractall(tmp, members=members, filter="data")
    return next(tmp.glob("llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"))


def run_child(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB of that child, its stdout)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0); err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed: {err.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss // 1024, out.read().decode()


def make_big_llama(target: Path, tokenizer_dir: Path) -> Path:
    """A ~1B-parameter random Llama checkpoint in bf16 (SmolLM2's tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False)
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(target), safe_serialization=True)
    tok.save_pretrained(str(target))
    n = sum(p.numel() for p in model.parameters())
    del model
    return target, n


def bench_model(label: str, model_dir: Path, reference: Path, work: Path, runs: int) -> dict:
    weights = sorted(model_dir.glob("*.safetensors"))
    src_bytes = sum(f.stat().st_size for f in weights)
    ours_t, ours_m, ours_c, ref_t, ref_m, copy_t = [], [], [], [], [], []

    def ours() -> None:
        t, m, out = run_child([sys.executable, "-c", OURS, str(model_dir), str(work / "ours")])
        ours_t.append(t); ours_m.append(m)
        ours_c.append(float(next(line.split()[1] for line in out.splitlines() if line.startswith("CONVERT_S"))))
        shutil.rmtree(work / "ours")

    def reference_run() -> None:
        out = work / f"{label}-ref.gguf"
        t, m, _ = run_child([sys.executable, str(reference), str(model_dir), "--outtype", "f16", "--outfile", str(out)])
        ref_t.append(t); ref_m.append(m); out.unlink()

    for i in range(runs):
        for step in ((ours, reference_run) if i % 2 == 0 else (reference_run, ours)):  # alternate who goes first
            step()
        start = time.perf_counter()
        for k, f in enumerate(weights):
            shutil.copyfile(f, work / f"copy-{k}")
        for k in range(len(weights)):
            with open(work / f"copy-{k}", "rb+") as fh:
                os.fsync(fh.fileno())
        copy_t.append(time.perf_counter() - start)
        for k in range(len(weights)):
            (work / f"copy-{k}").unlink()
        print(f"  {label} run {i + 1}/{runs}: ours {ours_t[-1]:.1f}s (convert {ours_c[-1]:.1f}s) {ours_m[-1]} MiB | "
              f"llama.cpp {ref_t[-1]:.1f}s {ref_m[-1]} MiB | copy {copy_t[-1]:.2f}s", file=sys.stderr)
    med = statistics.median
    return {
        "model": label, "source_mib": round(src_bytes / 2**20, 1), "runs": runs,
        "ours_s": round(med(ours_t), 2), "reference_s": round(med(ref_t), 2), "time_ratio": round(med(ours_t) / med(ref_t), 3),
        "ours_peak_rss_mib": med(ours_m), "reference_peak_rss_mib": med(ref_m), "rss_ratio": round(med(ours_m) / med(ref_m), 3),
        "ours_mib_per_s": round(src_bytes / 2**20 / med(ours_t), 1), "copy_mib_per_s": round(src_bytes / 2**20 / med(copy_t), 1),
        "throughput_vs_copy": round(med(copy_t) / med(ours_t), 3),
        "ours_convert_s": round(med(ours_c), 2), "convert_throughput_vs_copy": round(med(copy_t) / med(ours_c), 3),
    }


def bench_quality(types: list[str]) -> dict:
    """Top-1 agreement with transformers of each GGUF type of SmolLM2-135M on the full Italian suite."""
    import torch
    from transformers import AutoModelForCausalLM

    from hf_ita_plugin.models.embedded import ensure_embedded_model
    from hf_ita_plugin.gguf import QUANT_TYPES, convert, italian_suite
    from hf_ita_plugin.gguf.tokenizer_meta import load_hf_tokenizer
    from hf_ita_plugin.gguf.verify import _load_llama, check_logits, tensor_type_census

    smol = ensure_embedded_model()
    tok = load_hf_tokenizer(smol)
    model = AutoModelForCausalLM.from_pretrained(str(smol), dtype=torch.float32).eval()
    texts = italian_suite.logit_texts(None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gguf-quality-") as tmp:
        result = convert(smol, quant=",".join(types), out_dir=tmp, name="smol", verify=False, modelfile=False, progress=False)
        for name, path in zip(types, result.paths):
            llm = _load_llama(path, None, None)
            try:
                logits = check_logits(llm, model, tok, texts, QUANT_TYPES[name.upper()].min_top1)
            finally:
                llm.close()
            rows.append({"type": name.upper(), "file_mib": round(path.stat().st_size / 2**20, 1), "tensor_types": tensor_type_census(path),
                         **{k: logits[k] for k in ("positions", "top1_agreement", "top1_agreement_ci95", "decisive_positions",
                                                   "top1_agreement_decisive", "top1_agreement_decisive_ci95", "max_abs_delta", "threshold")}})
            print(f"  {rows[-1]['type']}: top-1 {logits['top1_agreement']:.1%} decisive {logits['top1_agreement_decisive']:.1%} "
                  f"on {logits['positions']} positions", file=sys.stderr)
    return {"bench": "gguf_quality", "model": "SmolLM2-135M", "texts": len(texts), "results": rows}


def main_quality(types: list[str]) -> int:
    summary = bench_quality(types)
    print(json.dumps(summary))
    print(f"\n{'type':<8}{'MiB':>7}{'positions':>10}{'top-1':>8}{'95% CI':>15}{'decisive':>10}{'n dec':>7}{'95% CI':>15}  tensors")
    for r in summary["results"]:
        ci, dci = r["top1_agreement_ci95"], r["top1_agreement_decisive_ci95"]
        print(f"{r['type']:<8}{r['file_mib']:>7}{r['positions']:>10}{r['top1_agreement']:>8.1%}{f'{ci[0]:.1%}-{ci[1]:.1%}':>15}"
              f"{r['top1_agreement_decisive']:>10.1%}{r['decisive_positions']:>7}{f'{dci[0]:.1%}-{dci[1]:.1%}':>15}  "
              + ", ".join(f"{n}x{t}" for t, n in r["tensor_types"].items()))
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"bench_gguf_quality-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per converter on SmolLM2-135M (median)")
    parser.add_argument("--big-runs", type=int, default=1, help="runs per converter on the ~1B model (median)")
    parser.add_argument("--skip-big", action="store_true", help="only SmolLM2-135M")
    parser.add_argument("--quality", action="store_true", help="measure top-1 agreement with transformers instead of speed")
    parser.add_argument("--types", default="f16,q8_0,Q6_K,Q5_K_M,Q4_K_M", help="types for --quality")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.quality:
        return main_quality(args.types.split(","))
    from hf_ita_plugin.models.embedded import ensure_embedded_model

    smol = ensure_embedded_model()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        tmp = Path(tmp)
        reference = fetch_reference(tmp / "sdist")
        results.append(bench_model("SmolLM2-135M", smol, reference, tmp, args.runs))
        if not args.skip_big:
            # generated in a child: a forked child inherits the parent's RSS high-water mark
            code = f"import sys; sys.path.insert(0, {str(REPO / 'bench')!r}); from bench_gguf import make_big_llama; print(make_big_llama(__import__('pathlib').Path(sys.argv[1]), sys.argv[2])[1])"
            n_params = int(subprocess.run([sys.executable, "-c", code, str(tmp / "llama-1b"), str(smol)], check=True, capture_output=True, text=True).stdout.split()[-1])
            big = tmp / "llama-1b"
            row = bench_model("random-llama-1B", big, reference, tmp, args.big_runs)
            row["parameters"] = n_params
            results.append(row)
    summary = {"bench": "gguf_convert_f16", "ours": "convert(verify=False, modelfile=False)", "targets": {"time_ratio": 0.8, "rss_ratio": 0.5, "throughput_vs_copy": 0.5},
               "cpu_count": os.cpu_count(), "results": results}
    print(json.dumps(summary))
    print(f"\n{'model':<18}{'ours s':>9}{'ref s':>9}{'time x':>8}{'ours MiB':>10}{'ref MiB':>9}{'RSS x':>7}{'MiB/s':>8}"
          f"{'copy MiB/s':>11}{'vs copy':>8}{'convert s':>10}{'vs copy':>8}")
    for r in results:
        print(f"{r['model']:<18}{r['ours_s']:>9}{r['reference_s']:>9}{r['time_ratio']:>8}{r['ours_peak_rss_mib']:>10}"
              f"{r['reference_peak_rss_mib']:>9}{r['rss_ratio']:>7}{r['ours_mib_per_s']:>8}{r['copy_mib_per_s']:>11}"
              f"{r['throughput_vs_copy']:>8}{r['ours_convert_s']:>10}{r['convert_throughput_vs_copy']:>8}")
    print("time x / RSS x: ours over llama.cpp's convert_hf_to_gguf.py; vs copy: copy time over ours "
          "(whole process, then the convert call alone)")
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"bench_gguf-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
