"""Benchmark: the Italian quality of a fine-tune on text nobody here wrote.

Held-out bits per byte on Debian's Italian documentation (packages debian-reference-it and
debian-faq-it, downloaded with ``apt-get download`` into a temporary directory at bench time,
unpacked with ``dpkg -x``, HTML stripped, code blocks and non-Italian paragraphs left out), and
the Italian-rate / distinct-n of answers to the held-out Italian prompts, for the base embedded
model (the baseline, same run) and a fine-tune: a training OUTPUT_DIR or an adapter directory.
Nothing downloaded is kept or committed.

    python bench/bench_italian_quality.py [OUTPUT_DIR_OR_ADAPTER] [--max-chars 30000] [--prompts 16]

Without an argument only the base model is measured. Prints one JSON line and a table; writes
bench/results/italian_quality.json. The numbers are deterministic (greedy answers): no repeats.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

from hf_ita_plugin.utils.atomic import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "italian_quality.json"
PACKAGES = ("debian-reference-it", "debian-faq-it")
_BLOCKS = {"p", "div", "li", "dd", "dt", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "title", "section"}
_SKIP = {"script", "style", "pre", "code", "tt", "kbd", "samp", "head"}


class _TextExtractor(HTMLParser):
    """Paragraph text of an HTML page, without code and scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_paragraphs(html: str) -> list[str]:
    parser = _TextExtractor()
    parser.feed(html)
    text = "".join(parser.parts)
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def debian_italian_text(max_chars: int) -> tuple[str, dict]:
    """Italian paragraphs from the two Debian packages (downloaded to a temporary directory)."""
    from hf_ita_plugin.data.language import identify

    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise SystemExit("this benchmark needs apt-get and dpkg (Debian/Ubuntu)")
    with tempfile.TemporaryDirectory(prefix="hf-ita-debian-it-") as tmp:
        tmp_path = Path(tmp)
        proc = subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"apt-get download failed: {proc.stderr.strip()[-400:]}\n(try: apt-get update)")
        for deb in sorted(tmp_path.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(tmp_path / "root")], check=True)
        pages = sorted((tmp_path / "root").rglob("*.it.html"))
        paragraphs = []
        for page in pages:
            for para in html_paragraphs(page.read_text(encoding="utf-8", errors="replace")):
                if len(para) >= 120 and identify(para).language == "it":
                    paragraphs.append(para)
    # spread the sample over all pages: every k-th paragraph until max_chars
    total = sum(len(p) for p in paragraphs)
    step = max(1, round(total / max_chars)) if max_chars else 1
    chosen, size = [], 0
    for para in paragraphs[::step]:
        if max_chars and size + len(para) > max_chars:
            break
        chosen.append(para)
        size += len(para)
    return "\n\n".join(chosen), {"pages": len(pages), "paragraphs_italian": len(paragraphs),
                                 "paragraphs_used": len(chosen), "chars_used": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("finetune", nargs="?", help="training OUTPUT_DIR or adapter directory (default: base only)")
    parser.add_argument("--max-chars", type=int, default=30_000)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (1 is fastest for a 135M model on a busy CPU)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from hf_ita_plugin.evaluation.suite import italian_prompts, load_target, resolve_target, response_quality
    from hf_ita_plugin.evaluation.metrics import bits_per_byte

    started = time.time()
    text, corpus = debian_italian_text(args.max_chars)
    target = resolve_target(args.finetune or "embedded")
    model, tokenizer = load_target(target)
    prompts = italian_prompts(args.prompts)

    def measure(label: str) -> dict:
        bpb = bits_per_byte(model, tokenizer, text, desc=f"bits/byte ({label})")
        quality = response_quality(model, tokenizer, prompts, system_prompt=target.system_prompt,
                                   max_new_tokens=args.max_new_tokens)
        return {"bits_per_byte": round(bpb.bits_per_byte, 5), "tokens": bpb.n_tokens, "bytes": bpb.n_bytes,
                **quality.metrics(), "languages": quality.languages, "sample": quality.samples[:1]}

    if target.adapter_dir is not None:
        with model.disable_adapter():
            base = measure("base")
        tuned = measure("fine-tune")
    else:
        base, tuned = measure("base"), None
    result = {
        "bench": "italian_quality",
        "corpus": {"packages": list(PACKAGES), **corpus},
        "model": target.base_id,
        "finetune": str(target.adapter_dir) if target.adapter_dir else None,
        "base": base,
        "finetune_metrics": tuned,
        "bpb_ratio_finetune_over_base": round(tuned["bits_per_byte"] / base["bits_per_byte"], 4) if tuned else None,
        "italian_rate_change": round(tuned["italian_rate"] - base["italian_rate"], 4) if tuned else None,
        "wall_s": round(time.time() - started, 1),
    }
    write_json(RESULTS, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("base", "finetune_metrics")}, ensure_ascii=False))
    print()
    print(f"Debian Italian docs: {corpus['paragraphs_used']} paragraphs, {corpus['chars_used']} characters "
          f"from {corpus['pages']} pages")
    print(f"{'metric':<22} {'base':>10} {'fine-tune':>10}")
    for key in ("bits_per_byte", "italian_rate", "distinct_1", "distinct_2", "answer_chars_mean"):
        after = f"{tuned[key]:>10.4f}" if tuned else f"{'—':>10}"
        print(f"{key:<22} {base[key]:>10.4f} {after}")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
