"""Answer quality of a model on Italian prompts: what the ``italian-rate`` task measures.

- :func:`generate_answers`: the model's answers to prompts (texts or conversations), batched;
- :func:`italian_rate`: the share of answers identified as Italian (py3langid, code removed);
- :func:`distinct_n`: lexical diversity (distinct-1, distinct-2);
- :func:`response_quality`: all of it on :func:`italian_prompts` (the held-out Italian prompts).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import EvaluationError, bilingual


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over ``texts`` (0 when there are none).

    >>> distinct_n(["il gatto dorme", "il gatto mangia"], 1)
    0.6666666666666666
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.lower().split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class ItalianRate:
    rate: float
    """Share of answers identified as Italian; answers too short to identify count as not Italian."""
    n_answers: int
    n_italian: int
    n_too_short: int
    languages: dict[str, int]


def italian_rate(answers: Sequence[str], *, min_chars: int = 20, min_italian_probability: float = 0.3) -> ItalianRate:
    """How many ``answers`` are in Italian (language of their prose, code removed)."""
    from ..data.language import identify

    if not answers:
        raise EvaluationError(bilingual("nessuna risposta da controllare", "no answers to check", where="italian-rate"))
    languages: Counter = Counter()
    italian = too_short = 0
    for answer in answers:
        guess = identify(answer, min_chars=min_chars)
        verdict = guess.is_italian(min_italian_probability)
        languages[guess.language or "?"] += 1
        italian += verdict is True
        too_short += verdict is None
    return ItalianRate(italian / len(answers), len(answers), italian, too_short, dict(languages.most_common()))


def italian_prompts(limit: int | None = 16, source: str = "bundled-heldout") -> list[list[dict[str, str]]]:
    """Italian prompts: the conversations of ``source`` up to their first user turn (system kept).

    With ``limit``, the prompts are spread over the source's categories (one per category in turn, in
    the order they first appear), so a few prompts do not all ask for the same kind of answer: the
    held-out file lists its five code questions first.
    """
    from ..data import load_examples

    by_category: dict[str | None, list[list[dict[str, str]]]] = {}
    for example in load_examples(source, strict=True).examples:
        conv = example.messages
        first_user = next((i for i, m in enumerate(conv) if m["role"] == "user"), None)
        if first_user is not None:
            by_category.setdefault(example.category, []).append([dict(m) for m in conv[: first_user + 1]])
    queues = list(by_category.values())
    spread = [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]
    return spread[:limit] if limit else spread


def generate_answers(model, tokenizer, prompts: Sequence[Sequence[dict[str, str]] | str], *, max_new_tokens: int = 96,
                     do_sample: bool = False, temperature: float = 0.7, top_p: float = 0.95, seed: int = 0,
                     batch_size: int = 8, system_prompt: str | None = "default", progress: bool = True) -> list[str]:
    """The model's answers to ``prompts`` (texts or conversations), greedy or sampled, batched."""
    from ..inference.generate import generate_batch
    from ..templates import with_system_prompt

    convs = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
    return generate_batch(model, tokenizer, [with_system_prompt(c, system_prompt) for c in convs],
                          max_new_tokens=max_new_tokens, temperature=temperature if do_sample else None,
                          top_p=top_p, seed=seed, batch_size=batch_size, progress=progress)


@dataclass
class ResponseQuality:
    italian_rate: float
    distinct_1: float
    distinct_2: float
    n_answers: int
    mean_answer_chars: float
    languages: dict[str, int]
    samples: list[dict[str, str]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {"italian_rate": round(self.italian_rate, 4), "distinct_1": round(self.distinct_1, 4),
                "distinct_2": round(self.distinct_2, 4), "answer_chars_mean": round(self.mean_answer_chars, 1)}


def response_quality(model, tokenizer, prompts=None, *, n_samples: int = 3, **generate_kwargs) -> ResponseQuality:
    """Generate answers to Italian prompts and measure Italian-rate and distinct-1/2."""
    prompts = prompts if prompts is not None else italian_prompts()
    answers = generate_answers(model, tokenizer, prompts, **generate_kwargs)
    rate = italian_rate(answers)
    samples = [{"prompt": (p if isinstance(p, str) else p[-1]["content"]), "answer": a}
               for p, a in list(zip(prompts, answers))[:n_samples]]
    return ResponseQuality(rate.rate, distinct_n(answers, 1), distinct_n(answers, 2), len(answers),
                           sum(map(len, answers)) / len(answers), rate.languages, samples)


def answer_quality(model, tokenizer, *, prompts: int = 8, max_new_tokens: int = 64, system_prompts=("default", None),
                   progress: bool = False, label: str = "", answers_out: dict | None = None) -> dict[str, float]:
    """What greedy answers to held-out Italian prompts read like, with and without a system prompt.

    For each ``system_prompts`` entry (``"default"``: the Italian default prompt the recipe trains
    with; ``None``: none, as a plain chat client or an Ollama Modelfile without SYSTEM serves it):
    ``italian_rate`` (answers in Italian), ``dictionary_rate`` (words Debian's Italian Hunspell
    dictionary accepts; left out with a warning where the dictionary is not installed) and
    ``loop_rate`` (answers caught in a repetition loop) and ``echo_rate`` (answers that mostly repeat
    the system prompt or the question). Keys without a system prompt end in
    ``_no_system``. ``answers_out``, when given, receives the answers themselves:
    ``with_system_prompt`` / ``without_system_prompt`` -> ``[{"prompt", "answer"}]``.
    """
    import warnings

    from ..templates.system_prompt import resolve_system_prompt
    from .repetition import echo_rate, loop_rate
    from .spelling import spelling_score

    questions = [[turn for turn in conv if turn["role"] != "system"] for conv in italian_prompts(prompts)]
    out: dict[str, float] = {}
    for system in system_prompts:
        suffix = "" if system else "_no_system"
        answers = generate_answers(model, tokenizer, questions, max_new_tokens=max_new_tokens, system_prompt=system,
                                   progress=progress)
        if answers_out is not None:
            answers_out["with_system_prompt" if system else "without_system_prompt"] = [
                {"prompt": conv[-1]["content"], "answer": answer} for conv, answer in zip(questions, answers)]
        out[f"italian_rate{suffix}"] = round(italian_rate(answers).rate, 4)
        try:
            score = spelling_score(answers)
        except EvaluationError as exc:
            warnings.warn(bilingual("controllo del dizionario saltato",
                                    f"dictionary check skipped{f' ({label})' if label else ''}: {exc}", where="hf-ita"),
                          stacklevel=2)
        else:
            if score.rate is not None:
                out[f"dictionary_rate{suffix}"] = round(score.rate, 4)
        out[f"loop_rate{suffix}"] = round(loop_rate(answers) or 0.0, 4)
        system_text = resolve_system_prompt(system) if system else None
        given = [[system_text or "", *(turn["content"] for turn in conv)] for conv in questions]
        out[f"echo_rate{suffix}"] = round(echo_rate(answers, given) or 0.0, 4)
    return out
