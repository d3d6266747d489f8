"""Datasets: clip lists from every supported layout, decoding with a cache, balanced sampling, the DataModule.

:class:`AudioDataModule` is imported on first use: it needs Lightning, which reading clip tables does not.
"""

from __future__ import annotations

from typing import Any

from .dataset import ClipDataset, collate_skipping, find_unreadable
from .decode import ClipLoader, fit_length
from .metadata import (
    ClipRecord,
    ClipTable,
    read_audioset_hdf5,
    read_csv,
    read_data,
    read_esc50,
    read_folder,
    read_tau22,
)
from .sampling import BalancedSampler, ShuffleSampler, class_balanced_weights

__all__ = [
    "AudioDataModule",
    "BalancedSampler",
    "ClipDataset",
    "ClipLoader",
    "ClipRecord",
    "ClipTable",
    "ShuffleSampler",
    "class_balanced_weights",
    "collate_skipping",
    "find_unreadable",
    "fit_length",
    "read_audioset_hdf5",
    "read_csv",
    "read_data",
    "read_esc50",
    "read_folder",
    "read_tau22",
]


def __getattr__(name: str) -> Any:
    if name == "AudioDataModule":
        from .datamodule import AudioDataModule

        return AudioDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
