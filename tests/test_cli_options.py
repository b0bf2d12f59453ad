"""One CLI vocabulary (``hf_ita_plugin.cli.options``) and one language policy for user-facing errors."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from hf_ita_plugin.cli.main import build_parser, main
from hf_ita_plugin.cli.options import OLD_OUTPUT_FLAGS
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError, DataError, HfItaError, bilingual

# Every command that writes somewhere, and the flag that names where.
WRITERS = {
    ("train",): "--output-dir",
    ("quickstart",): "--output-dir",
    ("data", "prepare"): "--output-dir",
    ("data", "generate"): "--output-dir",
    ("gguf", "convert"): "--output-dir",
    ("eval",): "--output",
    ("gguf", "adapter"): "--output",
    ("card",): "--output",
    ("autotrain-config",): "--output",
}
BILINGUAL = re.compile(r".+ / .+")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every leaf command of the CLI as (path, parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _commands(sub, path + (name,))


def _help(path: tuple[str, ...], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path, flag", sorted(WRITERS.items()))
def test_help_lists_the_output_flag_and_hides_the_old_one(path, flag, capsys):
    text = _help(path, capsys)
    assert re.search(rf"^\s+{flag} (DIR|FILE)\b", text, re.M), text
    for old in OLD_OUTPUT_FLAGS:
        assert not re.search(rf"{old}\b(?!put)", text), f"{old} is visible in hf-ita {' '.join(path)} --help"


def test_every_command_speaks_the_same_vocabulary():
    writers, outputs = set(), {}
    for path, parser in _commands(build_parser()):
        visible = {s for a in parser._actions if a.help is not argparse.SUPPRESS for s in a.option_strings}
        assert not visible & set(OLD_OUTPUT_FLAGS), path
        for flag in ("--output-dir", "--output"):
            if flag in visible:
                writers.add(path)
                outputs[path] = flag
        for action in parser._actions:  # shared options keep one spelling, one destination, one metavar
            if "--output-dir" in action.option_strings:
                assert (action.dest, action.metavar) == ("output_dir", "DIR"), path
            if "--output" in action.option_strings:
                assert (action.dest, action.metavar) == ("output", "FILE"), path
            if "--set" in action.option_strings:
                assert (action.dest, action.metavar, action.default) == ("overrides", "KEY=VALUE", []), path
            if "--token" in action.option_strings:
                assert action.dest == "token" and "Hugging Face token" in action.help, path
    assert outputs == {path: WRITERS[path] for path in writers}
    assert set(WRITERS) <= writers


@pytest.mark.parametrize("argv, dest, new_flag", [
    (["data", "prepare", "src.jsonl", "--out", "D"], "output_dir", "--output-dir"),
    (["data", "generate", "tax", "--teacher", "embedded", "--out", "D"], "output_dir", "--output-dir"),
    (["gguf", "convert", "model", "--out", "D"], "output_dir", "--output-dir"),
    (["train", "c.yaml", "--out", "D"], "output_dir", "--output-dir"),
    (["eval", "embedded", "--out", "D"], "output", "--output"),
    (["gguf", "adapter", "run", "--out", "D"], "output", "--output"),
    (["card", "run", "--out", "D"], "output", "--output"),
])
def test_old_spellings_still_work_and_warn(argv, dest, new_flag, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == "D"
    new_argv = [new_flag if a == "--out" else a for a in argv]
    assert vars(build_parser().parse_args(new_argv)) == vars(args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and new_flag in err and "deprecat" in err
    assert BILINGUAL.search(err)


def test_the_new_spelling_prints_no_note(capsys):
    build_parser().parse_args(["data", "prepare", "src.jsonl", "--output-dir", "D"])
    assert capsys.readouterr().err == ""


def test_a_required_output_dir_is_satisfied_by_the_old_spelling_only_once(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["data", "prepare", "src.jsonl"])
    assert info.value.code == 2 and "--output-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # both spellings at once is a usage error, not a silent pick
        build_parser().parse_args(["data", "prepare", "src.jsonl", "--out", "A", "--output-dir", "B"])


def test_old_spelling_runs_the_command(tmp_path, capsys):
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"instruction": "Qual è la capitale d'Italia?",
                               "output": "La capitale d'Italia è Roma, una città antica e bellissima."},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["data", "prepare", str(src), "--out", str(tmp_path / "old"), "--quiet"]) == 0
    assert (tmp_path / "old" / "train.jsonl").is_file()
    assert "use --output-dir" in capsys.readouterr().err
    assert main(["data", "prepare", str(src), "--output-dir", str(tmp_path / "new"), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kept"] == summary["input_rows"] == 1 and summary["train"] == str(tmp_path / "new" / "train.jsonl")
    assert (tmp_path / "new" / "train.jsonl").read_bytes() == (tmp_path / "old" / "train.jsonl").read_bytes()


def test_launch_is_an_alias_of_jobs_launch(capsys):
    tail = ["c.yaml", "--flavor", "a10g-small", "--repo", "mario/x", "--set", "training.num_epochs=2",
            "--set", "lora.r=8", "--dry-run"]
    alias, command = build_parser().parse_args(["launch", *tail]), build_parser().parse_args(["jobs", "launch", *tail])
    assert vars(alias) == vars(command)
    assert command.overrides == ["training.num_epochs=2", "lora.r=8"] and command.jobs_command == "launch"
    jobs_help = _help(("jobs",), capsys)
    assert re.search(r"^\s+launch\s", jobs_help, re.M)
    assert re.sub(r"usage: hf-ita (jobs )?launch", "", _help(("launch",), capsys)).split() == \
        re.sub(r"usage: hf-ita (jobs )?launch", "", _help(("jobs", "launch"), capsys)).split()


def test_set_is_repeatable_wherever_it_exists():
    train = build_parser().parse_args(["train", "c.yaml", "--set", "a.b=1", "--set", "c.d=2", "--output-dir", "o"])
    assert train.overrides == ["a.b=1", "c.d=2"] and train.output_dir == "o"


def test_bilingual_joins_italian_then_english():
    assert bilingual("file non trovato", "file not found") == "file non trovato / file not found"
    assert bilingual("riga vuota", "empty line", where="t.jsonl: line 3") == "t.jsonl: line 3: riga vuota / empty line"


def test_user_errors_are_bilingual(tmp_path, capsys):
    assert main(["data", "prepare", str(tmp_path / "manca.jsonl"), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"file di dati non trovato: {tmp_path / 'manca.jsonl'} / data file not found: {tmp_path / 'manca.jsonl'}" in err
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"training": {"per_device_batch_size": "otto"}}, source="cfg.yaml")
    assert str(info.value).startswith("cfg.yaml: training.per_device_batch_size deve essere un intero / "
                                      "training.per_device_batch_size must be an integer, got str 'otto'")
    assert main(["data", "prepare", "x", "--output-dir", "o", "--max-tokens", "5"]) == 2
    assert "--max-tokens richiede --tokenizer" in capsys.readouterr().err
    error = DataError(bilingual("campo vuoto", "empty field", where="r.jsonl: row 2"), hint="--format alpaca")
    assert str(error) == "r.jsonl: row 2: campo vuoto / empty field\n  suggerimento / hint: --format alpaca"
    assert isinstance(error, HfItaError)
