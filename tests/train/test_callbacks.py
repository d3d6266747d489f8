"""PeriodicWeightAveraging: PaSST's SWA snapshots the weights at epoch *starts* (helpers/swa_callback.py)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.train._data import write_tone_dataset
from tympan.data import AudioDataModule
from tympan.errors import ConfigError
from tympan.train import PeriodicWeightAveraging, SceneSystem

from . import _tiny  # noqa: F401  (registers the tiny architecture)


class _Recorder(Callback):
    """The model's parameters at every epoch start, and at the first validation."""

    def __init__(self) -> None:
        self.at_start: list[list[torch.Tensor]] = []
        self.at_first_validation: list[torch.Tensor] | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.at_start.append([p.detach().clone() for p in pl_module.model.parameters()])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.at_first_validation is None and not trainer.sanity_checking:
            self.at_first_validation = [p.detach().clone() for p in pl_module.model.parameters()]


def test_snapshots_are_the_weights_at_the_start_of_the_chosen_epochs(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=4)
    module = AudioDataModule(str(csv), sample_rate=8000, clip_seconds=0.5, batch_size=2)
    system = SceneSystem("tiny_test", num_classes=2, lr=0.05)
    recorder = _Recorder()
    swa = PeriodicWeightAveraging(start_epoch=1, every_n_epochs=2)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[swa, recorder])  # fmt: skip
    trainer.fit(system, datamodule=module)
    # snapshots at the starts of epochs 1 and 3 = after 1 and 3 epochs of training; never the last epoch's end
    for final, first, second in zip(system.model.parameters(), recorder.at_start[1], recorder.at_start[3],
                                    strict=True):  # fmt: skip
        torch.testing.assert_close(final, (first + second) / 2)
    # before the first snapshot, validation sees the weights being trained, not the initial copy
    changed = [not torch.equal(a, b) for a, b in zip(recorder.at_first_validation, recorder.at_start[0], strict=True)]
    assert any(changed)


def test_the_passt_audioset_schedule_and_bad_arguments():
    swa = PeriodicWeightAveraging(start_epoch=49, every_n_epochs=5)  # passt_audioset.yaml: swa_epoch_start 50
    assert [e for e in range(130) if swa.snapshot_epoch(e)] == list(range(49, 130, 5))
    assert not swa.should_update(epoch_idx=49) and not swa.should_update(step_idx=3)
    with pytest.raises(ConfigError):
        PeriodicWeightAveraging(every_n_epochs=0)
