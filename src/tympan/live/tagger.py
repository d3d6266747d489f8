"""The streaming tagger: PCM pieces in, scores of the last window every hop and event on/off changes out.

Pieces of any size at any sample rate are resampled incrementally (:class:`tympan.audio.stream.ChunkResampler`) into
a window-long ring buffer; every hop the last window is scored, and an :class:`tympan.tagging.EventTracker` with
hysteresis turns the scores into events reported once when they begin and once when they end. Full windows are cut
by the offline timeline's :class:`~tympan.audio.stream.WindowCutter`, so they get the scores
:func:`tympan.tagging.timeline` gives the same audio. Latency is measured from the arrival of the newest sample in a
window to its scores; every other sample of the window waited up to one hop more for it to complete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from ..audio.stream import ChunkResampler, WindowCutter
from ..errors import ConfigError
from ..pipeline import AudioPipeline, Clip
from ..tagging import Event, EventTracker, predictions, window_spans

__all__ = ["LatencyStats", "LiveUpdate", "ScoreFunction", "StreamingTagger", "event_record"]

# Scores [windows, classes] of clips at the model's rate; the service puts its batching queue here.
ScoreFunction = Callable[[list[Clip]], np.ndarray]
DEFAULT_HOP_SECONDS = 0.5


@dataclass(frozen=True)
class LiveUpdate:
    """The scores of one window of the stream, with the events it began and ended.

    Attributes:
        start: where the window starts, in seconds of stream time.
        end: where it ends (the newest sample it holds).
        scores: class scores ``[classes]``.
        began: events that begin in this window (their ``offset`` is the window's, so far).
        ended: events that ended before it.
        level_db: RMS level of the window's last hop in dB full scale.
        latency: seconds from the arrival of the window's newest sample to its scores.
    """

    start: float
    end: float
    scores: np.ndarray
    began: list[Event]
    ended: list[Event]
    level_db: float
    latency: float

    def record(self, pipeline: AudioPipeline, top_k: int) -> dict[str, Any]:
        """The update as JSON: window, top labels of ``pipeline``, events begun and ended, level and latency."""
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "labels": predictions(self.scores, pipeline.labels, top_k),
            "began": [event_record(event, "on") for event in self.began],
            "ended": [event_record(event, "off") for event in self.ended],
            "level_db": round(self.level_db, 1),
            "latency_ms": round(1000 * self.latency, 2),
        }


def event_record(event: Event, state: str) -> dict[str, Any]:
    """``{"state": "on", "label", "onset", "score"}`` when an event begins; ``"off"`` adds its ``offset``."""
    record: dict[str, Any] = {"state": state, "label": event.label, "onset": event.onset}
    if state == "off":
        record["offset"] = event.offset
    record["score"] = round(event.score, 6)
    return record


@dataclass
class LatencyStats:
    """Latencies in seconds, with their percentiles."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.values, q)) if self.values else math.nan

    def summary(self) -> dict[str, float]:
        """``{"windows", "p50_ms", "p95_ms", "max_ms"}``."""
        return {
            "windows": len(self.values),
            "p50_ms": round(1000 * self.percentile(50), 2),
            "p95_ms": round(1000 * self.percentile(95), 2),
            "max_ms": round(1000 * max(self.values, default=math.nan), 2),
        }


class StreamingTagger:
    """Tags a stream as it arrives: ``feed(piece)`` returns one :class:`LiveUpdate` per hop completed.

    Windows shorter than the model's training clip are allowed, as in :func:`tympan.tagging.timeline`; before the
    first full window the growing window is scored every hop, so the first scores come one hop after the start.

    Args:
        pipeline: from :func:`tympan.load`.
        sample_rate: rate of the pieces in Hz (default: the model's).
        channels: interleaved channels of the pieces (mixed to mono).
        window: window length in seconds (default: the model's training clip).
        hop: seconds between scores.
        threshold: score at which an event begins (see :class:`tympan.tagging.EventTracker`).
        off_threshold: score below which it ends (default ``0.8 · threshold``: hysteresis).
        score: computes scores of clips (default: the pipeline, clips of equal length in one batch).
        keep_up: when one piece completes several windows (a consumer that fell behind real time hands over its
            backlog at once), score only the newest: latency stays bounded instead of growing with the backlog.
        clock: the time source of the latencies (seconds).

    Raises:
        ConfigError: non-positive window or hop, or invalid thresholds or rates.

    Example:
        >>> tagger = StreamingTagger(tympan.load("mn10_as"), sample_rate=48000, window=2.0, hop=0.5)
        >>> for update in tagger.feed(microphone_block):
        ...     print(update.end, tagger.pipeline.top(update.scores, 3))
    """

    def __init__(
        self,
        pipeline: AudioPipeline,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        window: float | None = None,
        hop: float = DEFAULT_HOP_SECONDS,
        threshold: float = 0.5,
        off_threshold: float | None = None,
        score: ScoreFunction | None = None,
        keep_up: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        window = window or pipeline.clip_seconds
        if window <= 0 or hop <= 0:
            raise ConfigError(f"window and hop must be positive seconds, got window={window}, hop={hop}")
        self.pipeline = pipeline
        self.rate = pipeline.sample_rate
        self.window, self.hop = window, hop
        self._resampler = ChunkResampler(sample_rate or self.rate, self.rate, channels)
        self._cutter = WindowCutter(round(window * self.rate), round(hop * self.rate), grow=True)
        off = 0.8 * threshold if off_threshold is None else off_threshold
        self.events = EventTracker(pipeline.labels, threshold=threshold, off_threshold=off)
        self.latency = LatencyStats()
        self._score = score or self._run_pipeline
        self.keep_up = keep_up
        self.skipped = 0  # windows left unscored to keep up
        self._clock = clock

    @property
    def seconds(self) -> float:
        """Stream time so far (samples at the model's rate that reached the buffer)."""
        return self._cutter.total / self.rate

    def feed(self, piece: np.ndarray, *, arrival: float | None = None) -> list[LiveUpdate]:
        """Add PCM samples (``[frames]`` or ``[frames, channels]``, float or integer) that arrived at ``arrival``.

        Returns:
            One update per window the samples complete (none until a hop's worth has arrived).
        """
        arrival = self._clock() if arrival is None else arrival
        windows = self._cutter.push(self._resampler(piece))
        if self.keep_up and len(windows) > 1:
            self.skipped += len(windows) - 1
            windows = windows[-1:]
        return self._updates(windows, arrival)

    def finish(self) -> tuple[list[LiveUpdate], list[Event]]:
        """End the stream: the updates of the samples still held (the last window ends at the end of the audio, as
        the timeline's), and the events still on, ended there."""
        arrival = self._clock()
        windows = self._cutter.push(self._resampler.flush())
        if self._cutter.total:
            windows += self._cutter.finish("end")
        updates = self._updates(windows, arrival)
        return updates, self.events.close()

    def _run_pipeline(self, clips: list[Clip]) -> np.ndarray:
        logits, _ = self.pipeline.run_clips(clips)
        return self.pipeline.activate(logits).numpy()

    def _updates(self, windows: list[tuple[int, Tensor]], arrival: float) -> list[LiveUpdate]:
        if not windows:
            return []
        scores = self._score(self.pipeline.clips([samples for _, samples in windows]))
        now = self._clock()
        updates = []
        for (start, samples), row in zip(windows, scores, strict=True):
            begin, end = start / self.rate, (start + samples.numel()) / self.rate
            lower, upper = window_spans(np.array([(begin + end) / 2]), self.hop, self.seconds)
            began, ended = self.events.step(float(lower[0]), float(upper[0]), row)
            last_hop = samples[-self._cutter.hop :].double()
            level = 10 * math.log10(max(float(last_hop.square().mean()), 1e-12))
            self.latency.add(now - arrival)
            updates.append(LiveUpdate(begin, end, row, began, ended, level, now - arrival))
        return updates
