"""Property tests: no input row crashes the pipeline; every row is kept or reported with index and reason."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hf_ita_plugin.data import load_examples
from hf_ita_plugin.data.cleaning import REASONS, clean_conversation
from hf_ita_plugin.data.prepare import PrepareOptions, prepare_examples

PIECES = ["Ciao", "perché", "cittÃ ", "Ã¨", "### Risposta:", "<|im_start|>assistant", "</s>", "[INST]", "Output:",
          "```python\nx  = 1\n```", "`a  b`", "  ", "\n\n\n", "\t", "The answer is", "è bello", "\u0301", "\x00",
          "\ufeff", "🙂", "日本語", "Risposta: sì", "&amp;", "~~~", "\r\n", "e"]

text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(PIECES), max_size=12).map(" ".join),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=8)
role = st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), json_scalar)
message = st.one_of(st.fixed_dictionaries({"role": role, "content": st.one_of(text, json_scalar)}), json_value)
row = st.one_of(
    st.fixed_dictionaries({"messages": st.one_of(st.lists(message, max_size=4), json_value)}),
    st.fixed_dictionaries({"instruction": st.one_of(text, json_scalar), "output": st.one_of(text, json_scalar)},
                          optional={"input": st.one_of(text, json_scalar)}),
    st.fixed_dictionaries({"conversations": st.lists(
        st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "system", "robot"]), "value": text}), max_size=4)}),
    st.fixed_dictionaries({"prompt": text, "completion": text}),
    json_value,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=12))
def test_every_row_is_kept_or_reported(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    loaded = load_examples(str(path))
    prepared = prepare_examples(loaded, PrepareOptions(progress=False))
    kept = [e.index for e in prepared.examples]
    rejected = [r.index for r in prepared.report.rejections]
    assert sorted(kept + rejected) == list(range(len(rows)))
    for r in prepared.report.rejections:
        assert r.reason in REASONS + ("exact_duplicate", "near_duplicate") and r.detail
    for e in prepared.examples:  # what is kept is clean text the templates accept
        assert all(isinstance(m["content"], str) and m["content"] == m["content"].strip() and m["content"] for m in e.messages)
        assert e.messages[-1]["role"] == "assistant"


@settings(max_examples=150, deadline=None)
@given(messages=st.one_of(st.lists(message, max_size=5), json_value))
@example([{"role": "user", "content": "Input: Input: ciao a te"},
          {"role": "assistant", "content": "Output: Risposta: <|im_<|im_end|>end|> bene, grazie"}])
def test_cleaner_never_raises(messages):
    out = clean_conversation(messages)
    assert out.kept != (out.reason is not None)
    if out.kept:  # cleaning is idempotent on what it keeps
        again = clean_conversation(out.messages)
        assert again.messages == out.messages


# Pieces the cleaner's fast path must judge right: Italian words and typography, characters
# beyond Latin-1 it lets skip ftfy (minus sign, emoji, CJK) or not (characters of ftfy's codecs,
# combining marks, ligatures, full-width forms, controls, line separators), and the mojibake of
# Italian words through each codec ftfy repairs, with or without a no-break space turned into a space.
ITALIAN_WORDS = ["Roma", "è", "città", "perché", "più", "PIÙ", "È", "così", "«sì»", "l’unica", "–", "…", "30°", "5 €",
                 "caffè·latte", "ª", "n.º", "Ã", "Â"]
BEYOND_LATIN1 = "−😀中≤őĂĆπΩ√╬├ı\u0301ﬁＡ\u3000\u2028\x00\ufeff\u1161\ufffd"


def _mojibake(word: str, codec: str, spaced: bool) -> str:
    import ftfy.bad_codecs  # noqa: F401  (the sloppy-windows-* codecs)

    damaged = word.encode("utf-8").decode(codec, errors="replace")
    return damaged.replace("\u00a0", " ") if spaced else damaged


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.one_of(
    st.sampled_from(ITALIAN_WORDS), st.text(alphabet=BEYOND_LATIN1, max_size=3),
    st.builds(_mojibake, st.sampled_from(["è", "à", "città", "perché", "’", "«", "–", "°", "😀", "€", "ﬁ", "Ａ", "\u2028"]),
              st.sampled_from(["latin-1", "sloppy-windows-1252", "sloppy-windows-1250", "macroman", "cp437"]),
              st.booleans())), max_size=8).map(" ".join))
def test_unicode_repair_skips_ftfy_only_where_ftfy_would_change_nothing(pieces):
    import ftfy

    from hf_ita_plugin.data.cleaning import _ftfy_config, repair_unicode

    assert repair_unicode(pieces)[0] == ftfy.fix_text(pieces, _ftfy_config())


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(["parola", "ab", " ", "\n", " \t  ", "x" * 90, " " * 400]), max_size=40).map("".join),
       limit=st.sampled_from([5, 40, 160]))
def test_report_preview_is_the_collapsed_text_cut_at_the_limit(text, limit):
    from hf_ita_plugin.data.report import preview

    collapsed = " ".join(text.split())
    assert preview(text, limit) == (collapsed if len(collapsed) <= limit else collapsed[: limit - 1] + "…")
