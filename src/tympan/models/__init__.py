"""Networks and the model zoo: ``create(name_or_arch, checkpoint=None, **kwargs)``, ``bundle(name_or_checkpoint)``
and ``list_models()``.

The network files define models and know nothing of names; the registry stores names and imports no model; the
zoo modules (listed once, in :mod:`tympan.models.zoo`) register each family's architectures and presets. Importing
this package imports the zoo, as timm's ``models/__init__`` imports its model files, so the registry is full
whichever of its functions is called first.
"""

from __future__ import annotations

from . import zoo  # noqa: F401  (fills the registry)
from .base import AudioModel
from .bundles import ModelBundle, bundle, frontend_of
from .checkpoint import load_checkpoint, read_state_dict
from .device_specific import DeviceSpecificModel, load_device_specific
from .registry import ModelEntry, build, create, get_preset, list_architectures, list_models, resolve_spec
from .spec import ModelSpec
from .tympan_checkpoint import TympanCheckpoint, read_checkpoint, save_checkpoint

__all__ = [
    "AudioModel",
    "DeviceSpecificModel",
    "ModelBundle",
    "ModelEntry",
    "ModelSpec",
    "TympanCheckpoint",
    "build",
    "bundle",
    "create",
    "frontend_of",
    "get_preset",
    "list_architectures",
    "list_models",
    "load_checkpoint",
    "load_device_specific",
    "read_checkpoint",
    "read_state_dict",
    "resolve_spec",
    "save_checkpoint",
]
