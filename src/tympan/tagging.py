"""Tagging over time: a timeline of scores per window, an event table, and a timeline plot.

Long files are streamed in chunks (:func:`tympan.audio.io.stream_audio`), and only the samples that later windows
still need are kept, so memory stays flat from a 10-s clip to a multi-hour recording; the windows run through the
network in batches. The event table comes from median-filtering each class's scores over time and thresholding:
an event is a run of windows above the threshold, placed at the window centres (± half a hop).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .audio.stream import TAILS, WindowCutter
from .errors import AudioLoadError, ConfigError
from .files import atomic_path
from .pipeline import AudioInput, AudioPipeline, all_finite

__all__ = [
    "Event",
    "EventTracker",
    "Timeline",
    "aggregate_timeline",
    "clip_scores",
    "detect_events",
    "plot_timeline",
    "predictions",
    "timeline",
    "timeline_record",
    "window_spans",
]

logger = logging.getLogger(__name__)

CHUNK_SECONDS = 60.0
# Longer files are tagged window by window (streamed) rather than in one forward pass.
LONG_FILE_SECONDS = 60.0


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


@dataclass(frozen=True)
class Event:
    """A sound event: ``label`` active from ``onset`` to ``offset`` (seconds), with its peak (filtered) ``score``."""

    onset: float
    offset: float
    label: str
    score: float


def _chunks(pipeline: AudioPipeline, audio: AudioInput, sample_rate: int | None, chunk: int) -> Iterator[Tensor]:
    """Mono chunks at the pipeline's rate: streamed from a file, or sliced from an array."""
    from .audio.io import prepare_waveform, stream_audio

    if isinstance(audio, (str, Path)):
        for piece in stream_audio(audio, sample_rate=pipeline.sample_rate, chunk_seconds=chunk / pipeline.sample_rate):
            yield torch.as_tensor(piece, dtype=torch.float32)
        return
    waveform = torch.as_tensor(prepare_waveform(audio, sample_rate or pipeline.sample_rate, pipeline.sample_rate))
    for offset in range(0, waveform.numel(), chunk):
        yield waveform[offset : offset + chunk]


class _Counter:
    """Passes chunks through, counting samples and advancing an optional progress bar (in seconds)."""

    def __init__(self, chunks: Iterator[Tensor], rate: int, bar: Any) -> None:
        self.chunks, self.rate, self.bar, self.samples = chunks, rate, bar, 0

    def __iter__(self) -> Iterator[Tensor]:
        for piece in self.chunks:
            if not all_finite(piece):
                raise AudioLoadError("the audio holds non-finite samples (NaN or inf); repair or re-export the file")
            self.samples += piece.numel()
            if self.bar is not None:
                self.bar.update(piece.numel() / self.rate)
            yield piece


def _windows(chunks: Iterable[Tensor], window: int, hop: int, tail: str = "end") -> Iterator[tuple[int, Tensor]]:
    """(start sample, window) pairs every ``hop`` samples, and a last window for the tail (see :func:`timeline`).

    ``tail="end"``: the last window ends at the end of the audio; audio shorter than one window gives one window of
    all of it. ``tail="pad"``: the windows stay at ``i·hop`` and the last one is zero-padded to ``window`` samples
    (``ceil((N − window) / hop) + 1`` windows, at least one). Only one window of samples stays in memory.
    """
    cutter = WindowCutter(window, hop)
    for piece in chunks:
        yield from cutter.push(piece)
    yield from cutter.finish(tail)


def timeline(
    pipeline: AudioPipeline,
    audio: AudioInput,
    *,
    sample_rate: int | None = None,
    window: float | None = None,
    hop: float | None = None,
    batch_size: int = 16,
    chunk_seconds: float = CHUNK_SECONDS,
    progress: bool = False,
    method: str = "windows",
    tail: str = "end",
) -> Timeline:
    """Scores of windows of ``window`` seconds every ``hop`` seconds over a file or waveform of any length.

    Args:
        pipeline: from :func:`tympan.load`.
        audio: a file path (streamed) or a mono waveform.
        sample_rate: rate of an array input in Hz (default: the pipeline's).
        window: window length in seconds (default: the model's training clip length).
        hop: step in seconds (default: ``window``, no overlap).
        batch_size: windows per forward pass.
        chunk_seconds: length of the pieces a file is read in.
        progress: show a tqdm bar on stderr (by audio seconds).
        method: ``"windows"``: each window runs through the network (exact); ``"pooled"``: for the EfficientAT
            CNNs, feature maps are computed once per chunk and mean-pooled per window, ~``window / hop`` times
            less work (squeeze-excitation then sees the chunk rather than the window, so scores differ slightly;
            see ``benchmarks/bench_inference.py``). Needs ``window`` to be a multiple of ``hop``.
        tail: where the last window goes when ``(N − window)`` is not a multiple of the hop. ``"end"`` (the
            default): it is shifted back to end at the end of the audio, so every window the network sees is
            ``window`` seconds of real audio, as in training (a zero-padded window holds less sound than any
            training clip: its tagging scores sink and a scene classifier scores part silence); audio shorter than
            one window is one window of all of it. ``"pad"``: EfficientAT ``windowed_inference.py``'s rule, windows
            at ``i·hop`` only and the last one zero-padded to ``window`` (a regular grid, the reference's numbers;
            unlike the reference, audio shorter than ``window − hop`` still gets one window).

    Raises:
        AudioLoadError: the input cannot be decoded, is empty or has non-finite samples.
        ConfigError: window or hop is not positive, or an unknown ``method`` / ``tail``.
    """
    window = window or pipeline.clip_seconds
    hop = hop or window
    if window <= 0 or hop <= 0:
        raise ConfigError(f"window and hop must be positive seconds, got window={window}, hop={hop}")
    rate = pipeline.sample_rate
    window_samples, hop_samples = round(window * rate), round(hop * rate)
    chunk = max(round(chunk_seconds * rate), window_samples)
    if method not in ("windows", "pooled"):
        raise ConfigError(f"method must be 'windows' or 'pooled', got {method!r}")
    if tail not in TAILS:
        raise ConfigError(f"tail must be one of {TAILS}, got {tail!r}")
    if method == "pooled" and tail != "end":
        raise ConfigError("method='pooled' pools real audio only; use tail='end', or method='windows' with tail='pad'")
    if method == "pooled":
        from .models.mobilenet import EfficientATNet

        if not isinstance(pipeline.model, EfficientATNet) or window_samples % hop_samples:
            raise ConfigError(
                "method='pooled' needs an EfficientAT CNN (mn, dymn) and a window that is a multiple of the hop"
            )
        with _progress_bar(progress, audio) as bar:
            counter = _Counter(_chunks(pipeline, audio, sample_rate, chunk), rate, bar)
            return _pooled_timeline(pipeline, counter, window_samples, hop_samples)
    notes: list[str] = []
    starts: list[int] = []
    scores: list[np.ndarray] = []
    pending: list[Tensor] = []

    def flush() -> None:
        if pending:
            logits, _ = pipeline.forward_waveforms(torch.stack(pending))
            scores.append(pipeline.activate(logits).cpu().numpy())
            pending.clear()

    with _progress_bar(progress, audio) as bar:
        counter = _Counter(_chunks(pipeline, audio, sample_rate, chunk), rate, bar)
        for start, samples in _windows(counter, window_samples, hop_samples, tail):
            if samples.numel() < window_samples:  # the whole audio is shorter than one window
                clip = pipeline._pad(samples)
                notes.extend(clip.notes)
                samples = clip.waveform
            starts.append(start)
            pending.append(samples)
            if len(pending) == batch_size or samples.numel() != window_samples:
                flush()
        flush()
    duration = counter.samples / rate
    padding = starts[-1] + window_samples - counter.samples
    if tail == "pad" and padding > 0:
        notes.append(f"the last window was zero-padded by {padding / rate:.3f} s (tail='pad')")
    return Timeline(
        labels=pipeline.labels,
        starts=np.asarray(starts, dtype=np.float64) / rate,
        window=window if tail == "pad" else min(window, duration),
        hop=hop,
        scores=np.concatenate(scores),
        duration=duration,
        notes=notes,
    )


def clip_scores(pipeline: AudioPipeline, path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Class scores ``[classes]`` of a whole file, and notes on what was done to it.

    Files longer than :data:`LONG_FILE_SECONDS` are streamed in windows of the model's clip length (flat memory)
    and the window scores aggregated: the maximum for multi-label tagging (a sound anywhere in the file), the mean
    for scene classification.
    """
    from .audio.io import audio_info

    if audio_info(path).duration <= LONG_FILE_SECONDS:
        clips = pipeline.clips(path)
        logits, _ = pipeline.run_clips(clips)
        return pipeline.activate(logits)[0].numpy(), clips[0].notes
    return aggregate_timeline(pipeline, timeline(pipeline, path))


def aggregate_timeline(pipeline: AudioPipeline, line: Timeline) -> tuple[np.ndarray, list[str]]:
    """Scores ``[classes]`` of a whole recording from its windows, and notes saying how they were aggregated.

    The maximum for multi-label tagging (a sound anywhere in the recording), the mean for scene classification.
    """
    how = "maximum" if pipeline.multilabel else "mean"
    scores = line.scores.max(axis=0) if pipeline.multilabel else line.scores.mean(axis=0)
    note = f"a long recording: the {how} of the scores of {len(line.starts)} windows of {line.window:g} s"
    return scores, [*line.notes, note]


def _segment_features(
    pipeline: AudioPipeline, audio: Tensor, offset: int, keep: tuple[int, int], hop: int
) -> tuple[Tensor, Tensor]:
    """Per-segment sums of the last feature map's frames whose centres fall in ``keep`` (absolute samples).

    Returns sums ``[segments, D]`` and frame counts ``[segments]`` of the segments from ``keep[0] // hop`` on.
    """
    feature_map = pipeline.feature_map(audio).T.cpu()  # [frames', D]
    frames_per_feature = pipeline.frontend_config.num_frames(audio.numel()) / feature_map.shape[0]
    hop_length = pipeline.frontend_config.hop_length
    centres = offset + (torch.arange(feature_map.shape[0]) + 0.5) * frames_per_feature * hop_length
    inside = (centres >= keep[0]) & (centres < keep[1])
    segments = torch.div(centres[inside], hop, rounding_mode="floor").long()
    first = keep[0] // hop
    count = (keep[1] - 1) // hop - first + 1
    sums = torch.zeros(count, feature_map.shape[1]).index_add_(0, segments - first, feature_map[inside])
    counts = torch.zeros(count).index_add_(0, segments - first, torch.ones(len(segments)))
    return sums, counts


@torch.inference_mode()
def _pooled_timeline(pipeline: AudioPipeline, counter: _Counter, window: int, hop: int) -> Timeline:
    """The timeline from feature maps computed once per chunk (with context on both sides) and pooled per window."""
    context = 2 * hop
    sums: list[Tensor] = []
    counts: list[Tensor] = []
    buffer, buffer_start, done = torch.zeros(0), 0, 0  # done: samples whose segments are summed
    chunks = iter(counter)
    finished = False
    while not finished:
        piece = next(chunks, None)
        finished = piece is None
        if piece is not None:
            buffer = torch.cat([buffer, piece.float()])
        end = buffer_start + buffer.numel()
        # Sum every whole chunk that has its right context, or all that is left at the end.
        target = end if finished else (end - context) // hop * hop
        if target <= done:
            continue
        start = max(done - context, 0)
        audio = buffer[start - buffer_start : min(target + context, end) - buffer_start]
        if audio.numel() < pipeline.min_samples:
            audio = torch.nn.functional.pad(audio, (0, pipeline.min_samples - audio.numel()))
        chunk_sums, chunk_counts = _segment_features(pipeline, audio, start, (done, target), hop)
        sums.append(chunk_sums)
        counts.append(chunk_counts)
        done = target
        keep_from = max(done - context, 0)
        buffer, buffer_start = buffer[keep_from - buffer_start :].clone(), keep_from
    total = counter.samples
    if total == 0:
        raise AudioLoadError("the audio is empty (0 samples)")
    segment_sums, segment_counts = torch.cat(sums), torch.cat(counts)
    cumulative = torch.cat([torch.zeros(1, segment_sums.shape[1]), segment_sums.double().cumsum(0)])
    cumulative_counts = torch.cat([torch.zeros(1), segment_counts.double().cumsum(0)])
    per_window = window // hop
    starts = list(range(0, max(total - window, 0) + 1, hop))
    if total > window and starts[-1] + window < total:
        starts.append(total - window)
    first = torch.tensor([s // hop for s in starts])
    last = torch.clamp(first + per_window, max=len(segment_sums))
    embeddings = (cumulative[last] - cumulative[first]) / (cumulative_counts[last] - cumulative_counts[first]).clamp(
        min=1
    )[:, None]
    with pipeline.autocast():
        logits = pipeline.model.forward_head(embeddings.float().to(pipeline.device)).float()
    return Timeline(
        labels=pipeline.labels,
        starts=np.asarray(starts, dtype=np.float64) / pipeline.sample_rate,
        window=min(window, total) / pipeline.sample_rate,
        hop=hop / pipeline.sample_rate,
        scores=pipeline.activate(logits).cpu().numpy(),
        duration=total / pipeline.sample_rate,
    )


def _progress_bar(enabled: bool, audio: AudioInput) -> Any:
    """A tqdm bar on stderr counting audio seconds (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    from tqdm import tqdm

    name = Path(audio).name if isinstance(audio, (str, Path)) else "audio"
    return tqdm(
        desc=name, unit="s", unit_scale=False, leave=False, bar_format="{desc}: {n:.0f} s [{elapsed}, {rate_fmt}]"
    )


def _median_filter(scores: np.ndarray, size: int) -> np.ndarray:
    """Running median over time (axis 0); ``size`` is made odd."""
    half = max(size, 1) // 2
    if half == 0 or len(scores) < 2:
        return scores
    # Zero padding (as scipy.signal.medfilt): beyond the audio nothing sounds, so a one-window spike at either end
    # is removed like one in the middle.
    padded = np.pad(scores, ((half, half), (0, 0)))
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0), axis=-1)


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
    ``off_threshold``, until the score falls below that: see :class:`EventTracker`) gives one event from the first
    window's span to the last one's, clipped to the audio. Sorted by onset, then label.
    """
    if len(timeline.scores) == 0:
        return []
    filtered = _median_filter(timeline.scores, median_windows)
    if len(timeline.starts) == 1:
        lower, upper = np.array([0.0]), np.array([timeline.duration])
    else:
        lower, upper = window_spans(timeline.centres, timeline.hop, timeline.duration)
    tracker = EventTracker(timeline.labels, threshold=threshold, off_threshold=off_threshold)
    events = []
    for row in range(len(filtered)):
        events.extend(tracker.step(float(lower[row]), float(upper[row]), filtered[row])[1])
    events.extend(tracker.close())
    return sorted(events, key=lambda event: (event.onset, event.label))


def predictions(pipeline: AudioPipeline, scores: np.ndarray, top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` ``{"label", "score"}`` records of one score vector, best first (the JSON of tag and serve)."""
    return [{"label": label, "score": round(score, 6)} for label, score in pipeline.top(scores, top_k)]


def timeline_record(
    pipeline: AudioPipeline, line: Timeline, events: list[Event], top_k: int
) -> dict[str, list[dict[str, Any]]]:
    """``{"windows": [{"start", "end", "predictions"}], "events": [...]}``: a timeline as JSON records."""
    windows = [
        {
            "start": round(float(start), 3),
            "end": round(float(min(start + line.window, line.duration)), 3),
            "predictions": predictions(pipeline, row, top_k),
        }
        for start, row in zip(line.starts, line.scores, strict=True)
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
