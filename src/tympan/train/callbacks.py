"""Callbacks of the recipes: periodic weight averaging (PaSST's SWA) on top of Lightning's ``WeightAveraging``, and
the DyMN temperature schedule.

Checkpointing with resume is Lightning's ``ModelCheckpoint`` (``save_last=True``); the systems add the
self-description, the measured complexity and the RNG states to every checkpoint they write.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, WeightAveraging

from ..errors import ConfigError
from ..models.dymn import DyMN

__all__ = ["DyMNTemperature", "PeriodicWeightAveraging"]


class DyMNTemperature(Callback):
    """Sets a DyMN's attention temperature from its schedule at the start of every epoch (EfficientAT DyMN recipe).

    The temperature is a function of the epoch only, so a resumed run continues the schedule exactly.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        if not isinstance(model, DyMN):
            raise ConfigError(f"DyMNTemperature needs a DyMN model, got {type(model).__name__}; remove the callback")
        pl_module.log("train/temperature", model.update_temperature(trainer.current_epoch))


class PeriodicWeightAveraging(WeightAveraging):
    """Equal-weight running average of the weights, snapshotted at the *start* of every ``every_n_epochs``-th epoch
    from ``start_epoch`` on (0-based), as PaSST's ``helpers/swa_callback.py`` does.

    PaSST's AudioSet recipe (``swa_epoch_start=50``, ``swa_freq=5``) is ``start_epoch=49, every_n_epochs=5``: the
    weights entering the average are those at the start of epochs 49, 54, ..., 129, i.e. after 49, 54, ..., 129
    epochs of training, and the updates of the last epoch are not averaged. Its fine-tuning recipes average from
    ``swa_epoch_start=2`` every epoch (``start_epoch=1``). Validation, checkpoints and the final weights use the
    average once it holds a snapshot, and the current weights before that.

    Args:
        start_epoch: the first (0-based) epoch at whose start the weights enter the average.
        every_n_epochs: snapshot period in epochs.
        use_buffers: also average buffers (BatchNorm statistics) instead of keeping the current ones.
    """

    def __init__(self, start_epoch: int = 0, every_n_epochs: int = 1, use_buffers: bool = True):
        if start_epoch < 0 or every_n_epochs < 1:
            raise ConfigError(f"need start_epoch >= 0 and every_n_epochs >= 1, got {start_epoch}, {every_n_epochs}")
        super().__init__(use_buffers=use_buffers)
        self.start_epoch = start_epoch
        self.every_n_epochs = every_n_epochs

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return False  # never after a step or at an epoch's end: the snapshots are taken in on_train_epoch_start

    def snapshot_epoch(self, epoch: int) -> bool:
        """Whether the weights at the start of (0-based) ``epoch`` enter the average."""
        return epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every_n_epochs == 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self._average_model is not None and epoch > self._latest_update_epoch and self.snapshot_epoch(epoch):
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch

    def _averaged(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._averaged():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._averaged():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._averaged():
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._averaged():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)
