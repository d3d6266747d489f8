"""Strong labels: event tables in the field's layouts, and frame targets at a model's frame rate.

Accepted tables (tab-separated ``.tsv`` or comma-separated ``.csv``, with a header):

* DESED / DCASE Task 4: ``filename, onset, offset, event_label``; a file listed with empty onset, offset and label
  holds no events;
* AudioSet-Strong: ``segment_id, start_time_seconds, end_time_seconds, label``;
* a generic CSV: ``file, onset, offset, label``.

Audio paths are relative to the table's folder (or absolute). Times are in seconds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["EventTable", "GroundTruth", "frame_targets", "read_events"]

# A file's reference events: (onset, offset, label) in seconds, the layout sed_scores_eval takes.
GroundTruth = dict[str, list[tuple[float, float, str]]]

# Column names of each layout: file, onset, offset, label.
_LAYOUTS: tuple[tuple[str, str, str, str], ...] = (
    ("filename", "onset", "offset", "event_label"),
    ("segment_id", "start_time_seconds", "end_time_seconds", "label"),
    ("file", "onset", "offset", "label"),
)


@dataclass(frozen=True)
class EventTable:
    """The events of a set of files.

    Attributes:
        root: folder the file names are relative to.
        files: every file of the table, in order of first appearance (files without events included).
        events: reference events per file (an empty list for a file without events).
        labels: the event classes, sorted by name (the head order of a model trained on the table).
    """

    root: Path
    files: list[str]
    events: GroundTruth
    labels: list[str]

    def path(self, file: str) -> Path:
        """Where the audio of ``file`` is."""
        return self.root / file


def read_events(path: str | Path, labels: Sequence[str] | None = None) -> EventTable:
    """Read an event table (see the module docstring for the layouts).

    Args:
        path: the ``.tsv`` / ``.csv`` table.
        labels: the class order to use (default: the table's labels sorted by name); events of other labels raise.

    Raises:
        DataError: the file is missing, has no known header, or holds malformed times.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"event table {str(path)!r} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    header_line = text.splitlines()[0] if text else ""
    delimiter = "\t" if "\t" in header_line else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    header = set(rows[0]) if rows else set()
    layout = next((columns for columns in _LAYOUTS if set(columns) <= header), None)
    if layout is None:
        known = "; ".join(", ".join(columns) for columns in _LAYOUTS)
        raise DataError(f"{path} has columns {sorted(header)}; expected one of the layouts: {known}")
    file_key, onset_key, offset_key, label_key = layout
    files: dict[str, None] = {}
    events: GroundTruth = {}
    for number, row in enumerate(rows, start=2):
        name = (row[file_key] or "").strip()
        if not name:
            raise DataError(f"{path}, line {number}: no file name")
        files.setdefault(name, None)
        events.setdefault(name, [])
        label = (row[label_key] or "").strip()
        if not label:  # a file without events
            continue
        try:
            onset, offset = float(row[onset_key]), float(row[offset_key])
        except (TypeError, ValueError):
            raise DataError(f"{path}, line {number}: onset / offset are not numbers") from None
        if not (math.isfinite(onset) and math.isfinite(offset)) or onset < 0 or offset <= onset:
            raise DataError(f"{path}, line {number}: need 0 <= onset < offset, got {onset}, {offset}")
        events[name].append((onset, offset, label))
    found = sorted({label for file_events in events.values() for _, _, label in file_events})
    if labels is not None:
        unknown = sorted(set(found) - set(labels))
        if unknown:
            raise DataError(f"{path} has events of labels the model does not know: {unknown}")
    for file_events in events.values():
        file_events.sort()
    return EventTable(path.parent, list(files), events, list(labels) if labels is not None else found)


def frame_targets(
    events: Sequence[tuple[float, float, str]], labels: Sequence[str], num_frames: int, frame_seconds: float
) -> np.ndarray:
    """Multi-hot activity ``[classes, num_frames]`` (float32) of ``events`` on a grid of ``frame_seconds``.

    Frame ``i`` spans ``[i·h, (i+1)·h)``; an event makes active every frame it overlaps, from
    ``floor(onset / h)`` to ``ceil(offset / h)`` (the DCASE baseline's ``ManyHotEncoder`` rule), clipped to the grid.
    Labels not in ``labels`` are ignored.
    """
    index: Mapping[str, int] = {label: i for i, label in enumerate(labels)}
    target = np.zeros((len(labels), num_frames), np.float32)
    for onset, offset, label in events:
        if label not in index:
            continue
        first = min(max(math.floor(onset / frame_seconds + 1e-9), 0), num_frames)
        last = min(max(math.ceil(offset / frame_seconds - 1e-9), first + 1), num_frames)
        target[index[label], first:last] = 1.0
    return target
