"""Training batches from an event table: waveforms with frame targets at the model's frame rate.

Each item is one file cut or zero-padded to ``clip_seconds``, with its strong targets ``[classes, frames]`` (see
:func:`~tympan.sed.events.frame_targets`) and its weak (clip) targets ``[classes]``, the classes present anywhere
in the clip, so that a batch trains the frame head and the clip head at once.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..audio.io import audio_info, load_audio
from ..data.decode import fit_length
from ..errors import ConfigError, DataError
from .events import EventTable, frame_targets, read_events

__all__ = ["EventDataModule", "EventDataset"]

MAX_CLIP_SECONDS = 10.0


class EventDataset(Dataset):
    """The files ``files`` of ``table`` as training items.

    Args:
        table: the event table.
        files: the files of this split.
        sample_rate: rate of the waveforms in Hz.
        clip_seconds: length every clip is cut or padded to.
        frames: output frames per clip of the model; ``frame_seconds``: their hop.
    """

    def __init__(
        self, table: EventTable, files: list[str], sample_rate: int, clip_seconds: float, frames: int,
        frame_seconds: float,
    ) -> None:  # fmt: skip
        self.table, self.files = table, files
        self.sample_rate, self.samples = sample_rate, round(clip_seconds * sample_rate)
        self.frames, self.frame_seconds = frames, frame_seconds

    @property
    def ids(self) -> list[str]:
        """Clip ids (the file names of the table), the keys of a frame-level teacher-logit store."""
        return list(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        file = self.files[index]
        waveform = fit_length(load_audio(self.table.path(file), sample_rate=self.sample_rate), self.samples)
        strong = frame_targets(self.table.events[file], self.table.labels, self.frames, self.frame_seconds)
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)),
            "target": torch.from_numpy(strong),
            "weak_target": torch.from_numpy(strong.max(axis=1)),
            "id": file,
            "index": index,
        }


class EventDataModule(L.LightningDataModule):
    """An event table split into training and validation files.

    Args:
        data: the event table (``.tsv`` / ``.csv``; see :mod:`tympan.sed.events`).
        labels: class order (default: the table's, sorted by name).
        sample_rate: waveform rate in Hz (the model's); ``frames``, ``frame_seconds``: the model's output grid of a
            clip, set before training (:meth:`set_frame_grid`).
        clip_seconds: clip length; default the median file duration (of up to 200 files), at most 10 s.
        batch_size: clips per batch.
        num_workers: DataLoader worker processes.
        val_fraction: share of the files held out for validation (none with fewer than 10 files).
        seed: seed of the split and of the training order.
    """

    def __init__(
        self,
        data: str | Path,
        labels: list[str] | None = None,
        sample_rate: int = 16000,
        clip_seconds: float | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.table = read_events(data, labels)
        if not self.table.files:
            raise DataError(f"{data} lists no files")
        self.sample_rate, self.batch_size, self.num_workers, self.seed = sample_rate, batch_size, num_workers, seed
        self.clip_seconds = clip_seconds or min(
            statistics.median(audio_info(self.table.path(f)).duration for f in self.table.files[:200]),
            MAX_CLIP_SECONDS,
        )
        order = np.random.default_rng(seed).permutation(len(self.table.files))
        held_out = round(val_fraction * len(order)) if len(order) >= 10 else 0
        self.split_files = {"train": sorted(self.table.files[i] for i in order[held_out:])}
        if held_out:
            self.split_files["val"] = sorted(self.table.files[i] for i in order[:held_out])
        self.frames: int | None = None
        self.frame_seconds: float | None = None
        self.datasets: dict[str, EventDataset] = {}

    multi_label = True  # events of several classes may sound at once

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
        """Files per split (``train``, and ``val`` when files are held out)."""
        return dict(self.split_files)

    def setup(self, stage: str | None = None) -> None:
        if self.frames is None or self.frame_seconds is None:
            raise ConfigError("call set_frame_grid(frames, frame_seconds) with the model's output grid first")
        for split, files in self.split_files.items():
            self.datasets[split] = EventDataset(
                self.table, files, self.sample_rate, self.clip_seconds, self.frames, self.frame_seconds
            )

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.datasets["train"], batch_size=self.batch_size, shuffle=True, drop_last=False,
                          num_workers=self.num_workers, generator=generator)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets.get("val", []), batch_size=self.batch_size, num_workers=self.num_workers)
