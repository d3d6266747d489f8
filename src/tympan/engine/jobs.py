"""Jobs: how an input is cut into pieces (:meth:`Job.plan`) and how its pieces' outputs become its record
(:meth:`Job.finish`).

* :class:`TagJob`: class scores of a whole file; files longer than :data:`LONG_FILE_SECONDS` are windows of the
  model's clip length, aggregated by the maximum (multi-label) or the mean (single-label).
* :class:`EmbedJob`: the embedding of a file, defined as the mean of the embeddings of its clip-length windows
  (one pass for a file no longer than :data:`LONG_FILE_SECONDS`, where the two agree for the models' clip length);
  ``tympan embed`` and :func:`tympan.embed` both compute it here.
* :class:`TimelineJob`: scores per window (exact windows, or feature maps pooled per window) and events.

Long inputs are cut into segments of :data:`SEGMENT_SECONDS`, each an independent piece, so that DataLoader workers
run one file in parallel and read only their own span of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..audio.stream import TAILS
from ..errors import AudioLoadError, ConfigError
from ..tagging import Timeline, aggregate_windows, detect_events
from .network import Network
from .pieces import ClipPiece, Outputs, Piece, PooledPiece, Source, TimestampPiece, WindowPiece, window_starts
from .records import Record, error_message

__all__ = ["EmbedJob", "Job", "TagJob", "TimelineJob"]

# Whole short files per work item (equal-length clips batched, in calls of CPU_SECONDS_PER_CALL on the CPU). Four
# cost the CPU what eight do, and the workers (which take items in turn) finish closer together: 40 files on 2
# workers, 2.05 s against 2.72 s.
FILES_PER_ITEM = 4
POOLED_WINDOWS_PER_CALL = 512  # mn10_as, an hour's 3,591 windows: 150 ms of classifier; all at once 169 ms
# Formats whose every span decodes exactly (libsndfile seeks them sample-accurately, MP3 and Ogg Vorbis / Opus too:
# tests/engine/test_engine.py); others are read as one piece.
SEEKABLE_FORMATS = (
    "WAV",
    "WAVEX",
    "FLAC",
    "AIFF",
    "AU",
    "CAF",
    "W64",
    "RF64",
    "RAW",
    "NIST",
    "IRCAM",
    "VOC",
    "MP3",
    "OGG",
)
# Longer files are scored window by window (streamed) rather than in one forward pass.
LONG_FILE_SECONDS = 60.0
# Length of the pieces a long input is cut into. A piece's feature map beyond ~30 s outgrows the cache (one thread,
# mn10_as: 1.21 ms of CPU per second of audio up to 34 s of input, 1.50 at 64 s); an hour's pooled timeline took
# 5.4 s wall and 9.1 CPU-s in 30-s pieces against 6.1 s and 10.0 CPU-s in 60-s ones (medians of 3, alternating).
SEGMENT_SECONDS = 30.0
# Audio a pooled piece computes on each side of the frames it keeps, rounded to whole feature-map frames: beyond it
# the frames hardly change (mn10_as, 32-s pieces of 2 minutes against one pass: 5.5e-4 with none, 2.4e-5 with 0.64 s,
# 7.9e-6 with 0.96 s, 1.4e-6 with 1.6 s), and every second more is 3 % more work.
POOLED_CONTEXT_SECONDS = 1.0
METHODS = ("windows", "pooled")


@dataclass(frozen=True)
class Input:
    """One input of a job: its name in the records, where its audio is, its length at the network's rate, and
    whether its format reads any span exactly (else it is one piece)."""

    index: int
    name: str
    source: Source
    total: int
    seekable: bool = True


class Job:
    """Cuts inputs into pieces and turns the pieces' outputs into records."""

    def __init__(
        self,
        network: Network,
        *,
        batch_size: int = 16,
        files_per_item: int = FILES_PER_ITEM,
        segment_seconds: float = SEGMENT_SECONDS,
    ) -> None:
        self.network = network
        self.batch_size = batch_size
        self.files_per_item = files_per_item
        self.segment_seconds = segment_seconds

    def inputs(self, sources: Sequence[tuple[str, Source]]) -> list[Input | Record]:
        """Each source as an :class:`Input` (its length from the file header), or an error record when the header
        cannot be read."""
        from ..audio.io import audio_info, resampled_length

        planned: list[Input | Record] = []
        for index, (name, source) in enumerate(sources):
            if isinstance(source, torch.Tensor):
                planned.append(Input(index, name, source, source.numel()))
                continue
            try:
                info = audio_info(source)
                if info.frames == 0:
                    raise AudioLoadError(f"audio file {name} holds no samples (the audio is empty)")
            except AudioLoadError as error:
                planned.append(Record(name, index, error=error_message(error), exception=error))
                continue
            total = resampled_length(info.frames, info.sample_rate, self.network.sample_rate)
            planned.append(Input(index, name, str(source), total, info.format in SEEKABLE_FORMATS))
        return planned

    def plan(self, item: Input) -> list[Piece]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work done once in the main process before the workers start (a graph export, say)."""

    def finish(self, item: Input, pieces: list[Piece], outputs: list[Outputs]) -> Record:
        raise NotImplementedError

    def collect(self, item: Input, pieces: list[Piece], outputs: Iterator[Outputs]) -> Record:
        """The record of an input from its pieces' outputs as they arrive (a failed piece raises its error): by
        default :meth:`finish` of all of them; a job that can use them one by one overrides this."""
        return self.finish(item, pieces, list(outputs))

    def _segment(self, item: Input, step: int) -> int:
        """Samples per piece of a long input: :meth:`_steps`; all of it for a format that does not seek."""
        return self._steps(step) if item.seekable else max(item.total, step)

    def _steps(self, step: int) -> int:
        """The multiple of ``step`` samples nearest to :attr:`segment_seconds` (at least one step)."""
        return max(round(self.segment_seconds * self.network.sample_rate / step), 1) * step

    def _window_pieces(
        self, item: Input, window: int, hop: int, tail: str, piece: type[WindowPiece] = WindowPiece
    ) -> list[Piece]:
        starts = window_starts(item.total, window, hop, tail)
        segment = self._segment(item, hop)
        groups: dict[int, list[int]] = {}
        for start in starts:
            groups.setdefault(start // segment, []).append(start)
        return [
            piece(
                item.index, item.name, item.source, part, len(groups), tuple(group), window, item.total, self.batch_size
            )
            for part, group in enumerate(groups.values())
        ]


def _cat(outputs: list[Outputs], key: str) -> torch.Tensor:
    return torch.cat([output.values[key].reshape(-1, output.values[key].shape[-1]) for output in outputs])


def joined_notes(outputs: list[Outputs]) -> list[str]:
    return list(dict.fromkeys(note for output in outputs for note in output.notes))


class _ClipJob(Job):
    """One forward pass for a file up to :data:`LONG_FILE_SECONDS`, else clip-length windows (``tail="end"``)."""

    def plan(self, item: Input) -> list[Piece]:
        if item.total <= LONG_FILE_SECONDS * self.network.sample_rate:
            return [ClipPiece(item.index, item.name, item.source)]
        clip = self.network.clip_samples
        return self._window_pieces(item, clip, clip, "end")

    def _long_note(self, how: str, what: str, outputs: list[Outputs]) -> str:
        count = len(_cat(outputs, "logits"))
        seconds = self.network.clip_samples / self.network.sample_rate
        return f"a long file: the {how} of the {what} of {count} windows of {seconds:g} s"


class TagJob(_ClipJob):
    """Class scores of each file."""

    def finish(self, item: Input, pieces: list[Piece], outputs: list[Outputs]) -> Record:
        network = self.network
        scores = network.activate(_cat(outputs, "logits")).numpy()
        notes = joined_notes(outputs)
        if not isinstance(pieces[0], WindowPiece):
            return Record(item.name, item.index, network.labels, scores=scores[0], notes=notes)
        scores, how = aggregate_windows(scores, network.multilabel)
        notes.append(self._long_note(how, "scores", outputs))
        return Record(item.name, item.index, network.labels, scores=scores, notes=notes)


class EmbedJob(_ClipJob):
    """The embedding of each file: one pass, or the mean over clip-length windows of a long file; with
    ``timestamps`` (a HEAR variant), the HEAR timestamp embeddings of the whole file instead."""

    def __init__(self, network: Network, *, timestamps: str | None = None, **options: Any) -> None:
        super().__init__(network, **options)
        self.timestamps = timestamps

    def plan(self, item: Input) -> list[Piece]:
        if self.timestamps is not None:
            return [TimestampPiece(item.index, item.name, item.source, variant=self.timestamps)]
        return super().plan(item)

    def finish(self, item: Input, pieces: list[Piece], outputs: list[Outputs]) -> Record:
        if self.timestamps is not None:
            (output,) = outputs
            embedding, times = output.values["embedding"].numpy(), output.values["timestamps"].numpy()
            return Record(item.name, item.index, embedding=embedding, timestamps=times)
        embeddings = _cat(outputs, "embedding")
        notes = joined_notes(outputs)
        if isinstance(pieces[0], WindowPiece):
            notes.append(self._long_note("mean", "embeddings", outputs))
        return Record(item.name, item.index, embedding=embeddings.mean(dim=0).numpy(), notes=notes)


class TimelineJob(Job):
    """Scores of windows of ``window`` seconds every ``hop`` seconds, and events (see :func:`tympan.tagging.timeline`
    for ``method`` and ``tail``; ``options``: ``batch_size``, windows per forward pass, and ``segment_seconds``)."""

    def __init__(
        self,
        network: Network,
        *,
        window: float | None = None,
        hop: float | None = None,
        method: str = "windows",
        tail: str = "end",
        threshold: float = 0.5,
        median_windows: int = 3,
        **options: Any,
    ) -> None:
        super().__init__(network, **options)
        rate = network.sample_rate
        window = window or network.clip_samples / rate
        hop = hop or window
        if window <= 0 or hop <= 0:
            raise ConfigError(f"window and hop must be positive seconds, got window={window}, hop={hop}")
        if method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
        if tail not in TAILS:
            raise ConfigError(f"tail must be one of {TAILS}, got {tail!r}")
        self.window, self.hop = round(window * rate), round(hop * rate)
        if method == "pooled":
            if tail != "end":
                raise ConfigError(
                    "method='pooled' pools real audio only; use tail='end', or method='windows' with tail='pad'"
                )
            if not network.poolable or self.window % self.hop:
                raise ConfigError(
                    "method='pooled' needs an EfficientAT CNN (mn, dymn) and a window that is a multiple of the hop"
                )
        self.method, self.tail = method, tail
        self.threshold, self.median_windows = threshold, median_windows

    def prepare(self) -> None:
        if self.method == "pooled":
            step, context = self._pooled_grid()
            self.network.prepare_feature_map(self._steps(step) + 2 * context)  # the span of a piece inside the file

    def plan(self, item: Input) -> list[Piece]:
        if self.method == "windows":
            return self._window_pieces(item, self.window, self.hop, self.tail)
        step, context = self._pooled_grid()
        segment = self._segment(item, step)
        keeps = [(start, min(start + segment, item.total)) for start in range(0, item.total, segment)]
        return [
            PooledPiece(item.index, item.name, item.source, part, len(keeps), keep, self.hop, context, item.total)
            for part, keep in enumerate(keeps)
        ]

    def _pooled_grid(self) -> tuple[int, int]:
        """A pooled piece's step (its kept audio is a multiple of it) and context, in samples.

        The context is :data:`POOLED_CONTEXT_SECONDS` in whole feature-map frames, and the step a multiple of both
        the hop and a frame where one fits in a segment (8 s for hops of 1 s or 0.5 s), so that every piece starts
        on the frame grid of one pass over the whole file. Off that grid a piece's frames see their audio shifted by
        part of a frame (30-s pieces of 2 minutes with 1.5 s of context, mn10_as: within 1.5e-4 of one pass, against
        5.5e-6 on it), and pieces of a file would need graphs of several lengths where the model's graph has a fixed
        shape (DyMN)."""
        stride = self.network.feature_stride
        context = max(round(POOLED_CONTEXT_SECONDS * self.network.sample_rate / stride), 1) * stride
        step = math.lcm(self.hop, stride)
        return (step if step <= self._steps(self.hop) else self.hop), context

    def collect(self, item: Input, pieces: list[Piece], outputs: Iterator[Outputs]) -> Record:
        """Pooled: the windows are classified as their pieces' sums arrive (see :meth:`_pool`)."""
        if self.method != "pooled":
            return super().collect(item, pieces, outputs)
        return self._record(item, *self._pool(item.total, outputs), notes=[])  # pooled pieces add no notes

    def finish(self, item: Input, pieces: list[Piece], outputs: list[Outputs]) -> Record:
        if self.method == "pooled":
            return self.collect(item, pieces, iter(outputs))
        starts = [start for piece in pieces for start in piece.starts]  # type: ignore[attr-defined]
        return self._record(item, starts, _cat(outputs, "logits"), joined_notes(outputs))

    def _record(self, item: Input, starts: list[int], logits: torch.Tensor, notes: list[str]) -> Record:
        network, rate = self.network, self.network.sample_rate
        line = Timeline(
            labels=network.labels,
            starts=np.asarray(starts, dtype=np.float64) / rate,
            window=self.window / rate if self.tail == "pad" else min(self.window, item.total) / rate,
            hop=self.hop / rate,
            scores=network.activate(logits).numpy(),
            duration=item.total / rate,
            notes=notes,
        )
        events = detect_events(line, threshold=self.threshold, median_windows=self.median_windows)
        return Record(item.name, item.index, network.labels, timeline=line, events=events, notes=line.notes)

    def _pool(self, total: int, outputs: Iterator[Outputs]) -> tuple[list[int], torch.Tensor]:
        """Window starts and logits from per-hop sums of feature-map frames, the mean over each window's hops:
        :data:`POOLED_WINDOWS_PER_CALL` windows at a time, as soon as their pieces' sums have arrived, keeping only
        the hops of windows still to come (an hour's sums are 14 MB, ten hours' 140 MB; all windows at once took
        50 MB more)."""
        starts = window_starts(total, self.window, self.hop)
        first = torch.tensor([start // self.hop for start in starts])
        span = self.window // self.hop
        hops = _HopSums(outputs)
        logits = []
        for chunk in first.split(POOLED_WINDOWS_PER_CALL):
            sums, counts = hops.rows(int(chunk[0]), int(chunk[-1]) + span)
            offsets = chunk - int(chunk[0])
            frames = _sliding_sums(counts, span)[offsets].clamp(min=1)
            logits.append(self.network.head(_sliding_sums(sums, span)[offsets] / frames))
        return starts, torch.cat(logits)


class _HopSums:
    """The per-hop feature sums and frame counts of one file's pooled pieces, read from their outputs in order as
    far as they are asked for."""

    def __init__(self, outputs: Iterator[Outputs]) -> None:
        self._outputs = outputs
        self._sums: list[torch.Tensor] = []
        self._counts: list[torch.Tensor] = []
        self._first = 0  # the hop of the first row kept

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums ``[hops, D]`` and counts ``[hops, 1]`` of hops ``[start, stop)`` (fewer at the end of the file);
        the hops before ``start`` are let go."""
        kept = sum(len(part) for part in self._sums)
        while self._first + kept < stop and (output := next(self._outputs, None)) is not None:
            self._sums.append(output.values["sums"])
            self._counts.append(output.values["counts"][:, None])
            kept += len(self._sums[-1])
        sums, counts = torch.cat(self._sums)[start - self._first :], torch.cat(self._counts)[start - self._first :]
        self._sums, self._counts, self._first = [sums], [counts], start
        return sums[: stop - start], counts[: stop - start]


def _sliding_sums(values: torch.Tensor, span: int) -> torch.Tensor:
    """The sum of ``span`` rows from each row of ``values`` on (fewer at the end): ``span`` terms per sum, so float32
    keeps them exact to rounding, and 10x faster than differences of a float64 running sum over an hour's hops."""
    padded = torch.cat([values, values.new_zeros(span - 1, values.shape[1])])
    return padded.unfold(0, span, 1).sum(-1)
