"""Synthetic Italian Q&A from taxonomy seeds, written by a teacher model, then cleaned and deduplicated.

A teacher is any of:

- a local transformers model directory (or ``embedded``: the embedded SmolLM2-135M-Instruct);
- a llama.cpp GGUF file (``*.gguf``, or ``embedded-gguf``), run with llama-cpp-python;
- an OpenAI-compatible endpoint URL (``http(s)://host:port[/v1]``), spoken to with
  ``POST /v1/chat/completions``; the API key, if needed, comes from ``$HF_ITA_TEACHER_API_KEY``
  (or ``$OPENAI_API_KEY``) and is never written anywhere.

For every leaf of the taxonomy the teacher is shown the task (or domain), a context passage (the
leaf's documents or seed contexts) and a few seed pairs, and asked for new pairs in the format
``Domanda: ... / Risposta: ...``. The parsed pairs, preceded by the seeds themselves, go through
the same pipeline as ``hf-ita data prepare`` (cleaning, dedup: copies of a seed are dropped as
duplicates); a reply with no parsable pair is reported as ``unparseable``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ..errors import ConfigError, ModelError, bilingual
from .loaders import Example, InvalidRow, LoadedData
from .prepare import PrepareOptions, PrepareResult, prepare_examples, write_prepared
from .report import preview
from .taxonomy import TaxonomyLeaf, load_taxonomy

API_KEY_ENV = ("HF_ITA_TEACHER_API_KEY", "OPENAI_API_KEY")
SYSTEM_PROMPT = ("Sei un esperto che scrive dati di addestramento in italiano corretto e naturale. "
                 "Rispondi solo con coppie nel formato richiesto.")
CONTEXT_CHARS = 1500


class Teacher(Protocol):
    """Anything that answers a chat: ``chat(messages, ...) -> text``."""

    name: str

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int, temperature: float, seed: int) -> str: ...


# ---------------------------------------------------------------------- teachers
class TransformersTeacher:
    """A local transformers causal LM with a chat template."""

    def __init__(self, path: str):
        from ..models.loader import load_base, load_tokenizer

        self.name = path
        hint = "pass a local model directory, a .gguf file or an OpenAI-compatible URL"
        self.tokenizer = load_tokenizer(path)
        self.model = load_base(path, allow_pickle=True, what=f"the teacher model {path!r}", hint=hint).eval()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(bilingual("il teacher non ha un chat template", "the teacher has no chat template", where=repr(path)), hint="use an instruct/chat model")

    def chat(self, messages, *, max_new_tokens, temperature, seed):
        from ..inference.generate import generate

        return generate(self.model, self.tokenizer, messages, max_new_tokens=max_new_tokens,
                        temperature=temperature if temperature > 0 else None, top_p=0.95, seed=seed)


class LlamaCppTeacher:
    """A GGUF model run by llama-cpp-python."""

    def __init__(self, path: str, *, n_ctx: int = 4096):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError(bilingual("un teacher .gguf richiede llama-cpp-python", "a .gguf teacher needs llama-cpp-python"),
                             hint="pip install 'hf-ita-plugin[gguf]'  (or: pip install llama-cpp-python)") from None
        if not Path(path).is_file():
            raise ModelError(bilingual("file GGUF del teacher non trovato", "teacher GGUF file not found", where=path))
        self.name = Path(path).name
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)

    def chat(self, messages, *, max_new_tokens, temperature, seed):
        out = self.llm.create_chat_completion(messages=messages, max_tokens=max_new_tokens,
                                              temperature=temperature, seed=seed)
        return out["choices"][0]["message"]["content"] or ""


class OpenAICompatibleTeacher:
    """Any server speaking ``POST /v1/chat/completions`` (vLLM, TGI, llama.cpp server, OpenAI...)."""

    def __init__(self, url: str, *, model: str | None = None, timeout: float = 120.0):
        base = url.rstrip("/")
        if base.endswith("/chat/completions"):
            self.endpoint = base
        elif base.endswith("/v1"):
            self.endpoint = base + "/chat/completions"
        else:
            self.endpoint = base + "/v1/chat/completions"
        self.name = url
        self.model = model or "default"
        self.timeout = timeout

    def chat(self, messages, *, max_new_tokens, temperature, seed):
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                           "temperature": temperature, "seed": seed}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise ModelError(bilingual(f"l'endpoint del teacher ha risposto HTTP {exc.code}",
                                       f"the teacher endpoint answered HTTP {exc.code}: {detail}", where=self.endpoint),
                             hint="check the URL, the --teacher-model name and $HF_ITA_TEACHER_API_KEY") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelError(bilingual("endpoint del teacher non raggiungibile", f"cannot reach the teacher endpoint: {reason}",
                                       where=self.endpoint)) from None
        except json.JSONDecodeError:
            raise ModelError(bilingual("l'endpoint del teacher non ha risposto in JSON", "the teacher endpoint did not answer JSON",
                                       where=self.endpoint)) from None
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ModelError(bilingual("risposta inattesa dall'endpoint del teacher",
                                       f"unexpected reply from the teacher endpoint: {str(payload)[:200]}", where=self.endpoint),
                             hint="the server must speak the OpenAI chat completions protocol") from None


def make_teacher(spec: str, *, model: str | None = None) -> Teacher:
    """A teacher from ``--teacher``: URL, ``.gguf`` path, model directory, ``embedded`` or ``embedded-gguf``."""
    if spec.startswith(("http://", "https://")):
        return OpenAICompatibleTeacher(spec, model=model)
    if spec == "embedded":
        from ..models.embedded import ensure_embedded_model

        return TransformersTeacher(str(ensure_embedded_model()))
    if spec == "embedded-gguf":
        from ..models.embedded import embedded_gguf_path

        return LlamaCppTeacher(str(embedded_gguf_path()))
    if spec.endswith(".gguf"):
        return LlamaCppTeacher(spec)
    if Path(spec).expanduser().is_dir():
        return TransformersTeacher(str(Path(spec).expanduser()))
    raise ConfigError(bilingual(f"--teacher {spec!r} non è un URL, un file .gguf, una cartella di modello, 'embedded' o 'embedded-gguf'",
                                f"--teacher {spec!r} is not a URL, a .gguf file, a model directory, 'embedded' or 'embedded-gguf'"),
                      hint="e.g. --teacher http://localhost:8000/v1  or  --teacher ./models/my-instruct")


# ---------------------------------------------------------------------- prompts and parsing
def build_prompt(leaf: TaxonomyLeaf, *, n_pairs: int, round_index: int = 0, shots: int = 3) -> list[dict[str, str]]:
    """The chat asking the teacher for ``n_pairs`` new pairs for ``leaf`` (seeds rotate by round)."""
    seeds = leaf.seeds
    chosen = [seeds[(round_index * shots + k) % len(seeds)] for k in range(min(shots, len(seeds)))]
    context = ""
    if leaf.documents:
        doc = leaf.documents[round_index % len(leaf.documents)].text
        start = (round_index * CONTEXT_CHARS) % max(1, len(doc))
        context = doc[start : start + CONTEXT_CHARS]
    elif any(s.context for s in chosen):
        context = next(s.context for s in chosen if s.context)
    kind = {"knowledge": "conoscenza", "foundational_skills": "abilità di base",
            "compositional_skills": "abilità composita"}[leaf.kind]
    lines = [f"Argomento ({kind}): {leaf.description.strip()}", ""]
    if context:
        lines += ["Testo di riferimento (le risposte devono basarsi su questo testo):", context.strip(), ""]
    lines += ["Esempi:", ""]
    for seed in chosen:
        lines += [f"Domanda: {seed.question.strip()}", f"Risposta: {seed.answer.strip()}", ""]
    lines += [f"Scrivi {n_pairs} nuove coppie di domanda e risposta, diverse dagli esempi, in italiano, "
              "nello stesso formato (Domanda: ... / Risposta: ...), separate da una riga vuota."]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


_Q = r"(?:\d+[.)]\s*)?\**\s*(?:Domanda|Question|D)\s*\**\s*[:：]\s*\**\s*"
_A = r"\**\s*(?:Risposta|Answer|R)\s*\**\s*[:：]\s*\**\s*"
_PAIR = re.compile(rf"(?:^|\n)\s*{_Q}(?P<q>.+?)\n\s*{_A}(?P<a>.+?)(?=\n\s*{_Q}|\Z)", re.S | re.I)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``(question, answer)`` pairs in a teacher reply written as ``Domanda: ... / Risposta: ...``.

    >>> parse_pairs("Domanda: Chi scrisse la Divina Commedia?\\nRisposta: Dante Alighieri.")
    [('Chi scrisse la Divina Commedia?', 'Dante Alighieri.')]
    """
    pairs = []
    for match in _PAIR.finditer(text):
        q, a = match.group("q").strip(), match.group("a").strip()
        if q and a:
            pairs.append((q, a))
    return pairs


# ---------------------------------------------------------------------- the run
@dataclass
class GenerateOptions:
    rounds: int = 2
    """Requests per leaf."""
    pairs_per_request: int = 5
    max_new_tokens: int = 768
    temperature: float = 0.7
    seed: int = 0
    include_seeds: bool = True
    """Keep the seeds in the output (and drop generated copies of them as duplicates)."""
    prepare: PrepareOptions = field(default_factory=PrepareOptions)


@dataclass
class Generation:
    """Raw teacher replies (for audit) and the rows they became."""

    loaded: LoadedData
    replies: list[dict[str, Any]]


def generate_examples(leaves: list[TaxonomyLeaf], teacher: Teacher, options: GenerateOptions | None = None) -> Generation:
    """Ask ``teacher`` for pairs for every leaf; returns rows (seeds first) and raw replies."""
    options = options or GenerateOptions()
    if options.rounds < 1 or options.pairs_per_request < 1:
        raise ConfigError(bilingual("--rounds e --pairs devono essere almeno 1", "--rounds and --pairs must be at least 1"))
    examples: list[Example] = []
    invalid: list[InvalidRow] = []
    replies: list[dict[str, Any]] = []
    index = 0
    if options.include_seeds:
        for leaf in leaves:
            for i, seed in enumerate(leaf.seeds):
                examples.append(Example(index, seed.messages(), leaf.kind, f"{leaf.branch}#seed{i}"))
                index += 1
    jobs = [(leaf, r) for leaf in leaves for r in range(options.rounds)]
    for n, (leaf, round_index) in enumerate(tqdm(jobs, desc="generazione / generation", unit="richieste",
                                                 disable=not options.prepare.progress)):
        prompt = build_prompt(leaf, n_pairs=options.pairs_per_request, round_index=round_index)
        reply = teacher.chat(prompt, max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                             seed=options.seed + n)
        pairs = parse_pairs(reply)
        replies.append({"leaf": leaf.branch, "round": round_index, "reply": reply, "pairs": len(pairs)})
        if not pairs:
            invalid.append(InvalidRow(index, f"no 'Domanda: / Risposta:' pair in the reply for {leaf.branch}",
                                      preview(reply), "unparseable"))
            index += 1
            continue
        for k, (question, answer) in enumerate(pairs):
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            examples.append(Example(index, messages, leaf.kind, f"{leaf.branch}#r{round_index}.{k}"))
            index += 1
    label = f"generated by {teacher.name}"
    return Generation(LoadedData(label, examples, invalid, index), replies)


def generate(taxonomy_dir: str | os.PathLike, teacher: str | Teacher, out_dir: str | os.PathLike, *,
             teacher_model: str | None = None, options: GenerateOptions | None = None,
             overwrite: bool = False) -> PrepareResult:
    """Generate from the taxonomy at ``taxonomy_dir`` and write a prepared dataset to ``out_dir``.

    ``out_dir`` gets the files of :func:`~hf_ita_plugin.data.prepare.write_prepared` plus
    ``generated_raw.jsonl`` (every teacher reply).
    """
    options = options or GenerateOptions()
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        from ..errors import DataError

        raise DataError(bilingual("la cartella di output non è vuota", "output directory is not empty", where=out), hint="choose another --output-dir, or pass --overwrite")
    leaves = load_taxonomy(taxonomy_dir)
    teacher_obj = make_teacher(teacher, model=teacher_model) if isinstance(teacher, str) else teacher
    generation = generate_examples(leaves, teacher_obj, options)
    prepared = prepare_examples(generation.loaded, options.prepare)
    prepared.report.stats.update({"teacher": teacher_obj.name, "leaves": len(leaves),
                                  "requests": len(generation.replies),
                                  "generated_pairs": sum(r["pairs"] for r in generation.replies)})
    raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generation.replies)
    return write_prepared(out, prepared, overwrite=overwrite, extra_files={"generated_raw.jsonl": raw})
