"""The DCASE24 Task 1 recipe builds the baseline system on a training split and steps a warm-up + cosine per step."""

from __future__ import annotations

import math
import warnings

import lightning as L
import pytest
import torch

from tests.train._data import write_tone_dataset
from tympan.audio.augmentation import Augmentation, FreqMixStyle, TimeRoll
from tympan.data import AudioDataModule
from tympan.eval.complexity import measure
from tympan.train.recipes import TrainCLI, resolve_recipe
from tympan.train.systems import AudioSystem, SceneSystem


class _LearningRates(L.Callback):
    """The learning rate each optimiser step uses."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def _cli(args: list[str]) -> TrainCLI:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return TrainCLI(AudioSystem, AudioDataModule, subclass_mode_model=True, args=args, run=False,
                        save_config_kwargs={"overwrite": True})


def test_dcase24_recipe_trains_the_baseline_on_a_split_with_a_per_step_cosine(tmp_path):
    csv = write_tone_dataset(tmp_path / "tau", per_class=8, classes=3)  # 6 training clips per class
    split = tmp_path / "tau" / "split_setup"
    split.mkdir()
    (split / "split25.csv").write_text("filename\tscene_label\n" + "".join(
        f"{label}_{i}.wav\t{label}\n" for label in ("low", "mid", "high") for i in range(4)))  # 12 of the 18
    cli = _cli([
        "--config", resolve_recipe("dcase24_baseline"), "--data.data", str(csv), "--data.train_split", "25",
        "--data.batch_size", "4", "--data.num_workers", "0", "--data.cache_dir", "null",
        "--model.init_args.warmup_steps", "2", "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "null",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run"),
    ])  # fmt: skip
    system = cli.model
    assert isinstance(system, SceneSystem) and system.model.preset.name == "cp_mobile_dcase24_baseline"
    assert system.limits.max_params == 64000 and system.limits.max_macs == 30e6
    assert system.augmentation == Augmentation([TimeRoll(4410)], [FreqMixStyle(0.4, 0.3)])
    assert system.frontend.config.kind == "htk" and system.frontend.config.num_frames(44100) == 65
    assert cli.datamodule.sample_rate == 44100 and system.labels == ["high", "low", "mid"]
    rates = _LearningRates()
    cli.trainer.callbacks.append(rates)
    cli.trainer.fit(system, datamodule=cli.datamodule)
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["lr"] == 0.005
    assert optimizer.defaults["weight_decay"] == 1e-4
    assert len(cli.datamodule.datasets["train"]) == 12  # the split's clips only: 3 steps of 4 per epoch
    measured = measure(system.model, (1, 1, 256, 65))  # the limits were checked on 1 s = 65 frames (3-class head)
    assert (system.complexity["params"], system.complexity["macs"]) == (measured.params, measured.macs)
    total = 6
    expected = [0.005 * (step / 2 if step < 2 else 0.5 * (1 + math.cos(math.pi * (step - 2) / (total - 2))))
                for step in range(total)]  # fmt: skip
    assert rates.rates == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert rates.rates[:3] == pytest.approx([0.0, 0.0025, 0.005])  # linear warm-up, then the cosine from the peak
