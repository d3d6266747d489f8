"""The SED recipes build their system and event data module and train a few steps on a tiny generated set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.sed._weak import split_weak_table
from tympan import load
from tympan.sed.corpus import generate_event_set
from tympan.sed.teacher import compute_frame_teacher_logits
from tympan.train.recipes import train_from_config

TINY_MODEL = ["--model.init_args.model", "frame_mn", "--model.init_args.pretrained", "false",
              "--model.init_args.model_kwargs", json.dumps({"width_mult": 0.1})]  # fmt: skip


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("data")
    strong, weak = split_weak_table(generate_event_set(root / "train", files=12, seconds=2.0, max_events=1), 4)
    val = generate_event_set(root / "val", files=4, seconds=2.0, max_events=1, seed=1)
    return strong, weak, val


def _overrides(tmp_path: Path, strong: Path, val: Path) -> list[str]:
    return [*TINY_MODEL, "--data.data", str(strong), "--data.val_data", str(val), "--data.clip_seconds", "2.0",
            "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.max_steps", "3",
            "--trainer.accelerator", "cpu", "--trainer.precision", "32", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run")]  # fmt: skip


def test_desed_recipe_trains_on_strong_weak_and_validation_tables(tmp_path: Path, tables) -> None:
    strong, weak, val = tables
    metrics = train_from_config(
        ["--config", "dcase_task4_desed", *_overrides(tmp_path, strong, val), "--data.weak_data", str(weak)]
    )
    assert {"train/loss", "val/loss"} <= set(metrics) and all(map(math.isfinite, metrics.values()))


def test_audioset_strong_recipe_distils_from_a_frame_teacher_store(tmp_path: Path, tables) -> None:
    strong, weak, val = tables
    torch.manual_seed(0)
    teacher = load("frame_mn", num_classes=3, width_mult=0.1, device="cpu", pretrained=False)
    teacher.labels = ["babble", "hum", "rain"]
    store = compute_frame_teacher_logits([teacher], strong, tmp_path / "teacher", clip_seconds=2.0, weak_table=weak)
    args = ["--config", "audioset_strong_frame_mn_kd", *_overrides(tmp_path, strong, val),
            "--model.init_args.teacher_logits", str(store), "--model.init_args.warmup_steps", "1",
            "--data.weak_data", str(weak), "--model.init_args.weak_weight", "0.5"]  # fmt: skip
    metrics = train_from_config(args)
    assert {"train/kd_loss", "train/label_loss", "val/loss"} <= set(metrics)
