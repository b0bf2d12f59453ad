"""Faults an adversarial new user hits (issue 19): real bad bytes, real folders, a real ``kill -9``.

Nothing the user owns is lost, nothing half-written is left, and every bad input is one clear error
that names where the problem is.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.config import RunConfig
from hf_ita_plugin.errors import ConfigError, ConversationError, DataError
from hf_ita_plugin.utils import atomic
from hf_ita_plugin.utils.manifest import MANIFEST_NAME

REPO = Path(__file__).resolve().parents[1]


def _rows(n: int) -> list[str]:
    return [json.dumps({"instruction": f"Domanda {i}: perché la città è così bella?",
                        "output": f"Risposta {i}: perché la città è antica, viva e piena di storia."},
                       ensure_ascii=False) for i in range(n)]


def _run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", *args], capture_output=True, text=True,
                          env=env, **kw)


# --- 4. --overwrite deletes only what hf-ita wrote ------------------------------------------------

def test_overwrite_refuses_a_folder_hf_ita_did_not_write(tmp_path, capsys):
    src = tmp_path / "data" / "mine.jsonl"
    src.parent.mkdir()
    src.write_text("\n".join(_rows(20)) + "\n", encoding="utf-8")
    (src.parent / "notes.txt").write_text("appunti", encoding="utf-8")
    rc = main(["data", "prepare", str(src), "--output-dir", str(src.parent), "--overwrite", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "was not written by hf-ita" in err and "mine.jsonl" in err and "Traceback" not in err
    assert sorted(p.name for p in src.parent.iterdir()) == ["mine.jsonl", "notes.txt"]  # nothing deleted


def test_overwrite_replaces_an_earlier_output_but_not_files_added_to_it(tmp_path, capsys):
    src = tmp_path / "mine.jsonl"
    src.write_text("\n".join(_rows(20)) + "\n", encoding="utf-8")
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(src), "--output-dir", str(out), "--quiet"]) == 0
    listed = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    assert listed == ["rejected.jsonl", "report.json", "report.md", "train.jsonl"]
    assert main(["data", "prepare", str(src), "--output-dir", str(out), "--overwrite", "--quiet"]) == 0
    (out / "my-analysis.ipynb").write_text("{}", encoding="utf-8")
    capsys.readouterr()
    assert main(["data", "prepare", str(src), "--output-dir", str(out), "--overwrite", "--quiet"]) == 2
    assert "my-analysis.ipynb" in capsys.readouterr().err
    assert (out / "my-analysis.ipynb").read_text(encoding="utf-8") == "{}"
    assert (out / "train.jsonl").is_file()


# --- 6. text that is not UTF-8 --------------------------------------------------------------------

def test_one_bad_byte_at_line_701_is_named_with_line_and_offset(tmp_path, capsys):
    lines = [r.encode("utf-8") for r in _rows(1000)]
    lines[700] = lines[700].replace("città".encode("utf-8"), "città".encode("latin-1"))
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    offset = sum(len(x) + 1 for x in lines[:700]) + lines[700].index(b"\xe0")
    assert main(["data", "prepare", str(src), "--output-dir", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{src}: " in err and "line 701" in err and f"byte offset {offset}" in err
    assert "iconv -f latin1 -t utf-8" in err and "--encoding" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_latin1_file_is_read_with_encoding(tmp_path, capsys, suffix):
    src = tmp_path / f"latin{suffix}"
    if suffix == ".csv":
        text = "instruction,output\n" + "".join(f"Perché il cielo è blu? ({i}),Perché la luce si diffonde così "
                                                f"nell'atmosfera, dice la città {i}.\n" for i in range(5))
    else:
        text = "\n".join(_rows(5)) + "\n"
    src.write_bytes(text.encode("latin-1"))
    assert main(["data", "prepare", str(src), "--output-dir", str(tmp_path / "a"), "--quiet"]) == 2
    assert "line 2" in capsys.readouterr().err if suffix == ".csv" else True
    assert main(["data", "prepare", str(src), "--output-dir", str(tmp_path / "b"), "--quiet",
                 "--encoding", "latin-1"]) == 0
    train = (tmp_path / "b" / "train.jsonl").read_text(encoding="utf-8")
    assert "erché" in train and "città" in train


def test_empty_csv_and_unknown_encoding_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["data", "prepare", str(empty), "--output-dir", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "CSV file is empty" in err and "Traceback" not in err and len(err.splitlines()) <= 3
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        from hf_ita_plugin.data.loaders import load_rows

        load_rows(str(empty), encoding="klingon")


def test_non_utf8_config_and_template_files(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_bytes("training:\n  output_dir: caffè\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"line 2, column 19 \(byte offset 28\): not valid UTF-8") as exc:
        RunConfig.from_yaml(cfg)
    assert str(cfg) in str(exc.value) and "iconv" in str(exc.value)
    tpl = tmp_path / "mine.jinja"
    tpl.write_bytes("{% for m in messages %}{{ m.content }} è{% endfor %}".encode("latin-1"))
    from hf_ita_plugin.templates.registry import resolve_template_source

    with pytest.raises(ConfigError, match=r"line 1, column 40 \(byte offset 39\)"):
        resolve_template_source(str(tpl))


# --- 7. values that pass validation and then crash or get stored ---------------------------------

@pytest.mark.parametrize("override, message", [
    ("training.learning_rate=.nan", "training.learning_rate must be a finite number"),
    ("lora.dropout=.nan", "lora.dropout must be a finite number"),
    ("training.warmup_ratio=.inf", "training.warmup_ratio must be a finite number"),
    ("training.seed=-1", "training.seed must be between 0 and"),
    ("training.report_to=wandbb", "unknown integration 'wandbb'"),
    ("training.max_steps=-7", "training.max_steps must be -1"),
    ("data.encoding=klingon", "unknown encoding 'klingon'"),
])
def test_bad_values_are_refused_naming_the_set_flag(tmp_path, override, message):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: smollm2-135m-cpu\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        RunConfig.from_yaml(cfg, [override])
    assert str(exc.value).startswith(f"--set {override}: ") and message in str(exc.value)


def test_bad_value_in_the_file_blames_the_file_and_a_file_is_no_output_dir(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: smollm2-135m-cpu\nlora:\n  dropout: .nan\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lora.dropout must be a finite") as exc:
        RunConfig.from_yaml(cfg, ["training.seed=3"])
    assert str(exc.value).startswith(f"{cfg}: ")
    assert RunConfig.from_yaml(cfg, ["lora.dropout=0.1"]).lora.dropout == 0.1  # --set can fix the file
    a_file = tmp_path / "afile"
    a_file.write_text("x", encoding="utf-8")
    rc = main(["train", str(cfg), "--set", "lora.dropout=0.1", "--output-dir", str(a_file)])
    assert rc == 2 and a_file.read_text(encoding="utf-8") == "x"
    assert "is not a directory" in capsys.readouterr().err


# --- 10. error positions ---------------------------------------------------------------------------

def test_positions_count_the_messages_as_written_in_the_file(tmp_path):
    from hf_ita_plugin.training.recipe import ItalianSFT

    rows = [{"messages": [{"role": "user", "content": f"Ciao {i}"}, {"role": "assistant", "content": f"Salve {i}"}]}
            for i in range(40)]
    rows[33]["messages"][1]["content"] = "   "  # outside a 3-row seeded sample
    src = tmp_path / "train.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    recipe = ItalianSFT.from_preset("smollm2-135m-cpu", [f"data.train={src}", "data.eval=null",
                                                         "data.max_train_examples=3", "data.system_prompt=default",
                                                         f"training.output_dir={tmp_path / 'out'}"])
    from hf_ita_plugin.data.loaders import load_examples, seeded_sample

    sample = seeded_sample(load_examples(str(src)).examples, 3, recipe.config.training.seed)
    assert 33 not in [e.index for e in sample]
    with pytest.raises(ConversationError, match=r"row 33: messages\[1\]: .* / content of the assistant message is empty"):
        recipe.prepare_data(recipe.load_tokenizer())


# --- 11. permissions of atomically written artifacts -----------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_artifacts_get_normal_permissions(tmp_path, umask):
    import torch
    from safetensors.torch import save_file

    old = os.umask(umask)
    try:
        with atomic.atomic_directory(tmp_path / "adapter") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp / "adapter_model.safetensors"))  # safetensors writes 0600
            (tmp / "sub").mkdir(mode=0o700)
            (tmp / "sub" / "x.json").write_text("{}")
        atomic.write_text(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "adapter" / "adapter_model.safetensors") == 0o666 & ~umask
    assert mode(tmp_path / "adapter" / "sub" / "x.json") == 0o666 & ~umask
    assert mode(tmp_path / "adapter") == mode(tmp_path / "adapter" / "sub") == 0o777 & ~umask
    assert mode(tmp_path / "metrics.json") == 0o666 & ~umask


def test_stale_temps_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / f".model.gguf.hf-ita-{pid}-abc.tmp").write_bytes(b"partial")
    (tmp_path / f".hf-ita-gguf.hf-ita-{pid}-xyz.tmp").mkdir()
    (tmp_path / f".model.gguf.hf-ita-{os.getpid()}-live.tmp").write_bytes(b"in progress")
    (tmp_path / ".user.1234-notes.tmp").write_bytes(b"not ours")
    atomic.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".model.gguf.hf-ita-{os.getpid()}-live.tmp",
                                                          ".user.1234-notes.tmp"]


# --- 9. an interrupted GGUF convert leaks nothing ---------------------------------------------------

def test_convert_of_a_missing_path_creates_nothing(tmp_path, capsys):
    assert main(["gguf", "convert", str(tmp_path / "nope"), "--quant", "f16"]) == 2
    assert main(["gguf", "convert", str(tmp_path / "nope"), "--quant", "f16",
                 "--output-dir", str(tmp_path / "gguf")]) == 2
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "empty").mkdir()
    assert main(["gguf", "convert", str(tmp_path / "empty"), "--quant", "f16"]) == 2  # not a model
    assert list((tmp_path / "empty").iterdir()) == []  # no empty gguf/ left behind


def _smollm2_run(tmp_path: Path) -> Path:
    """A training OUTPUT_DIR (adapter/ + metrics.json) on the embedded SmolLM2-135M, built with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_ita_plugin.models.embedded import ensure_embedded_model

    base = ensure_embedded_model()
    run = tmp_path / "run"
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(str(run / "adapter"))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run / "adapter"))
    cfg_file = run / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = str(base)
    cfg_file.write_text(json.dumps(cfg))
    return run


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_convert_killed_while_merging_leaves_nothing_after_the_next_run(tmp_path, sig):
    run = _smollm2_run(tmp_path)
    out = run / "gguf"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "hf_ita_plugin.cli", "gguf", "convert", str(run), "--quant",
                             "f16", "--no-verify", "--no-modelfile"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    merged = None
    while time.time() < deadline and proc.poll() is None:
        found = list(out.glob(".hf-ita-gguf.hf-ita-*.tmp/merged/*.safetensors")) if out.is_dir() else []
        if found:
            merged = found[0].parent
            break
        time.sleep(0.02)
    assert merged is not None, "the convert finished or failed before the merged model appeared"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    if sig == signal.SIGTERM:  # caught: the scratch folder is removed on the way out
        assert proc.returncode == 128 + signal.SIGTERM and not merged.exists()
    else:
        assert merged.is_dir()  # SIGKILL cannot be caught: the scratch folder is left behind...
    second = _run_cli("gguf", "convert", str(run), "--quant", "f16", "--no-verify", "--no-modelfile",
                      timeout=600)
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in out.iterdir()) == ["run-F16.gguf"]  # ...and the next run clears it
    assert stat.S_IMODE((out / "run-F16.gguf").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_non_utf8_bpb_text_is_named_before_any_model_loads(tmp_path):
    from hf_ita_plugin.evaluation.metrics import load_bpb_text

    prose = tmp_path / "prosa.txt"
    prose.write_bytes("Il caffè è pronto.\nPerché no?\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"line 1, column 8 \(byte offset 7\): not valid UTF-8"):
        load_bpb_text(str(prose), None)
