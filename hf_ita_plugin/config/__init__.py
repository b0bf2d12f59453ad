"""Run configuration: the schema (six sections), packaged presets and ``section.key=value`` overrides."""

from .schema import (
    HYPERPARAMETERS,
    DataConfig,
    EvaluationConfig,
    LoraConfig,
    ModelConfig,
    QuantizationConfig,
    RunConfig,
    TrainingConfig,
    apply_overrides,
    hyperparameters,
    list_presets,
    load_preset_dict,
)

__all__ = ["HYPERPARAMETERS", "DataConfig", "EvaluationConfig", "LoraConfig", "ModelConfig", "QuantizationConfig", "RunConfig",
           "TrainingConfig", "apply_overrides", "hyperparameters", "list_presets", "load_preset_dict"]
