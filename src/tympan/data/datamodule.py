"""The LightningDataModule of every dataset layout tympan reads (see :mod:`tympan.data.metadata`).

Splits: the ``split`` column when the data has one (TAU22: train / test, where the test split doubles as
validation as in the DCASE23 reference); fold lists (ESC-50: ``val_folds=[k]``, training on the other folds); or a
seeded stratified ``val_fraction`` of every class's clips
(:func:`~tympan.data.splits.stratified_split`). ``train_split`` trains on a listed subset only (the DCASE24 Task 1
splits of 5 ... 100 % of the TAU22 training clips), and ``devices`` keeps the clips of some recording devices in
every split (the device-specific stage of DCASE25). ``prepare_data`` checks every audio header once, so an
unreadable file is reported with its path before any worker starts (and dropped with a warning when
``on_error="skip"``).
"""

from __future__ import annotations

import copy
import logging
import statistics
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from ..audio.io import audio_info
from ..errors import ConfigError, DataError
from .dataset import ClipDataset, OnError, collate_skipping, find_unreadable
from .decode import ClipLoader
from .metadata import ClipTable, read_audioset_hdf5, read_data, read_split_file, resolve_training_split
from .sampling import BalancedSampler, ShuffleSampler, class_balanced_weights
from .splits import stratified_split

__all__ = ["AudioDataModule", "ResumableLoader"]

logger = logging.getLogger(__name__)


class AudioDataModule(L.LightningDataModule):
    """Clips from a CSV, a label-folder tree, TAU22, ESC-50 or AudioSet HDF5 files, as training batches.

    Args:
        data: the dataset (a CSV file, a folder, or HDF5 files — several are concatenated, e.g. AudioSet balanced +
            unbalanced).
        val_data: a separate validation set (e.g. AudioSet ``eval_segments_mp3.hdf``); default: from ``data``.
        test_data: a separate test set; default: the ``test`` split of ``data``.
        labels: class names in model order (default: from the data).
        sample_rate: rate of the waveforms in Hz (the model's frontend rate).
        clip_seconds: every clip is zero-padded or cut to this length; None: the median duration of (up to 200 of)
            the files, at most 10 s.
        batch_size: clips per batch and process (the global batch under DDP is ``batch_size × world size``).
        num_workers: DataLoader worker processes.
        val_fraction: share of every class's clips held out for validation when the data has neither a split column
            nor folds (at least one per class, never a class's last clip).
        val_folds: folds held out for validation (training uses the remaining folds).
        train_folds: folds used for training (default: all except ``val_folds`` and ``test_folds``).
        test_folds: folds held out for testing.
        shuffle: reshuffle the training clips every epoch (off: file order, e.g. to compare runs).
        balanced_sampling: EfficientAT / PaSST class-balanced sampling (multi-label data).
        epoch_length: clips per training epoch with balanced sampling (default: all labelled clips).
        on_error: ``"raise"`` on an unreadable file, or ``"skip"`` it with a warning naming it.
        check_files: check every audio header in ``prepare_data`` (cheap; reports all bad files at once).
        cache_dir: folder for decoded and resampled clips (decoding once makes later epochs much faster).
        seed: seed of the random validation split and of the training order (a function of seed and epoch).
        train_split: train only on the clips a split file lists: a DCASE24 percentage (5, 10, 25, 50, 100:
            ``split{N}.csv`` in the dataset folder or its ``split_setup/``) or the path of such a file.
        devices: keep only the clips of these recording devices, in every split.
    """

    def __init__(
        self,
        data: str | Sequence[str],
        val_data: str | Sequence[str] | None = None,
        test_data: str | Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        sample_rate: int = 32000,
        clip_seconds: float | None = 10.0,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        val_folds: Sequence[int] | None = None,
        train_folds: Sequence[int] | None = None,
        test_folds: Sequence[int] | None = None,
        shuffle: bool = True,
        balanced_sampling: bool = False,
        epoch_length: int | None = None,
        on_error: OnError = "raise",
        check_files: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
        train_split: int | str | None = None,
        devices: Sequence[str] | None = None,
    ):
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.data = data
        self.val_data = val_data
        self.test_data = test_data
        self.label_names = list(labels) if labels is not None else None
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.val_folds = list(val_folds) if val_folds is not None else None
        self.train_folds = list(train_folds) if train_folds is not None else None
        self.test_folds = list(test_folds) if test_folds is not None else None
        self.shuffle = shuffle
        self.balanced_sampling = balanced_sampling
        self.epoch_length = epoch_length
        self.on_error = on_error
        self.check_files = check_files
        self.cache_dir = cache_dir
        self.seed = seed
        self.train_split = train_split
        self.devices = list(devices) if devices is not None else None
        self.loader: ClipLoader | None = None  # built in setup, when sample_rate and clip_seconds are final
        self.datasets: dict[str, ClipDataset] = {}

    @cached_property
    def table(self) -> ClipTable:
        """All clips of ``data``."""
        return _read(self.data, self.label_names)

    @property
    def labels(self) -> list[str]:
        return list(self.table.labels)

    @property
    def num_classes(self) -> int:
        return self.table.num_classes

    @property
    def multi_label(self) -> bool:
        return self.table.multi_label

    @property
    def device_names(self) -> list[str]:
        return self.table.device_names

    def for_devices(self, devices: Sequence[str]) -> AudioDataModule:
        """The same data restricted to the clips of ``devices`` in every split (the clip list is shared, not reread)."""
        subset = copy.copy(self)
        subset.devices = [d for d in devices if self.devices is None or d in self.devices]
        subset.datasets, subset.loader = {}, None
        return subset

    def prepare_data(self) -> None:
        if not self.check_files:
            return
        for table in (self.table, *self._extra_tables().values()):
            bad = find_unreadable(table)
            if bad and self.on_error == "raise":
                listed = "\n  ".join(f"{path}: {reason}" for path, reason in list(bad.items())[:20])
                raise DataError(
                    f"{len(bad)} unreadable audio file(s) in {table.name}:\n  {listed}\n"
                    "Fix or remove them, or pass on_error='skip' to train without them."
                )

    def setup(self, stage: str | None = None) -> None:
        if self.clip_seconds is None:
            self.clip_seconds = self._median_duration()
        self.loader = ClipLoader(self.sample_rate, round(self.clip_seconds * self.sample_rate), self.cache_dir)
        tables = self.split_tables()
        if self.on_error == "skip" and self.check_files:
            tables = {name: _without_unreadable(table) for name, table in tables.items()}
        self.datasets = {name: ClipDataset(table, self.loader, self.on_error) for name, table in tables.items()}
        if "train" not in self.datasets or len(self.datasets["train"]) == 0:
            raise DataError(f"no training clips in {self.data}; check the split / fold settings")

    def split_tables(self) -> dict[str, ClipTable]:
        """The train / val / test tables (val and test only where there are clips)."""
        table = self.table
        extra = self._extra_tables()
        splits = {r.split for r in table.records}
        folds = {r.fold for r in table.records} - {None}
        if self.val_folds or self.train_folds or self.test_folds:
            if not folds:
                raise ConfigError(f"fold settings were given but {table.name} has no fold column")
            held_out = set(self.val_folds or []) | set(self.test_folds or [])
            train_folds = self.train_folds or sorted(folds - held_out)
            result = {"train": table.where(folds=train_folds)}
            if self.val_folds:
                result["val"] = table.where(folds=self.val_folds)
            if self.test_folds:
                result["test"] = table.where(folds=self.test_folds)
        elif splits & {"train", "val", "test"}:
            result = {name: table.where(split=name) for name in ("train", "val", "test")}
            if len(result["val"]) == 0:
                result["val"] = result["test"]  # TAU22 / DCASE23: the test split is the validation set
        elif "val" in extra:
            result = {"train": table}
        else:
            train, val = stratified_split(table, self.val_fraction, self.seed)
            result = {"train": table.select(train), "val": table.select(val)}
        result.update(extra)
        if self.train_split is not None:
            result["train"] = self._training_subset(result["train"])
        if self.devices is not None:
            result = {name: t.recorded_by(self.devices) for name, t in result.items()}
        return {name: t for name, t in result.items() if len(t) > 0}

    def _training_subset(self, train: ClipTable) -> ClipTable:
        path = resolve_training_split(self.train_split, self.data if isinstance(self.data, (str, Path)) else ".")
        names = read_split_file(path)
        subset = train.restricted_to(names)
        if len(subset) < len(names):
            logger.warning("%s lists %d clips; %d of them are in the training split", path, len(names), len(subset))
        logger.info("training on %d of %d clips (%s)", len(subset), len(train), path.name)
        return subset

    def _median_duration(self, limit: float = 10.0) -> float:
        durations = [audio_info(r.source).duration for r in self.table.records[:200] if r.row is None]
        return min(limit, statistics.median(durations)) if durations else limit

    def _extra_tables(self) -> dict[str, ClipTable]:
        extra = {}
        for name, source in (("val", self.val_data), ("test", self.test_data)):
            if source is not None:
                extra[name] = _read(source, self.labels)
        return extra

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        sampler = None
        if self.balanced_sampling:
            weights = class_balanced_weights(dataset.table.target_matrix())
            sampler = BalancedSampler(weights, self.epoch_length, self.seed)
        elif self.shuffle:
            sampler = ShuffleSampler(len(dataset), self.seed)
        loader = self._loader(dataset, sampler=sampler, drop_last=True)
        loader.trainer = self.trainer
        return loader

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.datasets["val"]) if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader(self.datasets["test"]) if "test" in self.datasets else []

    def predict_dataloader(self) -> DataLoader:
        return self._loader(ClipDataset(self.table, self.loader, self.on_error))  # all clips of ``data``

    def _loader(self, dataset: ClipDataset, sampler=None, drop_last: bool = False):
        loader_class = ResumableLoader if sampler is not None else DataLoader
        return loader_class(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_skipping,
        )


class ResumableLoader(DataLoader):
    """A training DataLoader that Lightning checkpoints: its state is the number of batches trained in the epoch.

    Lightning saves ``state_dict()`` in every checkpoint and gives it back before iterating on resume; the
    epoch-seeded sampler then skips the clips of the batches already trained on, so resuming from a mid-epoch
    checkpoint continues exactly where the run stopped (augmentation draws depend only on the global step).
    """

    trainer = None  # set by the DataModule; progress counters live in the trainer's loops

    def state_dict(self) -> dict[str, int]:
        if self.trainer is None:
            return {}
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": self.trainer.current_epoch, "batches": progress.processed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state:
            self.sampler.resume(state["epoch"], state["batches"] * self.batch_size)


def _read(source: str | Sequence[str], labels: Sequence[str] | None) -> ClipTable:
    if isinstance(source, (str, Path)):
        return read_data(source, labels)
    return read_audioset_hdf5(list(source), labels)


def _without_unreadable(table: ClipTable) -> ClipTable:
    bad = find_unreadable(table)
    if bad:
        logger.warning("leaving out %d unreadable file(s) of %s: %s", len(bad), table.name, sorted(bad)[:20])
    return table.select(r.source not in bad for r in table.records)
