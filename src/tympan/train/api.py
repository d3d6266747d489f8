"""The Python side of ``tympan finetune``: a user's labelled clips -> a self-describing fine-tuned checkpoint.

``finetune("my_sounds/", "mn10_as", epochs=10, output="out")`` reads the data (a ``file,label`` CSV or a folder
with one sub-folder per label), builds the preset with its official weights and a new head for the user's labels,
trains with the recipe defaults of EfficientAT's fine-tuning scripts (Adam, warm-up then linear decay, spectrogram
mixup), keeps the best epoch on the validation split and writes ``out/model.ckpt``, which
``tympan tag --checkpoint out/model.ckpt`` and :func:`tympan.load` read with no other settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..data.datamodule import AudioDataModule
from ..errors import ConfigError
from ..files import atomic_path
from .systems import AudioSystem, SceneSystem, TaggingSystem

__all__ = ["FinetuneResult", "export_checkpoint", "finetune", "system_class"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        checkpoint: the self-describing ``model.ckpt``.
        metrics: validation metrics of the kept weights (e.g. ``{"val/accuracy": 0.93, ...}``).
        labels: class names, in logit order.
        output_dir: the run folder (also holds ``checkpoints/`` and the CSV / TensorBoard logs).
    """

    checkpoint: Path
    metrics: dict[str, float]
    labels: list[str]
    output_dir: Path


def system_class(multi_label: bool) -> type[AudioSystem]:
    """TaggingSystem for multi-label data, SceneSystem otherwise."""
    return TaggingSystem if multi_label else SceneSystem


def export_checkpoint(system: AudioSystem, path: str | Path, metrics: dict[str, float] | None = None) -> Path:
    """Write the minimal self-describing checkpoint: ``{"tympan": description, "state_dict": {"model.*": ...}}``."""
    state = {f"model.{k}": v.detach().cpu() for k, v in system.model.state_dict().items()}
    payload = {"tympan": {**system.describe(), "metrics": dict(metrics or {})}, "state_dict": state}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def finetune(
    data: str | Path,
    model: str = "mn10_as",
    *,
    checkpoint: str | Path | None = None,
    epochs: int = 10,
    output: str | Path = "finetuned",
    batch_size: int = 32,
    lr: float | None = None,
    clip_seconds: float | None = None,
    val_fraction: float = 0.1,
    mixup_alpha: float = 0.3,
    pretrained: bool = True,
    num_workers: int = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str | None = None,
    seed: int = 0,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    system_kwargs: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on the labelled clips of ``data`` and write ``output/model.ckpt``.

    Args:
        data: a CSV (``file,label`` or ``file,labels`` with ``;``-separated tags; paths relative to the CSV; an
            optional ``split`` column) or a folder with one sub-folder per label.
        model: a zoo preset (official weights unless ``pretrained=False`` or ``checkpoint``) or an architecture.
        checkpoint: initial weights instead of the official ones.
        epochs: training epochs.
        output: run folder.
        batch_size: clips per batch.
        lr: peak learning rate; default 1e-4 from pretrained weights, 1e-3 from scratch.
        clip_seconds: clip length; default the median file duration (at most 10 s).
        val_fraction: share of clips held out for validation when the data has no ``split`` column.
        mixup_alpha: spectrogram mixup (0 disables).
        pretrained: start a preset from its official weights.
        num_workers: DataLoader worker processes.
        accelerator: Lightning Trainer accelerator.
        devices: Lightning Trainer devices.
        precision: Lightning Trainer precision.
        seed: seeds Python, numpy and torch (``lightning.seed_everything``).
        progress: show progress bars.
        cache_dir: decoded-clip cache (default ``output/cache``).
        system_kwargs: further :class:`AudioSystem` arguments (augmentation, KD, complexity limits, ...).

    Returns:
        the checkpoint path, the validation metrics, the labels and the run folder.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    L.seed_everything(seed, workers=True, verbose=False)
    output = Path(output)
    module = AudioDataModule(
        str(data),
        clip_seconds=clip_seconds,
        batch_size=batch_size,
        num_workers=num_workers,
        val_fraction=val_fraction,
        cache_dir=str(cache_dir or output / "cache"),
        seed=seed,
    )
    initial = _initial_weights(model, checkpoint, pretrained)
    system_cls = system_class(module.multi_label)
    kwargs = {
        "num_classes": module.num_classes,
        "labels": module.labels,
        "checkpoint": initial,
        "lr": lr if lr is not None else (1e-4 if initial else 1e-3),
        "warmup_epochs": min(2, epochs // 4),
        "rampdown_start": epochs // 2,
        "rampdown_epochs": max(1, epochs - epochs // 2),
        "last_lr_factor": 0.01,
        "mixup_alpha": mixup_alpha,
        **(system_kwargs or {}),
    }
    system = system_cls(model, **kwargs)
    module.sample_rate = system.model.frontend_config.sample_rate
    monitor = "val/mAP" if module.multi_label else "val/accuracy"
    checkpointing = ModelCheckpoint(output / "checkpoints", monitor=monitor, mode="max", save_last=True)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        callbacks=[checkpointing],
        logger=[CSVLogger(output, name="logs"), TensorBoardLogger(output, name="tensorboard")],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(system, datamodule=module)
    if checkpointing.best_model_path:
        best = torch.load(checkpointing.best_model_path, map_location="cpu", weights_only=False)
        system.load_state_dict(best["state_dict"])
    metrics = {k: float(v) for k, v in trainer.validate(system, datamodule=module, verbose=False)[0].items()}
    path = export_checkpoint(system, output / "model.ckpt", metrics)
    logger.info("fine-tuned model written to %s", path)
    return FinetuneResult(path, metrics, module.labels, output)


def _initial_weights(model: str, checkpoint: str | Path | None, pretrained: bool) -> str | None:
    if checkpoint is not None:
        return str(checkpoint)
    from ..models.registry import get_preset, list_architectures

    if not pretrained or model in list_architectures():
        return None
    from ..hub import preset_checkpoint

    return str(preset_checkpoint(get_preset(model)))
