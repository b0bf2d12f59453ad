"""``hf-ita template list|show|render`` through the real CLI entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT, get_template, list_templates

CONV = [
    {"role": "user", "content": "Scrivi una funzione che sommi due numeri 🙂"},
    {"role": "assistant", "content": "Ecco:\n```python\ndef somma(a, b):\n    return a + b\n```"},
    {"role": "user", "content": "Grazie!"},
    {"role": "assistant", "content": "Prego, è stato un piacere."},
]


@pytest.fixture
def conv_file(tmp_path):
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(CONV, ensure_ascii=False), encoding="utf-8")
    return path


def test_list_prints_every_template(capsys):
    assert main(["template", "list"]) == 0
    out = capsys.readouterr().out
    assert "Template disponibili / Available templates" in out
    for name in list_templates():
        assert f"  {name} " in out


def test_show_prints_facts_example_and_source(capsys):
    assert main(["template", "show", "llama-3"]) == 0
    out = capsys.readouterr().out
    assert "<|eot_id|>" in out and "'<|start_header_id|>'" in out
    assert "<|start_header_id|>assistant<|end_header_id|>\n\nLa capitale d'Italia è Roma.<|eot_id|>" in out
    assert get_template("llama-3").source in out


def test_show_unknown_template_is_a_clear_error(capsys):
    assert main(["template", "show", "vicuna"]) == 2
    err = capsys.readouterr().err
    assert "unknown chat template 'vicuna'" in err and "chatml" in err


def test_render_without_tokenizer_uses_reference_tokens(conv_file, capsys):
    assert main(["template", "render", "mistral", "--messages", str(conv_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<s> [INST] Scrivi una funzione che sommi due numeri 🙂 [/INST] Ecco:\n```python")
    assert out.rstrip("\n").endswith("[INST] Grazie! [/INST] Prego, è stato un piacere.</s>")


def test_render_with_system_and_generation_prompt(conv_file, capsys):
    args = ["template", "render", "chatml", "--messages", str(conv_file), "--system", "default", "--generation-prompt"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n")
    assert out.rstrip("\n").endswith("<|im_start|>assistant")


def test_render_mask_on_characters_without_tokenizer(conv_file, capsys):
    assert main(["template", "render", "gemma-3", "--messages", str(conv_file), "--mask"]) == 0
    captured = capsys.readouterr()
    assert "[[Prego, è stato un piacere.<end_of_turn>]]" in captured.out
    assert "[[Ecco:\n```python\ndef somma(a, b):\n    return a + b\n```<end_of_turn>]]" in captured.out
    assert captured.out.count("[[") == 2
    assert "Grazie!" not in "".join(part.split("]]")[0] for part in captured.out.split("[[")[1:])
    assert "caratteri addestrabili / trainable characters" in captured.err


def test_render_mask_with_the_embedded_tokenizer(conv_file, capsys):
    args = ["template", "render", "chatml", "--messages", str(conv_file), "--tokenizer", "embedded", "--mask"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "assistant\n[[Prego, è stato un piacere.<|im_end|>]]\n" in captured.out
    assert captured.out.count("[[") == 2
    assert "token addestrabili / trainable tokens:" in captured.err


def test_render_mask_ansi_colour(conv_file, capsys):
    args = ["template", "render", "zephyr", "--messages", str(conv_file), "--mask", "--color", "always"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "\x1b[1;32;4mPrego, è stato un piacere.</s>\x1b[0m" in out


def test_render_reports_bad_conversations_with_index(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"messages": [CONV[0], CONV[0]]}), encoding="utf-8")
    assert main(["template", "render", "mistral", "--messages", str(bad)]) == 2
    assert re.search(r"messages\[1\]: .* / expected a 'assistant' message after 'user'", capsys.readouterr().err)


def test_render_reports_missing_and_malformed_files(tmp_path, capsys):
    assert main(["template", "render", "chatml", "--messages", str(tmp_path / "manca.json")]) == 2
    assert "messages file not found" in capsys.readouterr().err
    broken = tmp_path / "rotto.json"
    broken.write_text('[{"role": "user",', encoding="utf-8")
    assert main(["template", "render", "chatml", "--messages", str(broken)]) == 2
    assert "rotto.json: JSON non valido / not valid JSON" in capsys.readouterr().err
    lines = tmp_path / "conv.jsonl"
    lines.write_text(json.dumps({"messages": CONV}) + "\n", encoding="utf-8")
    assert main(["template", "render", "chatml", "--messages", str(lines), "--row", "3"]) == 2
    assert "row 3 does not exist (1 conversations)" in capsys.readouterr().err
    assert main(["template", "render", "own", "--messages", str(lines)]) == 2
    assert "--tokenizer" in capsys.readouterr().err


def test_cli_runs_as_a_program(conv_file):
    proc = subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", "template", "render", "alpaca-it",
                           "--messages", str(conv_file), "--mask"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "[[Prego, è stato un piacere.</s>]]" in proc.stdout  # not a TTY: brackets, no ANSI
    assert "\x1b[" not in proc.stdout
