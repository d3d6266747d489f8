"""The record of one input: what the engine yields for it (errors included), and the JSON form outputs hold.

Every job yields one :class:`Record` per input, in input order; a file that cannot be read or run gets a record with
``error`` set and the others go on. :meth:`Record.to_dict` is the schema ``tympan tag`` writes (JSON, and the rows of
its CSV): ``file``; ``predictions`` (``label``, ``score``, best first) or ``windows`` (``start``, ``end``,
``predictions``) and ``events`` (``onset``, ``offset``, ``label``, ``score``); ``note``; or ``error``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioLoadError
from ..tagging import Event, Timeline, predictions, timeline_record

__all__ = ["Record", "error_message", "resume", "save_periodically"]


@dataclass
class Record:
    """The result of one input, or the error that stopped it.

    Attributes:
        file: the input as named (a path, or ``<waveform>``).
        index: its position in the job; records come in this order and shards of a multi-process job merge by it.
        labels: class names of ``scores`` and of the ``timeline`` columns.
        scores: class scores ``[classes]`` of the whole input (``tag_files``).
        timeline: scores per window (``timeline``), with ``events`` detected on it.
        embedding: ``[D]`` (``embed_files``), or ``[rows, D]`` timestamp embeddings at ``timestamps`` (ms).
        logits: raw logits ``[classes]`` (the teacher logits of :func:`tympan.distill.compute_teacher_logits`).
        notes: what was done to the input (zero padding, the aggregation of a long file).
        error: why the input has no result; None when it has one.
        exception: the exception behind ``error`` (the single-input API raises it).
    """

    file: str
    index: int = 0
    labels: list[str] = field(default_factory=list)
    scores: np.ndarray | None = None
    timeline: Timeline | None = None
    events: list[Event] = field(default_factory=list)
    embedding: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    logits: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def to_dict(self, top_k: int = 5) -> dict[str, Any]:
        """The JSON-ready record: the ``top_k`` labels of the file or of each window, events, note or error."""
        record: dict[str, Any] = {"file": self.file}
        if self.error is not None:
            record["error"] = self.error
            return record
        if self.scores is not None:
            record["predictions"] = predictions(self.scores, self.labels, top_k)
        if self.timeline is not None:
            record.update(timeline_record(self.timeline, self.events, top_k))
        if self.notes:
            record["note"] = "; ".join(self.notes)
        return record


def error_message(error: BaseException) -> str:
    """What a record says of the error that stopped its input: the message of an audio error, else its kind too."""
    text = str(error) or type(error).__name__
    if isinstance(error, AudioLoadError):
        return text
    return f"cannot process this file ({type(error).__name__}): {text}"


def resume(previous: Iterable[dict[str, Any]], files: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """Split a job against an earlier run's records: the records kept (finished, not asked again) and the files
    still to do (new, or failed before)."""
    previous = list(previous)
    done = {record["file"] for record in previous if "error" not in record}
    todo = [Path(f) for f in files if str(f) not in done]
    redone = {str(f) for f in todo}
    return [record for record in previous if record["file"] not in redone], todo


def save_periodically(
    records: Iterator[dict[str, Any]],
    kept: list[dict[str, Any]],
    save: Callable[[list[dict[str, Any]]], None],
    *,
    every_seconds: float = 30.0,
) -> list[dict[str, Any]]:
    """Append ``records`` to ``kept``, calling ``save(kept)`` every ``every_seconds`` and once at the end, also when
    the job stops with an exception or Ctrl-C (then the exception goes on): a long job loses at most that much."""
    last_saved = time.monotonic()
    try:
        for record in records:
            kept.append(record)
            if time.monotonic() - last_saved > every_seconds:
                save(kept)
                last_saved = time.monotonic()
    finally:
        save(kept)
    return kept
