"""Recipes as YAML: ``tympan train --config FILE [--section.field VALUE ...]`` through LightningCLI.

The configuration *is* the constructors' signatures (:class:`~tympan.train.AudioSystem` subclasses,
:class:`~tympan.data.AudioDataModule`, the Lightning ``Trainer``), so every field of a recipe can be overridden on
the command line (``--model.init_args.lr 1e-4``, ``--trainer.max_epochs 5``, ``--data.batch_size 64``), bad values
fail before training starts, and the resolved configuration is saved beside the logs of every run. The number of
classes and the label names are linked from the data to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..data.datamodule import AudioDataModule
from .systems import AudioSystem

__all__ = ["TrainCLI", "recipe_dir", "train_from_config"]


def recipe_dir() -> Path:
    """The folder of the bundled recipes (``configs/`` of the source tree)."""
    return Path(__file__).resolve().parents[3] / "configs"


class TrainCLI(LightningCLI):
    """LightningCLI with tympan's links (data -> model) and a resumable ``ckpt_path``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.labels", "model.init_args.labels", apply_on="instantiate")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from this checkpoint")
        parser.add_argument("--test", type=bool, default=False, help="test the final weights after training")


def train_from_config(args: Sequence[str]) -> dict[str, float]:
    """Build everything a recipe describes, train (resuming from ``--ckpt_path``), and return the final metrics.

    Args:
        args: command-line style arguments, e.g. ``["--config", "configs/dcase23_cpmobile_kd.yaml",
            "--trainer.max_epochs", "2"]``.
    """
    cli = TrainCLI(
        AudioSystem,
        AudioDataModule,
        subclass_mode_model=True,
        args=list(args),
        run=False,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    metrics: dict[str, Any] = dict(cli.trainer.callback_metrics)
    if cli.config.get("test"):
        metrics.update(cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0])
    return {k: float(v) for k, v in metrics.items()}
