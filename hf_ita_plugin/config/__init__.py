"""Run configuration: the schema (six sections), packaged presets and ``section.key=value`` overrides."""

from .schema import (
    DataConfig,
    EvaluationConfig,
    LoraConfig,
    ModelConfig,
    QuantizationConfig,
    RunConfig,
    TrainingConfig,
    apply_overrides,
    list_presets,
    load_preset_dict,
)

__all__ = ["DataConfig", "EvaluationConfig", "LoraConfig", "ModelConfig", "QuantizationConfig", "RunConfig",
           "TrainingConfig", "apply_overrides", "list_presets", "load_preset_dict"]
