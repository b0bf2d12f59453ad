"""The Ollama TEMPLATE of the Modelfile, rendered by Go's own ``text/template``, against the Jinja.

``tests/go_template`` is a small Go program that renders a template with Ollama's variables
(``.Messages``, ``.System``, ``.Prompt``, ``.Response``); it needs Debian's ``golang-go``. For every
registry family the Modelfile's TEMPLATE must render, for each point of the Italian suite where Ollama
renders (the conversation up to a user turn, generation prompt included), exactly what the registry's
Jinja renders without BOS (llama.cpp / Ollama add BOS themselves). Families the Modelfile cannot express
are xfailed with the reason, never skipped silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from hf_ita_plugin.errors import HfItaError
from hf_ita_plugin.config.schema import RunConfig
from hf_ita_plugin.gguf.modelfile import TRIM_NOTE, build_adapter_modelfile, build_modelfile, training_system_prompt
from hf_ita_plugin.rundir import RunDir
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT, apply_template, get_template, list_templates, validate_messages
from test_templates_official import CONVERSATIONS
from test_templates_tokenizers import FAMILY_TOKENIZER, load, tokenizer_dirs  # noqa: F401

GO_SOURCE = Path(__file__).resolve().parent / "go_template"
# Families whose text depends on the day it is rendered: a Modelfile TEMPLATE is fixed text.
DATED = {"llama-3.2": "prints today's date (strftime_now)", "smollm3": "prints today's date in its system header",
         "mistral-small-3.1": "prints today's date in its default system prompt"}


@pytest.fixture(scope="module")
def go_renderer(tmp_path_factory) -> Path:
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("go not found: apt-get install -y golang-go (Makefile DEBIAN_TEST_PACKAGES)", pytrace=False)
        pytest.skip("go not found (apt-get install -y golang-go)")
    out = tmp_path_factory.mktemp("go") / "go_template"
    env = {**os.environ, "GOCACHE": str(tmp_path_factory.mktemp("gocache")), "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}
    subprocess.run([go, "build", "-o", str(out), "."], cwd=GO_SOURCE, env=env, check=True)
    return out


def go_render(binary: Path, template: str, messages: list[dict], tmp_path: Path, system: str | None = None) -> str:
    """Render as Ollama's chat endpoint does: the Modelfile's SYSTEM becomes the first message when the
    conversation has no system message of its own."""
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}, *messages]
    (tmp_path / "t.tmpl").write_text(template, encoding="utf-8")
    first_system = next((m["content"] for m in messages if m["role"] == "system"), "")
    values = {"Messages": messages, "System": first_system, "Prompt": "", "Response": ""}
    done = subprocess.run([str(binary), str(tmp_path / "t.tmpl")], input=json.dumps(values), capture_output=True,
                          text=True, encoding="utf-8", check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ollama_points(family: str) -> list[list[dict]]:
    """Each conversation of the suite up to each user turn the family accepts (where Ollama renders)."""
    points = []
    for conv in CONVERSATIONS.values():
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
    try:
        modelfile = build_modelfile(tmp_path / "model.gguf", tok, tmp_path, add_bos=spec.emits_bos)
    except HfItaError as exc:
        pytest.xfail(f"{family}: the Modelfile builder refuses it: {exc}")
    if family in DATED:
        pytest.xfail(f"{family}: {DATED[family]}")
    template, system = quoted(modelfile, "TEMPLATE"), quoted(modelfile, "SYSTEM")
    points = ollama_points(family)
    assert points
    trims = TRIM_NOTE in modelfile
    mismatches = []
    for messages in points:
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if spec.emits_bos and tok.bos_token and expected.startswith(tok.bos_token):
            expected = expected[len(tok.bos_token):]
        if trims:  # the Modelfile says so: exact once contents carry no edge whitespace
            # (some families trim every content, Gemma keeps the system text as given)
            variants = ([{**m, "content": m["content"].strip()} for m in messages],
                        [{**m, "content": m["content"] if m["role"] == "system" else m["content"].strip()} for m in messages])
            assert any(go_render(go_renderer, template, clean, tmp_path, system) == expected for clean in variants), \
                (family, messages)
        if go_render(go_renderer, template, messages, tmp_path, system) != expected:
            mismatches.append(messages)
    if trims:
        assert mismatches, f"{family}: the Modelfile notes trimming, but every point rendered exactly"
        pytest.xfail(f"{family}: {TRIM_NOTE.lstrip('# ')} ({len(mismatches)}/{len(points)} suite points differ)")
    assert not mismatches, (family, mismatches[0])


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
