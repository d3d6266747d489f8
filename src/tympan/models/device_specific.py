"""Device-specific models (DCASE 2025 Task 1): one network per known recording device, a general one for the rest.

In DCASE25 the recording device of every clip is known at inference. The baseline (``CPJKU/dcase2025_task1_baseline``
``train_device_specific.py``, ``models/multi_device_model.py``) therefore fine-tunes one copy of a general model per
training device, and at inference routes each clip to its device's copy, or to the general model when the device is
unknown or was not in the training data (``s4``-``s6``). The complexity limits apply to each model on its own.

:class:`DeviceSpecificModel` is that router; unlike the reference it runs each device's clips of a mixed batch as
one sub-batch instead of clip by clip. :func:`load_device_specific` reads the file that
:func:`tympan.train.device_specific.save_device_specific` writes; that file's ``state_dict`` is the general model,
so :func:`tympan.load` on it gives the general model alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from .checkpoint import read_checkpoint_file
from .registry import build
from .spec import SpecProperties, spec_of
from .tympan_checkpoint import is_tympan_checkpoint, read_checkpoint

__all__ = ["DeviceSpecificModel", "load_device_specific"]


class DeviceSpecificModel(SpecProperties, nn.Module):
    """Logits ``[batch, classes]`` of mels ``[batch, 1, n_mels, frames]``, each clip by its device's model.

    Args:
        general: the model for clips of unknown or unseen devices (the stage-1 model).
        per_device: a model per known device name (e.g. ``{"a": ..., "s1": ...}``); all share ``general``'s
            frontend and classes.

    Attributes:
        spec, num_classes: those of ``general`` (``frontend_config`` and ``labels`` are views of the spec).
    """

    def __init__(self, general: nn.Module, per_device: Mapping[str, nn.Module]):
        super().__init__()
        if not per_device:
            raise ConfigError("a device-specific model needs at least one device's model")
        self.general = general
        self.per_device = nn.ModuleDict(dict(sorted(per_device.items())))
        self.spec = spec_of(general)
        self.num_classes: int = general.num_classes
        for device, model in self.per_device.items():
            if model.num_classes != self.num_classes:
                raise ConfigError(f"the model of device {device!r} has {model.num_classes} classes, the general one "
                                  f"{self.num_classes}")  # fmt: skip

    @property
    def labels(self) -> list[str]:
        """Class names, in logit order."""
        return list(self.spec.labels)

    @classmethod
    def from_general(cls, general: nn.Module, devices: Iterable[str]) -> DeviceSpecificModel:
        """A copy of ``general`` for each device (the start of the fine-tuning stage)."""
        return cls(general, {device: copy.deepcopy(general) for device in devices})

    @property
    def devices(self) -> list[str]:
        """The devices with a model of their own."""
        return list(self.per_device)

    def model_for(self, device: str | None) -> nn.Module:
        """The model that classifies clips of ``device``: its own, or the general one."""
        return self.per_device[device] if device in self.per_device else self.general  # noqa: SIM401 (no .get)

    def forward(self, mel: Tensor, devices: Sequence[str | None] | None = None) -> Tensor:
        """Route each clip to the model of its device (``None`` or an unknown name: the general model).

        Args:
            mel: ``[batch, 1, n_mels, frames]``.
            devices: one device name per clip, or None when no device is known (all clips: the general model).
        """
        if devices is None:
            return self.general(mel)
        if len(devices) != mel.shape[0]:
            raise ConfigError(f"{len(devices)} device names for a batch of {mel.shape[0]} clips")
        groups: dict[str | None, list[int]] = {}
        for index, device in enumerate(devices):
            groups.setdefault(device if device in self.per_device else None, []).append(index)
        if len(groups) == 1:
            return self.model_for(next(iter(groups)))(mel)
        logits = None
        for device, indices in groups.items():
            rows = torch.tensor(indices, device=mel.device)
            part = self.model_for(device)(mel.index_select(0, rows))
            logits = part.new_empty((mel.shape[0], *part.shape[1:])) if logits is None else logits
            logits[rows] = part
        return logits


def load_device_specific(path: str | Path) -> DeviceSpecificModel:
    """The device-specific model a DCASE25 run wrote (eval mode, on the CPU).

    Raises:
        CheckpointError: the file is not a device-specific checkpoint, or its weights do not fit.
    """
    content = read_checkpoint_file(path, "device-specific checkpoint")
    stored = read_checkpoint(content) if is_tympan_checkpoint(content) else None
    if stored is None or not stored.device_state_dicts:
        raise CheckpointError(f"{path} is not a device-specific checkpoint (written by a DCASE25 run of `tympan "
                              "train`); load a single model with tympan.load instead")  # fmt: skip
    per_device = {device: build(stored.spec, state) for device, state in stored.device_state_dicts.items()}
    return DeviceSpecificModel(build(stored.spec, stored.state_dict), per_device).eval()
