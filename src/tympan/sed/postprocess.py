"""From frame scores to events: per-class median filtering, single or hysteresis thresholds, merging of close
events and a minimum duration (the post-processing of the DCASE Task 4 systems).

The same decoder serves the frame-level detectors (40-ms frames) and the clip-window timeline of
:mod:`tympan.tagging` (one frame per window): frames are given by their start and end times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["DEFAULT_POSTPROCESSING", "Event", "PostProcessing", "decode_events", "median_filter"]


@dataclass(frozen=True)
class Event:
    """A sound event: ``label`` active from ``onset`` to ``offset`` (seconds), with its peak (filtered) ``score``."""

    onset: float
    offset: float
    label: str
    score: float


@dataclass(frozen=True)
class PostProcessing:
    """How frame scores become events.

    Attributes:
        threshold: a frame is active at or above it (the onset threshold with hysteresis).
        low_threshold: with hysteresis, an event that has started lasts while its score stays at or above this
            (None: a single threshold).
        median_seconds: median-filter window over time, one for all classes or per label (0: no filtering).
        merge_gap: events of one class separated by at most this many seconds become one.
        min_duration: shorter events are dropped (seconds).
    """

    threshold: float = 0.5
    low_threshold: float | None = None
    median_seconds: float | Mapping[str, float] = 0.0
    merge_gap: float = 0.0
    min_duration: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.low_threshold is not None and not 0.0 <= self.low_threshold <= self.threshold:
            raise ConfigError(f"low_threshold must be in [0, threshold={self.threshold}], got {self.low_threshold}")
        windows = self.median_seconds.values() if isinstance(self.median_seconds, Mapping) else [self.median_seconds]
        if min([*windows, self.merge_gap, self.min_duration]) < 0:
            raise ConfigError("median_seconds, merge_gap and min_duration must be >= 0")

    def median_frames(self, labels: Sequence[str], frame_seconds: float) -> list[int]:
        """The median window of each class in frames (odd, at least 1)."""
        seconds = self.median_seconds
        per_class = [seconds.get(label, 0.0) if isinstance(seconds, Mapping) else seconds for label in labels]
        return [round(s / frame_seconds) // 2 * 2 + 1 for s in per_class]


DEFAULT_POSTPROCESSING = PostProcessing()
MEDIAN_COLUMNS = 64  # classes filtered at a time (an hour's timeline at once: 45 MB of copies of windows)


def median_filter(scores: np.ndarray, sizes: int | Sequence[int]) -> np.ndarray:
    """Running median over time (axis 0) of ``scores [frames, classes]``, a window of ``sizes`` frames per class.

    Windows are made odd; the scores are zero-padded (as ``scipy.signal.medfilt``): beyond the audio nothing sounds,
    so a one-frame spike at either end is removed like one in the middle.
    """
    sizes = [sizes] * scores.shape[1] if isinstance(sizes, int) else list(sizes)
    out = np.array(scores, dtype=np.result_type(scores.dtype, np.float32), copy=True)
    for size in sorted(set(sizes)):
        half = max(size, 1) // 2
        if half == 0 or len(scores) < 2:
            continue
        columns = [c for c, s in enumerate(sizes) if s == size]
        for block in range(0, len(columns), MEDIAN_COLUMNS):  # the windows' copy stays small for long inputs
            chosen = columns[block : block + MEDIAN_COLUMNS]
            padded = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(scores[:, chosen].T)), (half, half))
            # torch's median of the windows: 2x numpy's (an hour's 1-s timeline, 3 windows: 69 against 153 ms)
            out[:, chosen] = padded.unfold(1, 2 * half + 1, 1).median(-1).values.T.numpy()
    return out


def _runs(column: np.ndarray, high: float, low: float) -> list[tuple[int, int]]:
    """``[first, stop)`` frame runs that reach ``high`` and extend while the score stays at or above ``low``."""
    above_low = np.concatenate([[False], column >= low, [False]])
    edges = np.diff(above_low.astype(np.int8))
    runs = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    return [(int(a), int(b)) for a, b in runs if column[a:b].max() >= high]


def decode_events(
    scores: np.ndarray,
    labels: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    config: PostProcessing = DEFAULT_POSTPROCESSING,
    median_frames: Sequence[int] | None = None,
) -> list[Event]:
    """Events of frame scores ``[frames, classes]`` whose frame ``i`` spans ``[starts[i], ends[i])`` seconds.

    Args:
        scores: probabilities per frame and class.
        labels: class names (columns of ``scores``).
        starts, ends: frame boundaries in seconds.
        config: thresholds, median window, merging and minimum duration.
        median_frames: the median window per class in frames (default: ``config.median_seconds`` on the frame hop).

    Returns:
        events sorted by onset, then label; ``score`` is the peak filtered score of the event.
    """
    if len(scores) == 0:
        return []
    if median_frames is None:
        hop = float(np.median(np.diff(starts))) if len(starts) > 1 else float(ends[0] - starts[0])
        median_frames = config.median_frames(labels, hop)
    filtered = median_filter(scores, median_frames)
    low = config.threshold if config.low_threshold is None else config.low_threshold
    events: list[Event] = []
    for column in np.flatnonzero((filtered >= config.threshold).any(axis=0)):
        merged: list[list[float]] = []
        for first, stop in _runs(filtered[:, column], config.threshold, low):
            onset, offset, peak = float(starts[first]), float(ends[stop - 1]), float(filtered[first:stop, column].max())
            if merged and onset - merged[-1][1] <= config.merge_gap:
                merged[-1][1], merged[-1][2] = offset, max(merged[-1][2], peak)
            else:
                merged.append([onset, offset, peak])
        events.extend(
            Event(onset=round(onset, 3), offset=round(offset, 3), label=labels[column], score=peak)
            for onset, offset, peak in merged
            if offset - onset >= config.min_duration
        )
    return sorted(events, key=lambda event: (event.onset, event.label))
