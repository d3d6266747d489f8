"""Training: LightningModules for tagging and scenes (with KD), callbacks, fine-tuning and recipes."""

from __future__ import annotations

from .api import FinetuneResult, export_checkpoint, finetune
from .callbacks import DyMNTemperature, PeriodicWeightAveraging
from .recipes import train_from_config
from .systems import AudioSystem, SceneSystem, TaggingSystem

__all__ = [
    "AudioSystem",
    "DyMNTemperature",
    "FinetuneResult",
    "PeriodicWeightAveraging",
    "SceneSystem",
    "TaggingSystem",
    "export_checkpoint",
    "finetune",
    "train_from_config",
]
