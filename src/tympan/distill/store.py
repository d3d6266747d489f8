"""The teacher-logit store: teacher outputs computed once, memory-mapped, read by clip id.

Knowledge distillation in EfficientAT (PaSST ensemble -> MobileNets on AudioSet) and in the DCASE23 system
(CP-ResNet + PaSST ensemble -> CP-Mobile) reads pre-computed teacher logits instead of running the teachers during
training. The references keep a bare array indexed by the position of a clip in one particular metadata file; here
the array comes with a JSON sidecar holding the clip ids and the provenance (teachers, their frontends, the data),
and every lookup goes through the ids, so a store made for another dataset fails loudly instead of silently
distilling the wrong clips.

Layout: ``<name>.npy`` (float32 ``[clips, classes]``, raw logits averaged over the ensemble; or ``[clips, classes,
frames]`` for frame-level teachers of sound event detection, as PretrainedSED's ensemble logits of 447 × 250 per
clip) and ``<name>.json``. Either is memory-mapped, so a lookup reads only the rows of its batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..files import atomic_path, write_atomically

__all__ = ["TeacherLogitStore", "write_store"]

FORMAT_VERSION = 1


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".npy", ".json") else path
    return base.with_suffix(".npy"), base.with_suffix(".json")


def write_store(path: str | Path, ids: Sequence[str], logits: np.ndarray, provenance: Mapping[str, Any]) -> Path:
    """Save ``logits [clips, classes]`` (or ``[clips, classes, frames]``) with their clip ids and provenance;
    returns the ``.npy`` path.

    Raises:
        DataError: ids are repeated or their number differs from the rows of ``logits``.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim not in (2, 3) or logits.shape[0] != len(ids):
        raise DataError(f"need one row of logits per id: {len(ids)} ids, logits of shape {logits.shape}")
    if len(set(ids)) != len(ids):
        raise DataError("clip ids of a teacher-logit store must be unique")
    array_path, meta_path = _paths(path)
    with atomic_path(array_path) as temporary, open(temporary, "wb") as file:
        np.save(file, logits)
    meta = {"format_version": FORMAT_VERSION, "num_classes": int(logits.shape[1]), **provenance, "ids": list(ids)}
    write_atomically(meta_path, json.dumps(meta, indent=1))
    return array_path


class TeacherLogitStore:
    """Read access to a saved store; ``store[ids]`` gives the rows of those clips.

    Args:
        path: the ``.npy`` or ``.json`` file (or their common stem).
    """

    def __init__(self, path: str | Path):
        array_path, meta_path = _paths(path)
        if not array_path.exists() or not meta_path.exists():
            raise DataError(
                f"teacher-logit store {array_path} (+ .json) not found; create it with "
                "`tympan distill --teacher PRESET --data DATA --out FILE`"
            )
        self.path = array_path
        self.metadata: dict[str, Any] = json.loads(meta_path.read_text())
        self.logits = np.load(array_path, mmap_mode="r")
        ids = self.metadata.get("ids", [])
        if len(ids) != self.logits.shape[0]:
            raise DataError(f"{meta_path} lists {len(ids)} ids for {self.logits.shape[0]} rows of {array_path}")
        self._rows = {clip_id: row for row, clip_id in enumerate(ids)}

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    @property
    def teachers(self) -> list[str]:
        return list(self.metadata.get("teachers", []))

    def missing(self, ids: Iterable[str]) -> list[str]:
        """The ids that have no row in the store."""
        return [clip_id for clip_id in ids if clip_id not in self._rows]

    def check(self, ids: Iterable[str], num_classes: int | None = None, *, allow_missing: bool = False) -> int:
        """Check the store against the clips ``ids``; returns how many of them have no logits.

        Args:
            ids: the clip ids of the training data.
            num_classes: the student's classes, which the store must match.
            allow_missing: accept clips without logits (their distillation term is zeroed, as EfficientAT does for
                the AudioSet clips its teachers never saw) unless *none* of the clips has logits.

        Raises:
            DataError: clips are missing (all of them with ``allow_missing``), or the class count differs.
        """
        ids = list(ids)
        missing = self.missing(ids)
        if missing and (not allow_missing or len(missing) == len(ids)):
            raise DataError(
                f"{len(missing)} of {len(ids)} clips have no teacher logits in {self.path} (e.g. {missing[:3]}); "
                "the store was made for other data — recreate it with `tympan distill` on this dataset"
            )
        if num_classes is not None and num_classes != self.num_classes:
            raise DataError(f"{self.path} holds {self.num_classes} classes; the student predicts {num_classes}")
        return len(missing)

    def lookup(self, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[len(ids), classes(, frames)]`` (zeros for clips not in the store) and a bool mask
        ``[len(ids)]`` of the clips that have them."""
        rows = [self._rows.get(clip_id, -1) for clip_id in ids]
        available = torch.tensor([row >= 0 for row in rows], dtype=torch.bool)
        logits = torch.zeros(len(rows), *self.logits.shape[1:])
        if available.any():
            found = [row for row in rows if row >= 0]
            logits[available] = torch.from_numpy(np.ascontiguousarray(self.logits[found]))
        return logits, available

    def __getitem__(self, ids: Sequence[str]) -> torch.Tensor:
        """Logits ``[len(ids), classes]`` (float32) of the clips ``ids``."""
        try:
            rows = [self._rows[clip_id] for clip_id in ids]
        except KeyError as error:
            raise DataError(f"clip {error.args[0]!r} has no teacher logits in {self.path}") from None
        return torch.from_numpy(np.ascontiguousarray(self.logits[rows]))
