"""Reliability of training: resuming after a crash mid-epoch, and DDP on CPU agreeing with one process."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from tests.train._data import write_tone_dataset
from tympan.data import AudioDataModule
from tympan.models import read_checkpoint
from tympan.train import SceneSystem

from . import _tiny  # noqa: F401  (registers the tiny architecture)


class _Crash(Callback):
    """Simulates a killed run: fails in the middle of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("killed")


def _run(csv, folder, *, epochs=3, callbacks=(), ckpt_path=None, every_n_train_steps=None, **trainer_kwargs):
    L.seed_everything(0, workers=True, verbose=False)
    checkpoints = ModelCheckpoint(folder, save_last=True, every_n_train_steps=every_n_train_steps)
    module = AudioDataModule(str(csv), sample_rate=8000, clip_seconds=0.5, batch_size=4)
    system = SceneSystem(
        "tiny_test", num_classes=2, lr=0.01, frontend={"freqm": 4, "timem": 8}, warmup_epochs=0, rampdown_epochs=0
    )
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", deterministic=True, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[checkpoints, *callbacks],
        **trainer_kwargs,
    )  # fmt: skip
    trainer.fit(system, datamodule=module, ckpt_path=ckpt_path)
    return system, trainer


@pytest.mark.parametrize("every_n_train_steps", [None, 1], ids=["epoch-checkpoints", "step-checkpoints"])
def test_resume_after_a_crash_mid_epoch_matches_an_uninterrupted_run(tmp_path, every_n_train_steps):
    csv = write_tone_dataset(tmp_path / "data", per_class=8)
    reference, _ = _run(csv, tmp_path / "a")
    with pytest.raises(RuntimeError, match="killed"):  # the last checkpoint: end of epoch 0, or after 2 batches of 1
        _run(csv, tmp_path / "b", callbacks=[_Crash(epoch=1, batch=2)], every_n_train_steps=every_n_train_steps)
    loader_state = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["loops"]["fit_loop"]["state_dict"]
    expected = [{"epoch": 1, "batches": 2}] if every_n_train_steps else [{"epoch": 0, "batches": 3}]
    assert loader_state["combined_loader"] == expected
    resumed, trainer = _run(csv, tmp_path / "b", ckpt_path=tmp_path / "b" / "last.ckpt",
                            every_n_train_steps=every_n_train_steps)  # fmt: skip
    assert trainer.current_epoch == 3
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert read_checkpoint(tmp_path / "b" / "last.ckpt").provenance["complexity"]["params"] > 0


def test_two_process_ddp_on_cpu_agrees_with_one_process(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=8)

    def train(devices: int, batch_size: int):
        L.seed_everything(0, verbose=False)
        module = AudioDataModule(str(csv), sample_rate=8000, clip_seconds=0.5, batch_size=batch_size)
        system = SceneSystem(
            "tiny_test", num_classes=2, lr=0.01, model_kwargs={"batchnorm": False},
            frontend={"fmin_aug_range": 1, "fmax_aug_range": 1},  # no augmentation draws: ranks draw differently
        )  # fmt: skip
        trainer = L.Trainer(
            max_epochs=2, accelerator="cpu", devices=devices, strategy="ddp_fork" if devices > 1 else "auto",
            logger=False, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(system, datamodule=module)
        return system, trainer.callback_metrics

    single, single_metrics = train(devices=1, batch_size=8)
    distributed, ddp_metrics = train(devices=2, batch_size=4)  # the same global batch of 8
    for name, value in single.state_dict().items():
        torch.testing.assert_close(distributed.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)
    for name in ("val/accuracy", "val/loss"):
        assert float(ddp_metrics[name]) == pytest.approx(float(single_metrics[name]), abs=1e-5), name
