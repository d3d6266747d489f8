"""Training: LightningModules for tagging and scenes (with KD), callbacks, fine-tuning and recipes."""

from __future__ import annotations

from .api import FinetuneResult, export_checkpoint, finetune
from .callbacks import DyMNTemperature, PeriodicWeightAveraging
from .device_specific import DeviceFineTuning, evaluate_device_specific, fine_tune_devices, save_device_specific
from .recipes import train_from_config
from .systems import AudioSystem, SceneSystem, TaggingSystem

__all__ = [
    "AudioSystem",
    "DeviceFineTuning",
    "DyMNTemperature",
    "FinetuneResult",
    "PeriodicWeightAveraging",
    "SceneSystem",
    "TaggingSystem",
    "evaluate_device_specific",
    "export_checkpoint",
    "fine_tune_devices",
    "finetune",
    "save_device_specific",
    "train_from_config",
]
