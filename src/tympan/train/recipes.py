"""Recipes as YAML: ``tympan train --config FILE [--section.field VALUE ...]`` through LightningCLI.

The configuration *is* the constructors' signatures (:class:`~tympan.train.AudioSystem` subclasses,
:class:`~tympan.data.AudioDataModule`, the Lightning ``Trainer``), so every field of a recipe can be overridden on
the command line (``--model.init_args.optimizer.init_args.lr 1e-4``, ``--trainer.max_epochs 5``,
``--data.batch_size 64``), bad values fail before training starts, and the resolved configuration is saved beside
the logs of every run. For the tagging and scene systems the number of classes and the label names are linked from
the data to the model; recipes of other LightningModules (text-to-audio retrieval) run through the same command with
their own data module. A recipe with a ``device_specific`` section (DCASE25) is two stages: the recipe trains the
general model, then each training device gets a fine-tuned copy (:mod:`tympan.train.device_specific`), and the
routed models are evaluated per device. A recipe of :class:`~tympan.train.sed.SedSystem` reads event tables through
:class:`~tympan.sed.data.EventDataModule`.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..data.datamodule import AudioDataModule
from .device_specific import (
    DeviceFineTuning,
    devices_to_fine_tune,
    evaluate_device_specific,
    fine_tune_devices,
    save_device_specific,
)
from .systems import AudioSystem

__all__ = ["DeviceSpecificCLI", "RecipeCLI", "TrainCLI", "recipe_dir", "resolve_recipe", "train_from_config"]

_DEVICE_SECTION = "device_specific"
# Trainer settings the device-specific runs share with stage 1 (their length, logging and checkpoints are their own)
_SHARED_TRAINER_ARGS = ("accelerator", "strategy", "devices", "num_nodes", "precision", "enable_progress_bar",
                        "enable_model_summary", "log_every_n_steps", "deterministic", "gradient_clip_val",
                        "logger")  # fmt: skip


def recipe_dir() -> Path:
    """The folder of the bundled recipes (``tympan/configs``, installed with the package)."""
    return Path(__file__).resolve().parents[1] / "configs"


def resolve_recipe(name: str) -> str:
    """A ``--config`` value as a path: an existing file as it is, else the bundled recipe of that name."""
    bundled = recipe_dir() / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return name if Path(name).exists() or not bundled.is_file() else str(bundled)


class RecipeCLI(LightningCLI):
    """LightningCLI for any LightningModule / LightningDataModule recipe, with a resumable ``ckpt_path``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from this checkpoint")
        parser.add_argument("--test", type=bool, default=False, help="test the final weights after training")


class TrainCLI(RecipeCLI):
    """The recipe CLI of the tagging / scene systems, which links the data's classes and labels to the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.labels", "model.init_args.labels", apply_on="instantiate")


class DeviceSpecificCLI(TrainCLI):
    """The two-stage DCASE25 recipe: :class:`TrainCLI` plus the ``device_specific`` section (DeviceFineTuning)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_class_arguments(DeviceFineTuning, _DEVICE_SECTION)


def _recipes(args: Sequence[str]) -> list[dict[str, Any]]:
    """The YAML contents of the ``--config`` files among ``args``."""
    return [yaml.safe_load(Path(value).read_text()) or {} for flag, value in itertools.pairwise(args)
            if flag == "--config" and Path(value).is_file()]  # fmt: skip


def _model_class(args: Sequence[str]) -> type | None:
    """The LightningModule a recipe names: ``model.class_path`` of its ``--config`` files or a ``--model`` flag."""
    class_path = None
    for model in (recipe.get("model") for recipe in _recipes(args)):
        class_path = model.get("class_path", class_path) if isinstance(model, dict) else class_path
    for flag, value in itertools.pairwise(args):
        if flag in ("--model", "--model.class_path"):
            class_path = value
    if not class_path or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None  # the CLI reports the bad class path itself


def train_from_config(args: Sequence[str]) -> dict[str, float]:
    """Build everything a recipe describes, train (resuming from ``--ckpt_path``), and return the final metrics.

    Args:
        args: command-line style arguments, e.g. ``["--config", "dcase23_cpmobile_kd",
            "--trainer.max_epochs", "2"]``.
    """
    args = [resolve_recipe(v) if flag == "--config" else v for flag, v in zip(["", *args], args, strict=False)]
    model_class = _model_class(args)
    tagging_or_scenes = model_class is None or issubclass(model_class, AudioSystem)
    two_stages = any(_DEVICE_SECTION in recipe for recipe in _recipes(args)) or any(
        a.startswith(f"--{_DEVICE_SECTION}.") for a in args
    )
    cli_class, model, data = (
        (DeviceSpecificCLI if two_stages else TrainCLI, AudioSystem, _data_module(model_class))
        if tagging_or_scenes
        else (RecipeCLI, L.LightningModule, None)
    )
    with warnings.catch_warnings():
        # LightningCLI warns when sys.argv is also set, which is how the `tympan train` command calls it
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = cli_class(
            model,
            data,
            subclass_mode_model=True,
            subclass_mode_data=data is None,
            args=args,
            run=False,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
        )
    if isinstance(cli, DeviceSpecificCLI):
        devices_to_fine_tune(cli.datamodule, DeviceFineTuning(**cli.config[_DEVICE_SECTION]))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    metrics: dict[str, Any] = dict(cli.trainer.callback_metrics)
    if cli.config.get("test"):
        metrics.update(cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0])
    if isinstance(cli, DeviceSpecificCLI):
        metrics.update(_device_stage(cli))
    return {k: float(v) for k, v in metrics.items()}


def _data_module(model_class: type | None) -> type[L.LightningDataModule]:
    """The data module of an :class:`AudioSystem` recipe: event tables for sound event detection, else clips."""
    from .sed import SedSystem

    if model_class is not None and issubclass(model_class, SedSystem):
        from ..sed.data import EventDataModule

        return EventDataModule
    return AudioDataModule


def _device_stage(cli: DeviceSpecificCLI) -> dict[str, float]:
    """Stage 2 of a DCASE25 recipe after stage 1 trained ``cli.model``: fine-tune, evaluate per device, save."""
    settings = DeviceFineTuning(**cli.config[_DEVICE_SECTION])
    shared = {k: cli.config.trainer[k] for k in _SHARED_TRAINER_ARGS if cli.config.trainer.get(k) is not None}
    if shared.get("logger") is not False:
        shared.pop("logger", None)  # each device run logs to a CSV of its own
    root = Path(cli.trainer.default_root_dir)
    routed = fine_tune_devices(cli.model, cli.datamodule, settings, shared, root)
    results = evaluate_device_specific(routed, cli.datamodule)
    if cli.trainer.is_global_zero:  # under DDP every rank ran both stages; one writes the file
        path = save_device_specific(routed, cli.model, root / settings.output, results)
        logging.getLogger(__name__).info("device-specific models of %s written to %s", routed.devices, path)
    return results
