"""The run folder: layout, metrics.json schema (round trip, old files, malformed fields), hyperparameters."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hf_ita_plugin.config import HYPERPARAMETERS, RunConfig, hyperparameters, schema
from hf_ita_plugin.errors import ConfigError
from hf_ita_plugin.rundir import (
    SCHEMA_VERSION,
    DataSummary,
    EvalSummary,
    RunDir,
    RunMetrics,
    TrainSummary,
    metrics_hyperparameters,
)

# metrics.json as `hf-ita train` wrote it before the schema had a version (no schema_version),
# with keys other tools add (data.cleaning, eval.suite, a top-level key of a later tool).
OLD_METRICS = {
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "base_model_path": "/home/mario/models/smollm2",
    "template": "chatml",
    "quantization": "nf4",
    "data": {"train_examples": 24, "eval_examples": 6, "train_tokens": 3100, "dropped_truncated": 1,
             "train_source": "bundled", "eval_source": None, "curriculum": [{"phase": "knowledge", "examples": 8}],
             "cleaning": {"dropped_language": 2}},
    "train": {"steps": 2, "epochs": 0.33, "final_loss": 2.7, "mean_loss": 2.9, "eval_loss": None,
              "trained_tokens": 3100.0, "tokens_per_second": 88.5, "train_runtime_s": 35.0,
              "peak_memory_mb": {"process_rss": 2100.5}, "resumed": False},
    "eval": {"before": {"bits_per_byte": 1.4321}, "after": {"bits_per_byte": 1.2345}, "change": {"bits_per_byte": -0.138},
             "suite": {"tasks": ["bpb"], "details": {}}},
    "hyperparameters": {"r": 16, "alpha": 32, "learning_rate": 0.0002, "compute_dtype": "float32"},
    "hardware": {"platform": "Linux", "python": "3.11", "cpu_threads": 2},
    "loss_history": [{"step": 1, "loss": 3.1}, {"step": 2, "eval_loss": 2.9}],
    "wall_time_s": 61.5,
    "lm_eval": {"arc_it": 0.3},
}


def test_layout_names_every_artifact(tmp_path):
    run = RunDir(tmp_path / "out")
    assert run.adapter_dir == tmp_path / "out" / "adapter"
    assert run.adapter_config_path == tmp_path / "out" / "adapter" / "adapter_config.json"
    assert run.metrics_path.name == "metrics.json" and run.config_path.name == "run_config.yaml"
    assert run.checkpoints_dir.name == "checkpoints" and run.eval_before_path.parent == run.checkpoints_dir
    assert run.loss_curve_path.name == "loss_curve.png" and run.card_path.name == "README.md"
    assert (run.merged_dir.name, run.gguf_dir.name, run.eval_report_path.name) == ("merged", "gguf", "eval.md")
    assert RunDir.of_adapter(run.adapter_dir) == run
    assert not run.has_adapter() and not run.is_finished() and not run.has_checkpoint()
    (run.checkpoints_dir / "checkpoint-2").mkdir(parents=True)
    run.adapter_dir.mkdir()
    assert run.has_checkpoint() and run.is_finished() and not run.has_adapter()
    run.adapter_config_path.write_text("{}")
    assert run.has_adapter()


def test_round_trip_writes_every_field_and_reads_it_back(tmp_path):
    metrics = RunMetrics(
        base_model="org/model", base_model_path="/models/m", template="chatml", quantization="nf4",
        data=DataSummary(train_examples=3, eval_examples=1, train_tokens=99, dropped_truncated=0,
                         train_source="bundled", eval_source="bundled-heldout"),
        train=TrainSummary(steps=2, epochs=1.0, final_loss=2.5, resumed=True, peak_memory_mb={"process_rss": 1.5}),
        eval=EvalSummary(before={"response_loss": 3.0}, after={"response_loss": 2.0}, change={"response_loss": -0.33}),
        hyperparameters={"r": 8}, hardware={"python": "3.11"}, loss_history=[{"step": 1, "loss": 3.0}], wall_time_s=1.5,
    )
    run = RunDir(tmp_path)
    path = run.write_metrics(metrics)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert list(written)[0] == "schema_version" and written["schema_version"] == SCHEMA_VERSION
    assert set(written) == {f.name for f in dataclasses.fields(RunMetrics) if "kind" in f.metadata}
    assert written["train"]["eval_loss"] is None and written["data"]["curriculum"] == []  # every field, even unset
    assert run.read_metrics() == metrics
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind


def test_old_file_without_version_reads_as_version_1_and_keeps_every_key(tmp_path):
    run = RunDir(tmp_path)
    run.metrics_path.write_text(json.dumps(OLD_METRICS), encoding="utf-8")
    metrics = run.read_metrics()
    assert metrics.schema_version == 1
    assert metrics.base_model_path == "/home/mario/models/smollm2" and metrics.train.trained_tokens == 3100.0
    assert metrics.data.extra == {"cleaning": {"dropped_language": 2}} and metrics.eval.extra["suite"]["tasks"] == ["bpb"]
    assert metrics.extra == {"lm_eval": {"arc_it": 0.3}}
    run.write_metrics(metrics)
    assert json.loads(run.metrics_path.read_text(encoding="utf-8")) == {"schema_version": 1, **OLD_METRICS}


def test_partial_file_stays_partial(tmp_path):
    """Fields a file did not have are not invented when it is written back (e.g. by `hf-ita eval`)."""
    run = RunDir(tmp_path)
    run.metrics_path.write_text(json.dumps({"base_model": "x", "eval": {"before": {"a": 1.0}}}), encoding="utf-8")
    metrics = run.read_metrics()
    assert metrics.template is None and metrics.train == TrainSummary()
    metrics.eval.after["a"] = 0.5
    run.write_metrics(metrics)
    assert json.loads(run.metrics_path.read_text()) == {"schema_version": 1, "base_model": "x",
                                                       "eval": {"before": {"a": 1.0}, "after": {"a": 0.5}}}


def test_missing_file_is_none(tmp_path):
    assert RunDir(tmp_path).read_metrics() is None and RunDir(tmp_path).read_eval_before() is None


@pytest.mark.parametrize(("patch", "field", "expected"), [
    ({"train": {"steps": "two"}}, "train.steps", "an integer"),
    ({"train": {"resumed": "no"}}, "train.resumed", "true or false"),
    ({"train": {"final_loss": True}}, "train.final_loss", "a number"),
    ({"eval": {"before": [1.0]}}, "eval.before", "an object"),
    ({"data": "bundled"}, "data", "an object"),
    ({"template": 3}, "template", "a string"),
    ({"loss_history": {"step": 1}}, "loss_history", "a list"),
    ({"schema_version": "1"}, "schema_version", "an integer"),
])
def test_malformed_field_names_file_and_field(tmp_path, patch, field, expected):
    run = RunDir(tmp_path)
    run.metrics_path.write_text(json.dumps({**OLD_METRICS, **patch}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        run.read_metrics()
    message = str(info.value)
    assert str(run.metrics_path) in message and f"'{field}'" in message and f"expected {expected}" in message


def test_unreadable_files_name_file_and_line(tmp_path):
    run = RunDir(tmp_path)
    run.metrics_path.write_text('{"base_model": "x",\n  "eval": [1, }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.json: .*line 2"):
        run.read_metrics()
    run.metrics_path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        run.read_metrics()
    run.metrics_path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"schema_version {SCHEMA_VERSION + 1}"):
        run.read_metrics()
    run.config_path.write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run_config\.yaml: .*malformed YAML"):
        run.read_config()


def test_config_and_eval_before_round_trip(tmp_path):
    run = RunDir(tmp_path)
    cfg = RunConfig.from_preset("smollm2-135m-cpu", ["training.learning_rate=0.0003"])
    run.write_config(cfg)
    assert RunConfig.from_dict(run.read_config()) == cfg
    run.write_eval_before({"response_loss": 2.5})
    assert run.read_eval_before() == {"response_loss": 2.5}


def test_hyperparameters_follow_the_config():
    cfg = RunConfig.from_preset("smollm2-135m-cpu", ["lora.r=8", "training.learning_rate=0.0003",
                                                     "quantization.compute_dtype=auto"])
    values = metrics_hyperparameters(cfg)
    assert list(values) == [path.split(".")[1] for path in HYPERPARAMETERS]
    assert values["r"] == 8 and values["learning_rate"] == 0.0003 and values["double_quant"] == cfg.quantization.double_quant
    assert values["compute_dtype"] in ("float32", "bfloat16", "float16")  # "auto" resolved to the dtype used
    raw = cfg.to_dict()
    del raw["training"]["seed"]
    assert "seed" not in hyperparameters(raw) and hyperparameters(raw)["r"] == 8  # a YAML mapping: what it has


def test_a_new_hyperparameter_needs_only_the_config(monkeypatch, tmp_path):
    """Listing a config leaf in HYPERPARAMETERS puts it in metrics.json and on the model card."""
    monkeypatch.setattr(schema, "HYPERPARAMETERS", (*schema.HYPERPARAMETERS, "training.max_grad_norm"))
    cfg = RunConfig.from_preset("smollm2-135m-cpu", ["training.max_grad_norm=0.7"])
    assert metrics_hyperparameters(cfg)["max_grad_norm"] == 0.7

    from hf_ita_plugin.hub.facts import facts_from_output_dir

    run = RunDir(tmp_path)
    run.write_config(cfg)
    run.write_metrics(RunMetrics(base_model="org/model", hyperparameters=metrics_hyperparameters(cfg)))
    facts = facts_from_output_dir(tmp_path, lookup=False)
    assert facts.hyperparameters["max_grad_norm"] == 0.7 and facts.hyperparameters["lora_r"] == cfg.lora.r
