"""Answer-quality checks held against real Italian text no one here wrote (Debian's fortunes-it)
and the real Italian dictionary (Debian's hunspell-it, read by spylls)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from hf_ita_plugin.errors import EvaluationError
from hf_ita_plugin.evaluation.repetition import is_repetition_loop, loop_rate
from hf_ita_plugin.evaluation.spelling import dictionary_path, spelling_score, words_of

FORTUNES = Path("/usr/share/games/fortunes/it/italia.u8")


@pytest.fixture(scope="module")
def fortunes() -> list[str]:
    if not FORTUNES.is_file():
        pytest.skip("Debian's fortunes-it is not installed: apt-get install fortunes-it")
    text = FORTUNES.read_text(encoding="utf-8")
    return [f.strip() for f in text.split("\n%\n") if f.strip()]


@pytest.fixture(scope="module")
def dictionary_installed():
    pytest.importorskip("spylls")
    if not Path(str(dictionary_path()) + ".dic").is_file():
        pytest.skip("Debian's hunspell-it is not installed: apt-get install hunspell-it")


def scrambled(text: str, seed: int = 0) -> str:
    """The same text with the inner letters of each longer word shuffled: looks Italian, is not."""
    rng = random.Random(seed)

    def shuffle(word: str) -> str:
        inner = list(word[1:-1])
        for _ in range(5):
            rng.shuffle(inner)
            if "".join(inner) != word[1:-1]:
                break
        return word[0] + "".join(inner) + word[-1]

    return " ".join(shuffle(w) if len(w) > 4 and w.isalpha() else w for w in text.split())


def test_words_keep_apostrophes_and_skip_numbers():
    assert words_of("Nell'anno 2024 c’è stata un'altra festa: 3 giorni!") == [
        "Nell'anno", "c'è", "stata", "un'altra", "festa", "giorni"]


def test_real_italian_is_accepted_and_scrambled_italian_is_not(fortunes, dictionary_installed):
    sample = fortunes[:300]
    real = spelling_score(sample)
    assert real.words > 4000
    assert real.rate > 0.85  # names, English words and old-style accents ("piu'") are the rest
    fake = spelling_score([scrambled(f) for f in sample])
    assert fake.words == real.words
    assert fake.rate < real.rate - 0.25  # short words (half the text) stay, every longer one is shuffled
    english = spelling_score(["The quick brown fox jumps over the lazy dog while the children watch television."])
    assert english.rate < 0.5
    assert "tleeivsion" not in real.unknown


def test_missing_dictionary_is_a_clear_error(tmp_path):
    with pytest.raises(EvaluationError, match="hunspell-it"):
        spelling_score(["ciao"], dictionary=tmp_path / "nessuno")


def test_answers_that_repeat_their_prompt_are_caught_and_real_answers_are_not(fortunes):
    from hf_ita_plugin.evaluation.repetition import echo_rate, echoes_prompt
    from hf_ita_plugin.templates.system_prompt import DEFAULT_SYSTEM_PROMPT

    question = "Vorrei passare tre giorni a Roma a fine aprile. È la prima volta: come divideresti le giornate?"
    # what Gemma-3-270M's base model answered before training: the system prompt again, then the question
    echoed = DEFAULT_SYSTEM_PROMPT + "\n\n" + question
    assert echoes_prompt(echoed, [DEFAULT_SYSTEM_PROMPT, question])
    assert not echoes_prompt(echoed, [question[:40]])  # the system prompt was not given: not an echo of it
    answer = ("Il primo giorno dedicalo al centro storico: Colosseo, Fori Imperiali e Campidoglio. Il secondo ai "
              "Musei Vaticani e a San Pietro, il terzo a Trastevere e al Gianicolo.")
    assert not echoes_prompt(answer, [DEFAULT_SYSTEM_PROMPT, question])
    assert not echoes_prompt("Roma, tre giorni.", [question])  # too short to tell
    # real Italian text no one here wrote, given unrelated fortunes as prompts: no echo
    assert echo_rate(fortunes[:300], [[DEFAULT_SYSTEM_PROMPT, f] for f in fortunes[300:600]]) == 0.0
    # each fortune given as its own prompt: every one of 6 words or more echoes, shorter ones cannot
    long_enough = sum(len(re.findall(r"\w+", f)) >= 6 for f in fortunes[:300]) / 300
    assert long_enough > 0.5 and echo_rate(fortunes[:300], [[f] for f in fortunes[:300]]) == long_enough
    assert echo_rate([], []) is None
    with pytest.raises(ValueError):
        echo_rate(["a"], [])


def test_real_prose_is_not_a_loop_and_loops_are_caught(fortunes):
    assert loop_rate(fortunes[:500]) < 0.03  # a few fortunes are dialogues that repeat a line on purpose
    looped = ("Roma è la capitale d'Italia. È una città molto bella e antica. "
              "È una città molto bella e antica. È una città molto bella e antica.")
    assert is_repetition_loop(looped)
    stuck = "la pasta è buona " * 4  # no sentence end: caught by the repeated 5-word run
    assert is_repetition_loop(stuck)
    assert not is_repetition_loop("Roma è la capitale d'Italia. Milano è la capitale economica del Paese.")
    assert loop_rate([]) is None
