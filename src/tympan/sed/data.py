"""Training batches from event tables: waveforms with frame targets at the model's frame rate.

Each item is one file cut or zero-padded to ``clip_seconds``, with its strong targets ``[classes, frames]`` (see
:func:`~tympan.sed.events.frame_targets`), its weak (clip) targets ``[classes]`` and ``has_strong``. A file of the
strong table has both targets (the clip targets are the classes present anywhere in it); a file of a weak table
(DESED's ``weak.tsv``) has only clip targets, its frame targets are zeros and ``has_strong`` is False, so that one
batch trains the frame head on the strong items and the clip head on all of them, as the DCASE Task 4 recipes do.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..audio.io import audio_info, load_audio
from ..data.decode import fit_length
from ..errors import ConfigError, DataError
from .events import EventTable, WeakLabelTable, clip_targets, frame_targets, read_events, read_weak_labels

__all__ = ["EventDataModule", "EventDataset", "MixedBatchSampler"]

MAX_CLIP_SECONDS = 10.0


class EventDataset(Dataset):
    """The files ``files`` of ``table`` (strong items), then ``weak_files`` of ``weak`` (weak-only items).

    Args:
        table: the strong event table.
        files: its files in this split.
        sample_rate: rate of the waveforms in Hz.
        clip_seconds: length every clip is cut or padded to.
        frames: output frames per clip of the model; ``frame_seconds``: their hop.
        weak: a weak label table with the same ``labels`` (None: strong items only).
        weak_files: its files in this split.
    """

    def __init__(
        self, table: EventTable, files: Sequence[str], sample_rate: int, clip_seconds: float, frames: int,
        frame_seconds: float, weak: WeakLabelTable | None = None, weak_files: Sequence[str] = (),
    ) -> None:  # fmt: skip
        if weak_files and (weak is None or weak.labels != table.labels):
            raise ConfigError("weak-only items need a weak label table with the strong table's labels")
        self.table, self.weak = table, weak
        self.files, self.weak_files = list(files), list(weak_files)
        self.sample_rate, self.samples = sample_rate, round(clip_seconds * sample_rate)
        self.frames, self.frame_seconds = frames, frame_seconds

    @property
    def ids(self) -> list[str]:
        """Clip ids (the file names of the tables), the keys of a frame-level teacher-logit store."""
        return self.files + self.weak_files

    @property
    def strong_count(self) -> int:
        """Items ``0 .. strong_count - 1`` are strong, the rest weak-only."""
        return len(self.files)

    def __len__(self) -> int:
        return len(self.files) + len(self.weak_files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        labels, has_strong = self.table.labels, index < len(self.files)
        if has_strong:
            file = self.files[index]
            path = self.table.path(file)
            strong = frame_targets(self.table.events[file], labels, self.frames, self.frame_seconds)
            weak = strong.max(axis=1)  # the classes present anywhere in the clip
        else:
            assert self.weak is not None  # __init__ refuses weak files without their table
            file = self.weak_files[index - len(self.files)]
            path, weak = self.weak.path(file), clip_targets(self.weak.tags[file], labels)
            strong = np.zeros((len(labels), self.frames), np.float32)  # dummy frame targets, masked in the loss
        waveform = fit_length(load_audio(path, sample_rate=self.sample_rate), self.samples)
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)),
            "target": torch.from_numpy(strong),
            "weak_target": torch.from_numpy(weak),
            "has_strong": has_strong,
            "id": file,
            "index": index,
        }


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of ``strong_per_batch`` strong and ``weak_per_batch`` weak-only items of an :class:`EventDataset`.

    A fixed composition whatever the sizes of the two sets (DCASE Task 4: 12 synthetic strong + 12 weak clips of
    every batch, where shuffling the union would give about one weak clip in seven). Each epoch draws a fresh order
    of both sets and ends when one of them runs out, as the DCASE baseline's ``ConcatDatasetBatchSampler``. Under
    DDP every rank draws the same order and takes every ``world_size``-th batch from ``rank`` on (train with
    ``Trainer(use_distributed_sampler=False)``: Lightning cannot inject its sampler here).
    """

    def __init__(
        self, strong: int, weak: int, strong_per_batch: int, weak_per_batch: int, generator: torch.Generator,
        rank: int = 0, world_size: int = 1,
    ) -> None:  # fmt: skip
        if strong_per_batch < 1 or weak_per_batch < 1 or strong < strong_per_batch or weak < weak_per_batch:
            raise ConfigError(f"cannot draw {strong_per_batch} strong + {weak_per_batch} weak items per batch from "
                              f"{strong} strong and {weak} weak items")  # fmt: skip
        self.strong, self.weak = strong, weak
        self.strong_per_batch, self.weak_per_batch, self.generator = strong_per_batch, weak_per_batch, generator
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return min(self.strong // self.strong_per_batch, self.weak // self.weak_per_batch) // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        strong = torch.randperm(self.strong, generator=self.generator).tolist()
        weak = (torch.randperm(self.weak, generator=self.generator) + self.strong).tolist()
        s, w = self.strong_per_batch, self.weak_per_batch
        for step in range(len(self)):
            batch = step * self.world_size + self.rank
            yield strong[batch * s : (batch + 1) * s] + weak[batch * w : (batch + 1) * w]


class EventDataModule(L.LightningDataModule):
    """A strong event table split into training and validation files, with optional weak-only training files.

    Args:
        data: the strong event table (``.tsv`` / ``.csv``; see :mod:`tympan.sed.events`).
        weak_data: a weak label table (DESED ``weak.tsv`` or a ``file,labels`` CSV) whose files join the training
            set with clip targets only.
        val_data: a strong table of validation files (DESED's real validation set); without it ``val_fraction`` of
            ``data`` is held out.
        audio_dir, weak_audio_dir, val_audio_dir: the folders the file names of ``data``, ``weak_data`` and
            ``val_data`` are relative to (default: each table's own folder).
        labels: class order (default: the training tables' labels, sorted by name).
        sample_rate: waveform rate in Hz (the model's); ``frames``, ``frame_seconds``: the model's output grid of a
            clip, set before training (:meth:`set_frame_grid`, else read from the trainer's system in :meth:`setup`).
        clip_seconds: clip length; default the median file duration (of up to 200 files), at most 10 s.
        batch_size: clips per batch.
        weak_fraction: share of every training batch taken from the weak files (DCASE Task 4: 0.5); None: one
            shuffled pool of all training files.
        num_workers: DataLoader worker processes.
        val_fraction: share of the strong files held out for validation (none with fewer than 10 files).
        seed: seed of the split and of the training order.
    """

    def __init__(
        self,
        data: str | Path,
        weak_data: str | Path | None = None,
        val_data: str | Path | None = None,
        audio_dir: str | Path | None = None,
        weak_audio_dir: str | Path | None = None,
        val_audio_dir: str | Path | None = None,
        labels: list[str] | None = None,
        sample_rate: int = 16000,
        clip_seconds: float | None = None,
        batch_size: int = 16,
        weak_fraction: float | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if weak_fraction is not None and (weak_data is None or not 0.0 < weak_fraction < 1.0):
            raise ConfigError(f"weak_fraction needs weak_data and a value in (0, 1), got {weak_fraction}")
        self.table = read_events(data, labels, audio_dir)
        if not self.table.files:
            raise DataError(f"{data} lists no files")
        self.weak_table = read_weak_labels(weak_data, labels, weak_audio_dir) if weak_data is not None else None
        if self.weak_table is not None:
            self._join_weak_table(labels)
        self.val_table = read_events(val_data, self.table.labels, val_audio_dir) if val_data is not None else None
        self.sample_rate, self.batch_size, self.num_workers, self.seed = sample_rate, batch_size, num_workers, seed
        self.weak_fraction = weak_fraction
        self.clip_seconds = clip_seconds or min(
            statistics.median(audio_info(self.table.path(f)).duration for f in self.table.files[:200]),
            MAX_CLIP_SECONDS,
        )
        order = np.random.default_rng(seed).permutation(len(self.table.files))
        held_out = round(val_fraction * len(order)) if len(order) >= 10 and self.val_table is None else 0
        self.split_files = {"train": sorted(self.table.files[i] for i in order[held_out:])}
        if held_out:
            self.split_files["val"] = sorted(self.table.files[i] for i in order[:held_out])
        self.frames: int | None = None
        self.frame_seconds: float | None = None
        self.datasets: dict[str, EventDataset] = {}

    multi_label = True  # events of several classes may sound at once

    def _join_weak_table(self, labels: list[str] | None) -> None:
        """One class order for both tables; refuse a file name in both (it keys the teacher-logit store)."""
        assert self.weak_table is not None
        shared = sorted(set(self.table.files) & set(self.weak_table.files))
        if shared:
            raise DataError(f"{len(shared)} files are in both the strong and the weak table (e.g. {shared[0]!r}); "
                            "list each file in one of them")  # fmt: skip
        order = labels or sorted({*self.table.labels, *self.weak_table.labels})
        self.table, self.weak_table = replace(self.table, labels=order), replace(self.weak_table, labels=order)

    @property
    def labels(self) -> list[str]:
        """Class names, in head order."""
        return list(self.table.labels)

    @property
    def num_classes(self) -> int:
        return len(self.table.labels)

    def set_frame_grid(self, frames: int, frame_seconds: float) -> None:
        """The model's output frames per clip and their hop in seconds (known once the model is built)."""
        self.frames, self.frame_seconds = frames, frame_seconds

    def split_tables(self) -> dict[str, list[str]]:
        """Files per split: ``train`` (the strong, then the weak files) and ``val`` when there is one."""
        splits = {"train": self.split_files["train"] + (self.weak_table.files if self.weak_table else [])}
        val = self.val_table.files if self.val_table is not None else self.split_files.get("val")
        return {**splits, **({"val": list(val)} if val else {})}

    def setup(self, stage: str | None = None) -> None:
        if self.frames is None and self.trainer is not None:  # a recipe: the system being trained knows its grid
            system = self.trainer.lightning_module
            self.set_frame_grid(system.output_frames(round(self.clip_seconds * self.sample_rate)), system.frame_seconds)
        if self.frames is None or self.frame_seconds is None:
            raise ConfigError("call set_frame_grid(frames, frame_seconds) with the model's output grid first")
        grid = (self.sample_rate, self.clip_seconds, self.frames, self.frame_seconds)
        weak_files = self.weak_table.files if self.weak_table is not None else []
        self.datasets["train"] = EventDataset(self.table, self.split_files["train"], *grid, self.weak_table,
                                              weak_files)  # fmt: skip
        if self.val_table is not None:
            self.datasets["val"] = EventDataset(self.val_table, self.val_table.files, *grid)
        elif "val" in self.split_files:
            self.datasets["val"] = EventDataset(self.table, self.split_files["val"], *grid)

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        dataset = self.datasets["train"]
        if self.weak_fraction is None:
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=False,
                              num_workers=self.num_workers, generator=generator)  # fmt: skip
        weak_per_batch = max(1, min(self.batch_size - 1, round(self.batch_size * self.weak_fraction)))
        ranks = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        sampler = MixedBatchSampler(dataset.strong_count, len(dataset) - dataset.strong_count,
                                    self.batch_size - weak_per_batch, weak_per_batch, generator, *ranks)  # fmt: skip
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets.get("val", []), batch_size=self.batch_size, num_workers=self.num_workers)
