"""The Python side of ``tympan finetune``: a user's labelled clips -> a self-describing fine-tuned checkpoint.

``finetune("my_sounds/", "mn10_as", output="out")`` reads the data (a ``file,label`` CSV or a folder with one
sub-folder per label), builds the preset with its official weights and a new head for the user's labels, trains
with Adam, an exponential warm-up then a linear ramp-down counted in optimizer steps, spectrogram mixup, a head that
learns faster than the backbone and frozen backbone BatchNorm statistics, keeps the best of a few validations of a
stratified split and writes ``out/model.ckpt``, which ``tympan tag --checkpoint out/model.ckpt`` and
:func:`tympan.load` read with no other settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..data.datamodule import AudioDataModule
from ..errors import ConfigError, DataError
from ..models.bundles import bundle
from ..models.tympan_checkpoint import read_checkpoint, save_checkpoint
from .schedules import StepPlan, plan_steps
from .systems import AudioSystem, SceneSystem, TaggingSystem

__all__ = ["TASKS", "FinetuneResult", "export_checkpoint", "finetune", "system_class"]

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS = 10
DEFAULT_MIN_STEPS = 120  # enough for a new head on a few clips per class (docs/finetuning.md has the measurements)
VALIDATIONS = 4  # validation passes of a short run (a long one validates after every epoch)
# "classify": clip labels (tagging or single-label classes, from the data); "sed": event tables, frame-level models.
TASKS = ("classify", "sed")
# Defaults that differ by task (measured in docs/finetuning.md and docs/sed.md).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classify": {"batch_size": 16, "lr": 1e-3, "mixup_alpha": 0.3, "min_steps": DEFAULT_MIN_STEPS},
    "sed": {"batch_size": 8, "lr": 2e-3, "mixup_alpha": 0.0, "min_steps": 80},
}
# BatchNorm momentum of a SED model trained from scratch: statistics that follow a run of a few hundred steps.
SED_BN_MOMENTUM = 0.1


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
    """Write the system's model as a tympan checkpoint (spec, weights, ``metrics``, provenance) to ``path``."""
    return save_checkpoint(system.to_checkpoint(metrics), path)


def finetune(
    data: str | Path,
    model: str = "mn10_as",
    *,
    task: str = "classify",
    weak_data: str | Path | None = None,
    weak_fraction: float | None = None,
    checkpoint: str | Path | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    min_steps: int | None = None,
    output: str | Path = "finetuned",
    batch_size: int | None = None,
    lr: float | None = None,
    backbone_lr_factor: float | None = None,
    layer_decay: float | None = None,
    freeze_bn: bool | None = None,
    clip_seconds: float | None = None,
    val_fraction: float = 0.1,
    mixup_alpha: float | None = None,
    pretrained: bool = True,
    num_workers: int = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str | None = None,
    seed: int = 0,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    optimizer: OptimizerCallable | None = None,
    system_kwargs: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on the labelled clips of ``data`` and write ``output/model.ckpt``.

    The defaults suit a small folder and pretrained weights (see ``docs/finetuning.md``): the run is counted in
    optimizer steps and lasts at least ``min_steps`` whatever the data size; the batch is at most the training set;
    the fresh head learns at ``lr`` and the pretrained backbone at ``lr × backbone_lr_factor``; the backbone's
    BatchNorm keeps its pretrained statistics; validation runs a few times per run, not every (tiny) epoch.

    Args:
        data: a CSV (``file,label`` or ``file,labels`` with ``;``-separated tags; paths relative to the CSV; an
            optional ``split`` column) or a folder with one sub-folder per label.
        model: a zoo preset (official weights unless ``pretrained=False`` or ``checkpoint``) or an architecture.
        task: ``"classify"`` (clip labels) or ``"sed"``: ``data`` is an event table (:mod:`tympan.sed.events`) and
            ``model`` a frame-level model (``frame_mn06``), trained by :class:`~tympan.train.sed.SedSystem`.
        weak_data: with ``task="sed"``, a weak (clip-level) label table (DESED ``weak.tsv``, a ``file,labels`` CSV)
            whose files train the clip head only, in the same batches as the strong files.
        weak_fraction: share of every batch taken from ``weak_data`` (DCASE Task 4: 0.5); default one shuffled pool.
        checkpoint: initial weights instead of the official ones. A head for other labels is re-initialised (the
            log names its keys); everything else loads strictly.
        epochs: passes over the training clips (default 10), stretched to ``min_steps`` optimizer steps if shorter.
        steps: the run length in optimizer steps instead (exactly; not with ``epochs``).
        min_steps: the shortest run ``epochs`` may give (0: none); default 120, 80 for ``sed``.
        output: run folder.
        batch_size: clips per optimizer step (at most the number of training clips); default 16, 8 for ``sed``.
        lr: peak learning rate of the head; default 1e-3, 2e-3 for ``sed``.
        backbone_lr_factor: the backbone's rate relative to ``lr``; default 0.1 from pretrained weights, else 1.
        layer_decay: layer-wise rate decay of the backbone (e.g. 0.75; default none).
        freeze_bn: keep the backbone's BatchNorm statistics; default on from pretrained weights.
        clip_seconds: clip length; default the median file duration (at most 10 s).
        val_fraction: share of every class held out for validation when the data has no ``split`` column (at least
            one clip per class, never a class's last; none when every class has a single clip).
        mixup_alpha: spectrogram mixup (0 disables); default 0.3, 0 for ``sed`` (from scratch on a few dozen files,
            plain frame targets learn in fewer steps).
        pretrained: start a preset from its official weights.
        num_workers: DataLoader worker processes.
        accelerator: Lightning Trainer accelerator.
        devices: Lightning Trainer devices.
        precision: Lightning Trainer precision.
        seed: seeds Python, numpy and torch (``lightning.seed_everything``).
        progress: show progress bars.
        cache_dir: decoded-clip cache (default ``output/cache``).
        optimizer: builds the optimiser from the parameter groups, e.g. ``functools.partial(torch.optim.SGD,
            lr=0.01, momentum=0.9)``; its learning rate is the head's (the backbone's follows ``backbone_lr_factor``
            / ``layer_decay``) and takes the place of ``lr``. Default: Adam at ``lr``.
        system_kwargs: further :class:`AudioSystem` arguments (augmentation, KD, complexity limits, ...).

    Returns:
        the checkpoint path, the validation metrics (empty without validation clips), the labels and the run folder.

    Raises:
        ConfigError: both ``epochs`` and ``steps``, both ``lr`` and ``optimizer``, a non-positive length, or
            ``weak_data`` without ``sed``.
        DataError: no training clips.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    if (weak_data is not None or weak_fraction is not None) and task != "sed":
        raise ConfigError("weak_data / weak_fraction (clip labels beside strong ones) need task='sed'")
    if optimizer is not None and lr is not None:
        raise ConfigError("give the learning rate inside `optimizer`, not also as lr")
    defaults = TASK_DEFAULTS[task]
    batch_size = batch_size or defaults["batch_size"]
    rate = {"optimizer": optimizer} if optimizer is not None else {"lr": lr if lr is not None else defaults["lr"]}
    mixup_alpha = mixup_alpha if mixup_alpha is not None else defaults["mixup_alpha"]
    min_steps = min_steps if min_steps is not None else defaults["min_steps"]
    L.seed_everything(seed, workers=True, verbose=False)
    output = Path(output)
    if task == "sed":
        from ..sed.data import EventDataModule

        module: Any = EventDataModule(data, weak_data, clip_seconds=clip_seconds, batch_size=batch_size,
                                      weak_fraction=weak_fraction, num_workers=num_workers,
                                      val_fraction=val_fraction, seed=seed)  # fmt: skip
    else:
        module = AudioDataModule(
            str(data),
            clip_seconds=clip_seconds,
            batch_size=batch_size,
            num_workers=num_workers,
            val_fraction=val_fraction,
            cache_dir=str(cache_dir or output / "cache"),
            seed=seed,
        )
    tables = module.split_tables()
    if "train" not in tables:
        raise DataError(f"no training clips in {data}; check the split column")
    plan = plan_steps(
        len(tables["train"]), batch_size, epochs=epochs if epochs or steps else DEFAULT_EPOCHS, steps=steps,
        min_steps=min_steps,
    )  # fmt: skip
    module.batch_size = plan.batch_size
    initial = str(checkpoint) if checkpoint is not None else _official_weights(model, pretrained)
    from_pretrained = initial is not None
    if backbone_lr_factor is None:
        backbone_lr_factor = 0.1 if from_pretrained else 1.0
    kwargs = {
        "num_classes": module.num_classes,
        "labels": module.labels,
        "checkpoint": initial,
        **rate,
        "backbone_lr_factor": backbone_lr_factor,
        "layer_decay": layer_decay,
        "freeze_backbone_bn": freeze_bn if freeze_bn is not None else from_pretrained,
        "warmup_steps": plan.warmup_steps,
        "rampdown_start_step": plan.rampdown_start_step,
        "rampdown_steps": plan.rampdown_steps,
        "last_lr_factor": 0.01,
        "mixup_alpha": mixup_alpha,
        **({"bn_momentum": SED_BN_MOMENTUM} if task == "sed" and not from_pretrained else {}),
        **(system_kwargs or {}),
    }
    system = _system_class(task, module.multi_label)(model, **kwargs)
    module.sample_rate = system.spec.sample_rate
    if task == "sed":
        clip_samples = round(module.clip_seconds * module.sample_rate)
        module.set_frame_grid(system.output_frames(clip_samples), system.frame_seconds)
    _log_plan(plan, batch_size, system)
    validating = "val" in tables
    interval = max(plan.steps_per_epoch, plan.steps // VALIDATIONS)
    monitor = ("val/mAP", "max") if module.multi_label and task != "sed" else ("val/loss", "min")
    checkpointing = ModelCheckpoint(
        output / "checkpoints", save_last=True,
        **({"monitor": monitor[0], "mode": monitor[1]} if validating else {"every_n_train_steps": interval}),
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=plan.steps,
        max_epochs=-1,
        val_check_interval=interval,
        check_val_every_n_epoch=None,
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
    metrics: dict[str, float] = {}
    if validating:
        if checkpointing.best_model_path:
            system.model.load_state_dict(read_checkpoint(checkpointing.best_model_path).state_dict)
        metrics = {k: float(v) for k, v in trainer.validate(system, datamodule=module, verbose=False)[0].items()}
    path = export_checkpoint(system, output / "model.ckpt", metrics)
    logger.info("fine-tuned model written to %s", path)
    return FinetuneResult(path, metrics, module.labels, output)


def _system_class(task: str, multi_label: bool) -> type[AudioSystem]:
    if task == "sed":
        from .sed import SedSystem

        return SedSystem
    return system_class(multi_label)


def _log_plan(plan: StepPlan, requested_batch: int, system: AudioSystem) -> None:
    if plan.batch_size < requested_batch:
        logger.info("batch size %d -> %d: the training set has %d clips", requested_batch, plan.batch_size,
                    plan.batch_size)  # fmt: skip
    hp = system.hparams
    head_lr = system.optimizer_factory([torch.nn.Parameter(torch.zeros(1))]).defaults["lr"]
    logger.info(
        "training %d optimizer steps (%.1f epochs of %d steps at batch %d): warm-up %d steps, ramp-down from step %d; "
        "head lr %g, backbone lr %g%s%s",
        plan.steps, plan.epochs, plan.steps_per_epoch, plan.batch_size, plan.warmup_steps, plan.rampdown_start_step,
        head_lr, head_lr * hp.backbone_lr_factor, f", layer decay {hp.layer_decay}" if hp.layer_decay else "",
        ", backbone BatchNorm statistics frozen" if hp.freeze_backbone_bn else "",
    )  # fmt: skip


def _official_weights(model: str, pretrained: bool) -> str | None:
    """The file of a preset's published weights (fetched now), or None for an architecture or without ``pretrained``."""
    weights = bundle(model, pretrained=pretrained).weights_source() if pretrained else None
    return None if weights is None else str(weights)
