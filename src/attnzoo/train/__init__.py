"""Training, evaluation, checkpoints and distributed execution."""

from ..utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .checkpoint import latest_checkpoint, load_state, load_weights, save_weights
from .config import DataConfig, ExecutionConfig, FinetuneConfig, OptimConfig, TrainConfig
from .engine import TrainingDiverged, evaluate, lr_factor, train, variant_name

__all__ = [
    "DataConfig",
    "ExecutionConfig",
    "FinetuneConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainingDiverged",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "evaluate",
    "latest_checkpoint",
    "load_state",
    "load_weights",
    "lr_factor",
    "save_weights",
    "train",
    "variant_name",
]
