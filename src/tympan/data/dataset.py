"""The one map-style dataset of tympan: a :class:`ClipTable` decoded by a :class:`ClipLoader`.

Items are dicts (``audio`` ``[samples]`` float32, ``target``, ``index``, ``id``, ``device_index`` into
``table.device_names``) so that the default
collate builds batches and the training systems read fields by name. Unreadable files never crash a worker
silently: :func:`find_unreadable` checks every header up front, and a decoding failure during training either
raises an :class:`~tympan.errors.AudioLoadError` naming the file or, with ``on_error="skip"``, is logged with its
path and dropped from the batch by :func:`collate_skipping`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import soundfile
import torch
from torch.utils.data import Dataset, default_collate

from ..errors import AudioLoadError, ConfigError
from .decode import ClipLoader
from .metadata import ClipTable

__all__ = ["ClipDataset", "OnError", "collate_skipping", "find_unreadable"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


class ClipDataset(Dataset):
    """Map-style dataset of the clips of ``table``.

    Args:
        table: the clips and labels.
        loader: decodes a record to a waveform.
        on_error: ``"raise"`` (an AudioLoadError naming the file) or ``"skip"`` (log the path, drop the item).
    """

    def __init__(self, table: ClipTable, loader: ClipLoader, on_error: OnError = "raise"):
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.table = table
        self.loader = loader
        self.on_error = on_error
        self._device_index = {name: i for i, name in enumerate(table.device_names)}

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        """Clip ids, the keys of a teacher-logit store."""
        return list(self.table.ids)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        record = self.table.records[index]
        try:
            audio = torch.from_numpy(self.loader(record))
        except AudioLoadError as error:
            if self.on_error == "raise":
                raise
            logger.warning("skipping an unreadable clip: %s", error)
            return None
        if self.table.multi_label:
            target = torch.zeros(self.table.num_classes)
            target[list(record.targets)] = 1.0
        else:
            target = torch.tensor(record.targets[0], dtype=torch.long)
        return {
            "audio": audio,
            "target": target,
            "index": index,
            "id": record.id,
            "device_index": self._device_index.get(record.device, -1),
        }


def collate_skipping(items: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Default collate of the items that could be read; None when none could."""
    kept = [item for item in items if item is not None]
    return default_collate(kept) if kept else None


def find_unreadable(table: ClipTable) -> dict[str, str]:
    """Sources of ``table`` whose audio header cannot be read, with the reason (HDF5 rows are decoded lazily)."""
    bad = {}
    for record in table.records:
        if record.row is not None:
            continue
        try:
            info = soundfile.info(record.source)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
            bad[record.source] = str(error)
            continue
        if info.frames == 0:
            bad[record.source] = "no samples"
    return bad
