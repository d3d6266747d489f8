"""Tagging over time: a timeline of scores per window, an event table, and a timeline plot.

Long files are cut into pieces that the batch engine (:mod:`tympan.engine`) reads and runs in parallel, so memory
stays flat from a 10-s clip to a multi-hour recording; the windows run through the network in batches. The event
table comes from median-filtering each class's scores over time and thresholding: an event is a run of windows above
the threshold, placed at the window centres (± half a hop).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .files import atomic_path
from .labels import top_indices
from .pipeline import AudioInput, AudioPipeline
from .sed.postprocess import Event, PostProcessing, decode_events

__all__ = [
    "Event",
    "EventTracker",
    "Timeline",
    "aggregate_timeline",
    "aggregate_windows",
    "clip_scores",
    "detect_events",
    "plot_timeline",
    "predictions",
    "timeline",
    "timeline_record",
    "window_spans",
]

logger = logging.getLogger(__name__)


@dataclass
class Timeline:
    """Scores per window.

    Attributes:
        labels: class names (columns of ``scores``).
        starts: window starts in seconds ``[windows]``.
        window: window length in seconds; ``hop``: step between window starts in seconds.
        scores: class scores ``[windows, classes]``.
        duration: length of the audio in seconds.
        notes: what was done to the input (e.g. padding of a very short file).
    """

    labels: list[str]
    starts: np.ndarray
    window: float
    hop: float
    scores: np.ndarray
    duration: float
    notes: list[str] = field(default_factory=list)

    @property
    def centres(self) -> np.ndarray:
        """Window centres in seconds (clipped to the audio)."""
        return np.minimum(self.starts + self.window / 2, self.duration)


def timeline(
    pipeline: AudioPipeline,
    audio: AudioInput,
    *,
    sample_rate: int | None = None,
    window: float | None = None,
    hop: float | None = None,
    batch_size: int = 16,
    chunk_seconds: float = 60.0,
    method: str = "windows",
    tail: str = "end",
    workers: int | None = None,
) -> Timeline:
    """Scores of windows of ``window`` seconds every ``hop`` seconds over a file or waveform of any length.

    Runs on the batch engine (:mod:`tympan.engine`): a long file is cut into pieces of ``chunk_seconds`` that
    worker processes read and run in parallel, so memory stays flat from a 10-s clip to a multi-hour recording.

    Args:
        pipeline: from :func:`tympan.load`.
        audio: a file path or a mono waveform.
        sample_rate: rate of an array input in Hz (default: the pipeline's).
        window: window length in seconds (default: the model's training clip length).
        hop: step in seconds (default: ``window``, no overlap).
        batch_size: windows per forward pass.
        chunk_seconds: length of the pieces a long input is cut into.
        method: ``"windows"``: each window runs through the network (exact); ``"pooled"``: for the EfficientAT
            CNNs, feature maps are computed once per piece and mean-pooled per window, ~``window / hop`` times
            less work (squeeze-excitation then sees the piece rather than the window, so scores differ slightly;
            see ``benchmarks/bench_engine.py``). Needs ``window`` to be a multiple of ``hop``.
        tail: where the last window goes when ``(N − window)`` is not a multiple of the hop. ``"end"`` (the
            default): it is shifted back to end at the end of the audio, so every window the network sees is
            ``window`` seconds of real audio, as in training (a zero-padded window holds less sound than any
            training clip: its tagging scores sink and a scene classifier scores part silence); audio shorter than
            one window is one window of all of it. ``"pad"``: EfficientAT ``windowed_inference.py``'s rule, windows
            at ``i·hop`` only and the last one zero-padded to ``window`` (a regular grid, the reference's numbers;
            unlike the reference, audio shorter than ``window − hop`` still gets one window).
        workers: worker processes (default: one per core; 0: in this process).

    Raises:
        AudioLoadError: the input cannot be decoded, is empty or has non-finite samples.
        ConfigError: window or hop is not positive, or an unknown ``method`` / ``tail``.
    """
    from .engine.jobs import TimelineJob
    from .engine.network import Network
    from .engine.runner import run_one, source_of

    network = Network(pipeline)
    job = TimelineJob(
        network,
        window=window,
        hop=hop,
        method=method,
        tail=tail,
        batch_size=batch_size,
        segment_seconds=chunk_seconds,
    )
    line = run_one(job, *source_of(network, audio, sample_rate), workers=workers).timeline
    assert line is not None
    return line


def clip_scores(pipeline: AudioPipeline, path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Class scores ``[classes]`` of a whole file, and notes on what was done to it.

    Files longer than :data:`tympan.engine.LONG_FILE_SECONDS` are read in windows of the model's clip length (flat
    memory) and the window scores aggregated: the maximum for multi-label tagging (a sound anywhere in the file),
    the mean for scene classification.
    """
    from .engine.jobs import TagJob
    from .engine.network import Network
    from .engine.runner import run_one

    record = run_one(TagJob(Network(pipeline)), str(path), str(path))
    assert record.scores is not None
    return record.scores, record.notes


def aggregate_windows(scores: np.ndarray, multilabel: bool) -> tuple[np.ndarray, str]:
    """Scores ``[classes]`` of a whole recording from its windows' ``[windows, classes]``, and how they were joined:
    the maximum for multi-label tagging (a sound anywhere in the recording), the mean for scene classification."""
    return (scores.max(axis=0), "maximum") if multilabel else (scores.mean(axis=0), "mean")


def aggregate_timeline(pipeline: AudioPipeline, line: Timeline) -> tuple[np.ndarray, list[str]]:
    """Scores ``[classes]`` of a whole recording from its timeline (:func:`aggregate_windows`), with notes."""
    scores, how = aggregate_windows(line.scores, pipeline.multilabel)
    note = f"a long recording: the {how} of the scores of {len(line.starts)} windows of {line.window:g} s"
    return scores, [*line.notes, note]


def window_spans(centres: np.ndarray, hop: float, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """The stretch of time each window stands for: its centre ± half a hop, clipped to ``[0, duration]`` seconds."""
    half = hop / 2
    return np.clip(centres - half, 0.0, duration), np.clip(centres + half, 0.0, duration)


class EventTracker:
    """Per-class events from score vectors given one window at a time, with hysteresis.

    A class turns on when its score reaches ``threshold`` and off only when it falls below ``off_threshold``, so a
    sound whose score wavers around the threshold is one event, not one per hop. With ``off_threshold`` equal to
    ``threshold`` an event is a run of windows at or above it (what :func:`detect_events` gives by default).

    Args:
        labels: class names, index = score column.
        threshold: score at which a class turns on.
        off_threshold: score below which it turns off again (default: ``threshold``).

    Raises:
        ConfigError: ``off_threshold`` above ``threshold``, or thresholds outside [0, 1].
    """

    def __init__(self, labels: list[str], *, threshold: float = 0.5, off_threshold: float | None = None) -> None:
        off_threshold = threshold if off_threshold is None else off_threshold
        if not 0.0 <= off_threshold <= threshold <= 1.0:
            raise ConfigError(
                f"need 0 <= off_threshold <= threshold <= 1, got threshold={threshold}, off_threshold={off_threshold}"
            )
        self.labels, self.threshold, self.off_threshold = labels, threshold, off_threshold
        self.active = np.zeros(len(labels), dtype=bool)
        self._onset = np.zeros(len(labels))
        self._offset = np.zeros(len(labels))
        self._peak = np.zeros(len(labels))

    def step(self, lower: float, upper: float, scores: np.ndarray) -> tuple[list[Event], list[Event]]:
        """Advance by one window standing for ``[lower, upper]`` seconds with ``scores`` ``[classes]``.

        Returns:
            The events that begin in this window (``offset`` is ``upper`` so far) and those that ended before it.
        """
        ending = self.active & (scores < self.off_threshold)
        ended = [self._event(column) for column in np.flatnonzero(ending)]
        self.active &= ~ending
        starting = ~self.active & (scores >= self.threshold)
        self._onset[starting] = lower
        self._peak[starting] = -np.inf
        self.active |= starting
        self._peak[self.active] = np.maximum(self._peak[self.active], scores[self.active])
        self._offset[self.active] = upper
        return [self._event(column) for column in np.flatnonzero(starting)], ended

    def close(self) -> list[Event]:
        """End the events still on (at the end of the audio)."""
        ended = [self._event(column) for column in np.flatnonzero(self.active)]
        self.active[:] = False
        return ended

    def _event(self, column: int) -> Event:
        return Event(
            onset=round(float(self._onset[column]), 3),
            offset=round(float(self._offset[column]), 3),
            label=self.labels[column],
            score=float(self._peak[column]),
        )


def detect_events(
    timeline: Timeline, *, threshold: float = 0.5, median_windows: int = 3, off_threshold: float | None = None
) -> list[Event]:
    """Events from the timeline: per class, median-filter the scores over ``median_windows`` windows, threshold.

    Each window stands for ±half a hop around its centre; a run of windows above ``threshold`` (and, with
    ``off_threshold``, until the score falls below that: hysteresis) gives one event from the first window's span to
    the last one's, clipped to the audio. Sorted by onset, then label. The decoder is that of the frame-level
    detectors (:func:`tympan.sed.postprocess.decode_events`); :class:`EventTracker` gives the same events one window
    at a time (live tagging).
    """
    if len(timeline.starts) == 1:
        lower, upper = np.array([0.0]), np.array([timeline.duration])
    else:
        lower, upper = window_spans(timeline.centres, timeline.hop, timeline.duration)
    sizes = [median_windows] * len(timeline.labels)
    config = PostProcessing(threshold, off_threshold)
    return decode_events(timeline.scores, timeline.labels, lower, upper, config, sizes)


def predictions(scores: np.ndarray, labels: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` ``{"label", "score"}`` records of one score vector, best first (the JSON of tag and serve)."""
    return row_predictions(np.asarray(scores)[None], labels, top_k)[0]


def row_predictions(scores: np.ndarray, labels: Sequence[str], top_k: int) -> list[list[dict[str, Any]]]:
    """:func:`predictions` of each row of ``scores [rows, classes]``."""
    order = top_indices(scores, top_k)
    best = np.take_along_axis(scores, order, axis=1).tolist()
    return [
        [{"label": labels[i], "score": round(score, 6)} for i, score in zip(row, values, strict=True)]
        for row, values in zip(order.tolist(), best, strict=True)
    ]


def timeline_record(line: Timeline, events: list[Event], top_k: int) -> dict[str, list[dict[str, Any]]]:
    """``{"windows": [{"start", "end", "predictions"}], "events": [...]}``: a timeline as JSON records."""
    windows = [
        {
            "start": round(float(start), 3),
            "end": round(float(min(start + line.window, line.duration)), 3),
            "predictions": best,
        }
        for start, best in zip(line.starts, row_predictions(line.scores, line.labels, top_k), strict=True)
    ]
    return {"windows": windows, "events": [vars(event) for event in events]}


def plot_timeline(timeline: Timeline, path: str | Path, *, top_k: int = 10, events: list[Event] | None = None) -> Path:
    """Write a PNG of the scores over time of the ``top_k`` classes (highest peak), written atomically.

    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    order = np.argsort(-timeline.scores.max(axis=0), kind="stable")[:top_k]
    figure = Figure(figsize=(10, 0.35 * len(order) + 1.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    edges = np.concatenate([timeline.centres - timeline.hop / 2, [timeline.centres[-1] + timeline.hop / 2]])
    mesh = axes.pcolormesh(
        np.clip(edges, 0, timeline.duration),
        np.arange(len(order) + 1),
        timeline.scores[:, order].T,
        vmin=0.0,
        vmax=1.0,
        cmap="magma",
    )
    axes.set_yticks(np.arange(len(order)) + 0.5, [timeline.labels[i] for i in order])
    axes.invert_yaxis()
    axes.set_xlabel("time (s)")
    for event in events or []:
        if event.label in [timeline.labels[i] for i in order]:
            row = [timeline.labels[i] for i in order].index(event.label)
            axes.hlines(row + 0.5, event.onset, event.offset, colors="cyan", linewidth=2)
    figure.colorbar(mesh, ax=axes, label="score")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
