"""Networks and the model zoo: ``create(name_or_arch, checkpoint=None, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

from .base import AudioModel
from .checkpoint import load_checkpoint, read_state_dict
from .device_specific import DeviceSpecificModel, load_device_specific
from .registry import ModelEntry, create, get_preset, list_architectures, list_models

__all__ = [
    "AudioModel",
    "DeviceSpecificModel",
    "ModelEntry",
    "create",
    "get_preset",
    "list_architectures",
    "list_models",
    "load_checkpoint",
    "load_device_specific",
    "read_state_dict",
]
