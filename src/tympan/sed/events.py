"""Strong labels: event tables in the field's layouts, and frame targets at a model's frame rate.

Accepted tables (tab-separated ``.tsv`` or comma-separated ``.csv``, with a header):

* DESED / DCASE Task 4: ``filename, onset, offset, event_label``; a file listed with empty onset, offset and label
  holds no events;
* AudioSet-Strong: ``segment_id, start_time_seconds, end_time_seconds, label``;
* a generic CSV: ``file, onset, offset, label``.

Weak (clip-level) tables, which list the classes of each file without times (:func:`read_weak_labels`):

* DESED / DCASE Task 4 ``weak.tsv``: ``filename, event_labels``, the labels separated by commas;
* a CSV ``file, labels``, the labels separated by ``;`` (the multi-label CSV of ``tympan finetune``).

A file with an empty label field holds no events. Audio paths are relative to the table's folder (or absolute, or
relative to a ``root`` given to the reader).
Times are in seconds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = [
    "EventTable",
    "GroundTruth",
    "WeakLabelTable",
    "clip_targets",
    "frame_targets",
    "read_events",
    "read_weak_labels",
]

# A file's reference events: (onset, offset, label) in seconds, the layout sed_scores_eval takes.
GroundTruth = dict[str, list[tuple[float, float, str]]]

# Column names of each layout: file, onset, offset, label.
_LAYOUTS: tuple[tuple[str, str, str, str], ...] = (
    ("filename", "onset", "offset", "event_label"),
    ("segment_id", "start_time_seconds", "end_time_seconds", "label"),
    ("file", "onset", "offset", "label"),
)
# Column names of each weak layout (file, labels) and the separator of the labels in a field.
_WEAK_LAYOUTS: tuple[tuple[tuple[str, str], str], ...] = (
    (("filename", "event_labels"), ","),
    (("file", "labels"), ";"),
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


@dataclass(frozen=True)
class WeakLabelTable:
    """The classes present in each of a set of files, without times (DESED's ``weak.tsv``).

    Attributes:
        root: folder the file names are relative to.
        files: every file of the table, in order of appearance.
        tags: the classes of each file, sorted (an empty list for a file without events).
        labels: the classes of the table, sorted by name, or the order given to :func:`read_weak_labels`.
    """

    root: Path
    files: list[str]
    tags: dict[str, list[str]]
    labels: list[str]

    def path(self, file: str) -> Path:
        """Where the audio of ``file`` is."""
        return self.root / file


def read_events(path: str | Path, labels: Sequence[str] | None = None, root: str | Path | None = None) -> EventTable:
    """Read an event table (see the module docstring for the layouts).

    Args:
        path: the ``.tsv`` / ``.csv`` table.
        labels: the class order to use (default: the table's labels sorted by name); events of other labels raise.
        root: the folder the file names are relative to (default: the table's; DESED keeps its tables in
            ``metadata/`` and the audio in ``audio/``).

    Raises:
        DataError: the file is missing, has no known header, or holds malformed times.
    """
    path = Path(path)
    rows, layout = _read_rows(path, _LAYOUTS, "event table")
    file_key, onset_key, offset_key, label_key = layout
    files: dict[str, None] = {}
    events: GroundTruth = {}
    for number, row in rows:
        name = _file_name(row, file_key, path, number)
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
    for file_events in events.values():
        file_events.sort()
    found = {label for file_events in events.values() for _, _, label in file_events}
    return EventTable(Path(root or path.parent), list(files), events, _class_order(found, labels, path))


def read_weak_labels(
    path: str | Path, labels: Sequence[str] | None = None, root: str | Path | None = None
) -> WeakLabelTable:
    """Read a weak (clip-level) label table (see the module docstring for the layouts).

    Args:
        path: the ``.tsv`` / ``.csv`` table.
        labels: the class order to use (default: the table's labels sorted by name); other labels raise.
        root: the folder the file names are relative to (default: the table's).

    Raises:
        DataError: the file is missing, has no known header, lists a file twice or a row without a file name.
    """
    path = Path(path)
    layouts = tuple(columns for columns, _ in _WEAK_LAYOUTS)
    rows, layout = _read_rows(path, layouts, "weak label table")
    file_key, labels_key = layout
    separator = dict(_WEAK_LAYOUTS)[layout]
    tags: dict[str, list[str]] = {}
    for number, row in rows:
        name = _file_name(row, file_key, path, number)
        if name in tags:
            raise DataError(f"{path}, line {number}: {name!r} is listed twice (one row per file, labels "
                            f"separated by {separator!r})")  # fmt: skip
        tags[name] = sorted({tag.strip() for tag in (row[labels_key] or "").split(separator) if tag.strip()})
    found = {tag for file_tags in tags.values() for tag in file_tags}
    return WeakLabelTable(Path(root or path.parent), list(tags), tags, _class_order(found, labels, path))


def _read_rows(
    path: Path, layouts: Sequence[tuple[str, ...]], kind: str
) -> tuple[list[tuple[int, dict[str, str]]], tuple[str, ...]]:
    """The rows of a ``.tsv`` / ``.csv`` table with their line numbers, and the first of ``layouts`` its header
    holds (tab-separated when the header has a tab)."""
    if not path.is_file():
        raise DataError(f"{kind} {str(path)!r} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    header_line = text.splitlines()[0] if text else ""
    delimiter = "\t" if "\t" in header_line else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = set(reader.fieldnames or ())
    layout = next((columns for columns in layouts if set(columns) <= header), None)
    if layout is None:
        known = "; ".join(", ".join(columns) for columns in layouts)
        raise DataError(f"{path} has columns {sorted(header)}; expected one of the layouts: {known}")
    rows = [(reader.line_num, row) for row in reader]
    for number, row in rows:
        if row.get(None):  # DictReader files the fields beyond the header under None
            raise DataError(f"{path}, line {number}: more fields than the header's {len(header)} "
                            f"({delimiter!r}-separated)")  # fmt: skip
    return rows, layout


def _file_name(row: dict[str, str], key: str, path: Path, number: int) -> str:
    name = (row[key] or "").strip()
    if not name:
        raise DataError(f"{path}, line {number}: no file name")
    return name


def _class_order(found: set[str], labels: Sequence[str] | None, path: Path) -> list[str]:
    """``labels`` when given (refusing labels of the table outside it), else the table's labels sorted."""
    if labels is None:
        return sorted(found)
    unknown = sorted(found - set(labels))
    if unknown:
        raise DataError(f"{path} has events of labels the model does not know: {unknown}")
    return list(labels)


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


def clip_targets(tags: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Multi-hot clip targets ``[classes]`` (float32) of the classes ``tags``; labels not in ``labels`` are ignored."""
    target = np.zeros(len(labels), np.float32)
    present = set(tags)
    target[[i for i, label in enumerate(labels) if label in present]] = 1.0
    return target
