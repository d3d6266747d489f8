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

from .errors import AudioLoadError, ConfigError
from .files import atomic_path
from .pipeline import AudioInput, AudioPipeline, all_finite
from .sed.postprocess import Event, PostProcessing, decode_events

__all__ = ["Event", "Timeline", "clip_scores", "detect_events", "plot_timeline", "timeline"]

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


TAILS = ("end", "pad")


def _windows(chunks: Iterable[Tensor], window: int, hop: int, tail: str = "end") -> Iterator[tuple[int, Tensor]]:
    """(start sample, window) pairs every ``hop`` samples, and a last window for the tail (see :func:`timeline`).

    ``tail="end"``: the last window ends at the end of the audio; audio shorter than one window gives one window of
    all of it. ``tail="pad"``: the windows stay at ``i·hop`` and the last one is zero-padded to ``window`` samples
    (``ceil((N − window) / hop) + 1`` windows, at least one). Only the samples later windows need stay in memory.
    """
    buffer = torch.zeros(0)
    buffer_start = next_start = last_end = 0  # absolute sample indices
    for piece in chunks:
        buffer = torch.cat([buffer, piece.float()])
        end = buffer_start + buffer.numel()
        while next_start + window <= end:
            offset = next_start - buffer_start
            yield next_start, buffer[offset : offset + window]
            last_end = next_start + window
            next_start += hop
        keep_from = max(min(next_start, end - window), buffer_start)
        buffer, buffer_start = buffer[keep_from - buffer_start :].clone(), keep_from
    total = buffer_start + buffer.numel()
    if total == 0:
        raise AudioLoadError("the audio is empty (0 samples)")
    if tail == "pad":
        if last_end < total or last_end == 0:
            piece = buffer[next_start - buffer_start :]
            yield next_start, torch.nn.functional.pad(piece, (0, window - piece.numel()))
    elif last_end == 0:
        yield 0, buffer
    elif last_end < total:
        yield total - window, buffer[buffer.numel() - window :]


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
    line = timeline(pipeline, path)
    how = "maximum" if pipeline.multilabel else "mean"
    scores = line.scores.max(axis=0) if pipeline.multilabel else line.scores.mean(axis=0)
    note = f"a long file: the {how} of the scores of {len(line.starts)} windows of {line.window:g} s"
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


def detect_events(timeline: Timeline, *, threshold: float = 0.5, median_windows: int = 3) -> list[Event]:
    """Events from the timeline: per class, median-filter the scores over ``median_windows`` windows, threshold.

    Each window stands for ±half a hop around its centre; a run of windows above ``threshold`` gives one event
    from the first window's span to the last one's, clipped to the audio. Sorted by onset, then label. The decoder
    is that of the frame-level detectors (:func:`tympan.sed.postprocess.decode_events`).
    """
    if len(timeline.starts) == 1:
        lower, upper = np.array([0.0]), np.array([timeline.duration])
    else:
        half = timeline.hop / 2
        lower = np.clip(timeline.centres - half, 0.0, timeline.duration)
        upper = np.clip(timeline.centres + half, 0.0, timeline.duration)
    sizes = [median_windows] * len(timeline.labels)
    return decode_events(timeline.scores, timeline.labels, lower, upper, PostProcessing(threshold), sizes)


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
