"""Callbacks of the recipes: periodic weight averaging (PaSST's SWA) on top of Lightning's ``WeightAveraging``, and
the DyMN temperature schedule.

Checkpointing with resume is Lightning's ``ModelCheckpoint`` (``save_last=True``); the systems add the
self-description, the measured complexity and the RNG states to every checkpoint they write.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback, WeightAveraging

from ..errors import ConfigError

__all__ = ["DyMNTemperature", "PeriodicWeightAveraging"]


class DyMNTemperature(Callback):
    """Sets a DyMN's attention temperature from its schedule at the start of every epoch (EfficientAT DyMN recipe).

    The temperature is a function of the epoch only, so a resumed run continues the schedule exactly.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        if not callable(getattr(model, "update_temperature", None)):
            raise ConfigError(f"DyMNTemperature needs a DyMN model, got {type(model).__name__}; remove the callback")
        pl_module.log("train/temperature", model.update_temperature(trainer.current_epoch))


class PeriodicWeightAveraging(WeightAveraging):
    """Equal-weight running average of the weights, updated at the end of every ``every_n_epochs``-th epoch.

    PaSST's AudioSet recipe averages from epoch 50 every 5 epochs (``start_epoch=49``, ``every_n_epochs=5``, 0-based)
    and its fine-tuning recipes from epoch 2 every epoch. Validation and the final weights use the average.

    Args:
        start_epoch: first (0-based) epoch whose weights enter the average.
        every_n_epochs: update period in epochs.
        use_buffers: also average buffers (BatchNorm statistics) instead of keeping the current ones.
    """

    def __init__(self, start_epoch: int = 0, every_n_epochs: int = 1, use_buffers: bool = True):
        super().__init__(use_buffers=use_buffers)
        self.start_epoch = start_epoch
        self.every_n_epochs = every_n_epochs

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return (
            epoch_idx is not None
            and epoch_idx >= self.start_epoch
            and (epoch_idx - self.start_epoch) % self.every_n_epochs == 0
        )
