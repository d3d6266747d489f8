"""DCASE 2025 Task 1 device-specific adaptation: a general model, then one fine-tuned copy per training device.

Stage 1 trains a general model on the clips of all devices (any recipe; the DCASE25 one is the DCASE24 baseline on
the 25 % split). Stage 2 (:func:`fine_tune_devices`, after ``train_device_specific.py`` of
``CPJKU/dcase2025_task1_baseline``) fine-tunes every parameter of one copy of it per training device on that
device's training clips, validating on that device's test clips: AdamW 5e-4, weight decay 1e-4, a per-step cosine
with 200 warm-up steps, 50 epochs, no Freq-MixStyle, the stage-1 time roll and frequency masking. Inference routes
each clip to its device's model and falls back to the general one for unknown devices
(:class:`~tympan.models.device_specific.DeviceSpecificModel`); :func:`evaluate_device_specific` reports the
accuracy per device of both. ``tympan train --config dcase25_device_specific`` runs both stages in one command
(:mod:`tympan.train.recipes`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger

from ..data.datamodule import AudioDataModule
from ..errors import DataError
from ..eval import metrics
from ..models.bundles import frontend_of
from ..models.device_specific import DeviceSpecificModel
from ..models.tympan_checkpoint import TympanCheckpoint, save_checkpoint
from .systems import AudioSystem

__all__ = [
    "DeviceFineTuning",
    "devices_to_fine_tune",
    "evaluate_device_specific",
    "fine_tune_devices",
    "save_device_specific",
]

logger = logging.getLogger(__name__)

# Stage-1 hyperparameters that stage 2 does not take over: the network and its head come from the stage-1 model,
# and the reference fine-tunes with cross-entropy alone.
OptimizerFactory = Callable[[Any], torch.optim.Optimizer]
_NOT_INHERITED = ("model", "checkpoint", "num_classes", "model_kwargs", "labels", "teacher_logits", "lr",
                  "weight_decay", "adamw", "max_params", "max_macs", "complexity_seconds", "roll_samples", "gain_db",
                  "dir_folder", "dir_prob", "dir_devices", "mixstyle_p", "mixstyle_alpha")  # fmt: skip


@dataclass
class DeviceFineTuning:
    """Stage 2 of the DCASE25 recipe: the fine-tuning of one copy of the general model per device.

    Attributes:
        devices: the devices to fine-tune for (default: every device of the training split).
        max_epochs: epochs per device.
        lr: peak learning rate (AdamW, or Adam if stage 1 used Adam).
        weight_decay: weight decay.
        warmup_steps: linear warm-up of the per-step cosine schedule.
        mixstyle_p: Freq-MixStyle probability (the reference switches it off here).
        check_val_every_n_epoch: validation on the device's test clips every this many epochs.
        output: the device-specific checkpoint, relative to the trainer's ``default_root_dir``.
    """

    devices: list[str] | None = None
    max_epochs: int = 50
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    mixstyle_p: float = 0.0
    check_val_every_n_epoch: int = 10
    output: str = "device_specific.ckpt"


def fine_tune_devices(
    system: AudioSystem,
    datamodule: AudioDataModule,
    settings: DeviceFineTuning,
    trainer_kwargs: Mapping[str, Any] | None = None,
    root: str | Path = ".",
) -> DeviceSpecificModel:
    """Stage 2: fine-tune a copy of ``system.model`` (the trained general model) for each device.

    Args:
        system: the trained stage-1 system; its hyperparameters (augmentation, frontend changes, limits, seed) carry
            over to each device's run, except those ``settings`` sets.
        datamodule: the stage-1 data; each device trains and validates on its own clips of it.
        settings: the stage-2 settings.
        trainer_kwargs: Lightning ``Trainer`` arguments shared by the device runs (accelerator, devices,
            precision, ...); ``logger=False`` switches logging off.
        root: folder of the device runs' logs (``root/device_specific/<device>``).

    Returns:
        the general model and the fine-tuned ones, on the CPU in eval mode.

    Raises:
        DataError: a requested device has no training clips.
    """
    devices = devices_to_fine_tune(datamodule, settings)
    base = {k: v for k, v in (trainer_kwargs or {}).items() if k != "logger"}
    per_device = {}
    for device in devices:
        logger.info("fine-tuning the general model for device %s", device)
        tuned = _device_system(system, settings)
        trainer = L.Trainer(
            **base,
            max_epochs=settings.max_epochs,
            check_val_every_n_epoch=settings.check_val_every_n_epoch,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            logger=False if (trainer_kwargs or {}).get("logger") is False
            else CSVLogger(Path(root), name="device_specific", version=device),
        )  # fmt: skip
        trainer.fit(tuned, datamodule=datamodule.for_devices([device]))
        per_device[device] = tuned.model.cpu().eval()
    return DeviceSpecificModel(system.model.cpu().eval(), per_device)


def devices_to_fine_tune(datamodule: AudioDataModule, settings: DeviceFineTuning) -> list[str]:
    """The devices stage 2 fine-tunes for (checked before stage 1 starts, so a typo fails at once).

    Raises:
        DataError: a requested device has no training clips.
    """
    known = datamodule.split_tables()["train"].device_names
    devices = list(settings.devices) if settings.devices else known
    missing = sorted(set(devices) - set(known))
    if missing or not devices:
        raise DataError(f"no training clips of device(s) {missing or 'at all'}; the training split has {known}")
    return devices


def _device_system(system: AudioSystem, settings: DeviceFineTuning) -> AudioSystem:
    """A new system of the same kind around a copy of the general model, with the stage-2 optimisation."""
    kwargs = {k: v for k, v in system.hparams.items() if k not in _NOT_INHERITED and not k.startswith("_")}
    kwargs.update(lr_schedule="cosine_with_warmup", warmup_steps=settings.warmup_steps)
    optimizer = _with_rates(system.optimizer_factory, settings.lr, settings.weight_decay)
    augmentation = system.augmentation.with_mixstyle(settings.mixstyle_p)
    return type(system)(copy.deepcopy(system.model), labels=system.labels, optimizer=optimizer, limits=system.limits,
                        augmentation=augmentation, **kwargs)  # fmt: skip


def _with_rates(factory: OptimizerFactory, lr: float, weight_decay: float) -> OptimizerFactory:
    """Stage 1's optimiser (its class and other settings) at stage 2's learning rate and weight decay."""

    def build(parameters: Any) -> torch.optim.Optimizer:
        optimizer = factory(parameters)
        optimizer.defaults.update(lr=lr, weight_decay=weight_decay)
        for group in optimizer.param_groups:
            group.update(lr=lr, weight_decay=weight_decay)
        return optimizer

    return build


@torch.no_grad()
def evaluate_device_specific(model: DeviceSpecificModel, datamodule: AudioDataModule) -> dict[str, float]:
    """Accuracy, macro accuracy and accuracy per device of the routed models and of the general model alone.

    Clips come from the test split (the validation split when there is none); each is routed by the device its
    metadata names. Keys: ``device_specific/accuracy``, ``device_specific/macro_accuracy``,
    ``device_specific/accuracy/<device>``, and the same under ``general/``.
    """
    if not datamodule.datasets:
        datamodule.setup("test")
    loader = datamodule.test_dataloader() or datamodule.val_dataloader()
    if not loader:
        raise DataError("no test or validation clips to evaluate the device-specific models on")
    frontend = frontend_of(model)
    model = model.cpu().eval()
    names = datamodule.device_names
    targets, devices, routed, general = [], [], [], []
    for batch in loader:
        if batch is None:
            continue
        mel = frontend(batch["audio"]).unsqueeze(1)
        clip_devices = [names[i] if i >= 0 else None for i in batch["device_index"].tolist()]
        routed.append(model(mel, clip_devices))
        general.append(model.general(mel))
        targets.append(batch["target"])
        devices += [d or "" for d in clip_devices]
    target = torch.cat(targets).numpy()
    labels = model.labels or datamodule.labels
    results = {}
    for name, logits in (("device_specific", routed), ("general", general)):
        result = metrics.classification_metrics(target, torch.cat(logits).float().numpy(), labels, devices)
        results[f"{name}/accuracy"] = result["accuracy"]
        results[f"{name}/macro_accuracy"] = result["macro_accuracy"]
        results.update({f"{name}/accuracy/{d}": v for d, v in result["accuracy_per_device"].items() if d})
    return {k: float(np.asarray(v)) for k, v in results.items()}


def save_device_specific(
    model: DeviceSpecificModel, system: AudioSystem, path: str | Path, results: Mapping[str, float] | None = None
) -> Path:
    """Write the general and per-device weights with the general system's self-description, atomically.

    The file's ``state_dict`` is the general model's (``model.*``), so :func:`tympan.load` reads it as that model;
    :func:`tympan.models.device_specific.load_device_specific` reads all of them.
    """
    checkpoint = system.to_checkpoint(dict(results or {}))
    provenance = {**checkpoint.provenance, "device_specific": {"devices": model.devices}}
    per_device = {device: network.state_dict() for device, network in model.per_device.items()}
    stored = TympanCheckpoint(checkpoint.spec, model.general.state_dict(), checkpoint.metrics, provenance, per_device)
    return save_checkpoint(stored, path)
