"""The recipe schema: one validated document per run; `from edgedistill.recipe import Recipe, load_recipe`.

base (Section, TermConfig, model-spec check) ← one module per section (sections, models, compress, compare,
track, explain, search) ← core (Recipe, overrides, build/load); loading holds the bounded YAML reader.
"""

from .base import Section, TermConfig, describe_section
from .compare import CompareConfig
from .compress import STAGE_TYPES, BudgetConfig, CompressConfig, DeployConfig, StageConfig
from .core import (
    Recipe,
    apply_overrides,
    build_recipe,
    describe_keys,
    format_validation_error,
    load_recipe,
    load_yaml,
    parse_override,
)
from .explain import ExplainConfig
from .models import ModelConfig, StudentConfig, TeacherConfig, TeachersConfig
from .search import SearchConfig
from .sections import (
    BornAgainConfig,
    DataConfig,
    DistillConfig,
    EvalConfig,
    OnlineConfig,
    OutputConfig,
    TrainConfig,
)
from .track import TrackConfig

__all__ = [
    "STAGE_TYPES", "BornAgainConfig", "BudgetConfig", "CompareConfig", "CompressConfig", "DataConfig",
    "DeployConfig", "DistillConfig", "EvalConfig", "ExplainConfig", "ModelConfig", "OnlineConfig", "OutputConfig",
    "Recipe", "SearchConfig", "Section", "StageConfig", "StudentConfig", "TeacherConfig", "TeachersConfig",
    "TermConfig", "TrackConfig", "TrainConfig", "apply_overrides", "build_recipe", "describe_keys",
    "describe_section", "format_validation_error", "load_recipe", "load_yaml", "parse_override",
]
