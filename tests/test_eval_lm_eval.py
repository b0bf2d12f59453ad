"""The lm-evaluation-harness bridge: command building, and clear errors for what is missing.

lm-eval's Italian datasets live on the Hugging Face Hub, unreachable here: the real harness is
run only in the slow test, on a local task written here (so its results parsing is real too).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import venv

import pytest

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.models.embedded import ensure_embedded_model
from hf_ita_plugin.errors import EvaluationError
from hf_ita_plugin.evaluation.lm_eval import check_lm_eval, lm_eval_command, run_lm_eval

HAS_LM_EVAL = importlib.util.find_spec("lm_eval") is not None
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """The interpreter of a fresh virtual environment without lm-eval."""
    root = tmp_path_factory.mktemp("bare-venv")
    venv.create(root, with_pip=False)
    return str(root / "bin" / "python")


def test_command_for_base_and_adapter(tmp_path):
    run = lm_eval_command("/modelli/base", ["arc_it", "hellaswag_it"], tmp_path / "lm", adapter="/run/adapter",
                          limit=10, num_fewshot=5, apply_chat_template=True, python="/env/bin/python")
    assert run.argv[:4] == ["/env/bin/python", "-m", "lm_eval", "run"]
    args = dict(zip(run.argv[4::2], run.argv[5::2]))
    assert args["--model"] == "hf"
    assert args["--model_args"] == "pretrained=/modelli/base,dtype=float32,peft=/run/adapter"
    assert args["--tasks"] == "arc_it,hellaswag_it" and args["--limit"] == "10" and args["--num_fewshot"] == "5"
    assert args["--output_path"] == str(tmp_path / "lm") and run.argv[-1] == "--apply_chat_template"
    base = lm_eval_command("org/modello", ["m_mmlu_it"], tmp_path)
    assert "peft=" not in " ".join(base.argv) and base.argv[0] == sys.executable
    with pytest.raises(EvaluationError, match="comma"):
        lm_eval_command("/a,b", ["arc_it"], tmp_path)
    with pytest.raises(EvaluationError, match="no task"):
        lm_eval_command("/a", [" "], tmp_path)


def test_missing_harness_is_a_clear_error(bare_python):
    with pytest.raises(EvaluationError, match="lm-evaluation-harness is not installed in .*bare-venv") as info:
        check_lm_eval(["arc_it"], python=bare_python)
    assert "pip install lm-eval" in str(info.value)


def test_cli_names_what_is_missing(bare_python, capsys):
    code = main(["eval", "embedded", "--tasks", "lm-eval:arc_it", "--lm-eval-python", bare_python, "--quiet"])
    assert code == 2
    assert "lm-evaluation-harness is not installed" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_LM_EVAL, reason="lm-eval is not installed in this environment")
def test_missing_task_data_is_a_clear_error():
    with pytest.raises(EvaluationError) as info:
        check_lm_eval(["arc_it", "m_mmlu_it"], env=OFFLINE)
    message = str(info.value)
    assert "arc_it needs the dataset alexandrainst/m_arc (it)" in message
    assert "m_mmlu_it needs the dataset alexandrainst/m_mmlu (it)" in message
    assert "HF_DATASETS_CACHE" in message


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LM_EVAL, reason="lm-eval is not installed in this environment")
def test_real_harness_on_a_local_italian_task(tmp_path):
    """lm-eval runs the embedded model on a 4-question Italian task defined here, offline."""
    questions = [
        ("Qual è la capitale d'Italia?", ["Roma", "Parigi", "Berlino"], 0),
        ("Quante sono le stagioni dell'anno?", ["Tre", "Quattro", "Cinque"], 1),
        ("Di che colore è il cielo sereno?", ["Verde", "Rosso", "Azzurro"], 2),
        ("Quale animale abbaia?", ["Il cane", "Il gatto", "Il pesce"], 0),
    ]
    data = tmp_path / "domande.jsonl"
    data.write_text("\n".join(json.dumps({"question": q, "choices": c, "answer": a}, ensure_ascii=False)
                              for q, c, a in questions), encoding="utf-8")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "quiz_it_locale.yaml").write_text(textwrap.dedent(f"""
        task: quiz_it_locale
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "Domanda: {{{{question}}}}\\nRisposta:"
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: answer
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
        """), encoding="utf-8")
    scores = run_lm_eval(str(ensure_embedded_model(verbose=False)), ["quiz_it_locale"], output_dir=tmp_path / "out",
                         include_path=str(tasks), env={**OFFLINE, "OMP_NUM_THREADS": "1"}, timeout=900)
    acc = scores["quiz_it_locale"]["acc"]
    assert acc in (0.0, 0.25, 0.5, 0.75, 1.0)
