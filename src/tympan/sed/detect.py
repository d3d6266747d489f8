"""Frame scores of files of any length, and events per file, on the batch engine (:mod:`tympan.engine`).

A file is cut into consecutive windows of the model's training clip length (the last one zero-padded, as
PretrainedSED's ``inference.py`` does); the engine reads them in DataLoader workers (a long file in independent
segments, so memory stays flat), the frame model scores them in batches, and their frame scores are joined and
trimmed to the audio. Folders, error records for unreadable files and ``Trainer.predict`` over many GPUs come with
the engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine import as_network, run_files
from ..engine.jobs import Input, Job, joined_notes
from ..engine.network import Network
from ..engine.pieces import FrameWindowPiece, Outputs, Piece
from ..engine.records import Record
from ..engine.runner import run_one, source_of
from ..errors import ConfigError
from ..models.frame import FrameModel
from ..pipeline import AudioInput, AudioPipeline
from ..tagging import Timeline
from .postprocess import DEFAULT_POSTPROCESSING, Event, PostProcessing, decode_events

__all__ = ["FrameJob", "FrameScores", "detect", "detect_events", "frame_model", "frame_scores", "frame_seconds"]


@dataclass
class FrameScores:
    """Event probabilities per frame.

    Attributes:
        labels: class names (columns of ``scores``).
        frame_seconds: frame hop in seconds (0.04 for the PretrainedSED models).
        scores: ``[frames, classes]``; frame ``i`` spans ``[i·h, (i+1)·h)``, the last one clipped to the audio.
        duration: audio length in seconds.
    """

    labels: list[str]
    frame_seconds: float
    scores: np.ndarray
    duration: float

    @property
    def starts(self) -> np.ndarray:
        return np.arange(len(self.scores)) * self.frame_seconds

    @property
    def ends(self) -> np.ndarray:
        return np.minimum(self.starts + self.frame_seconds, self.duration)

    @classmethod
    def from_timeline(cls, timeline: Timeline, frame_seconds: float) -> FrameScores:
        """A clip-window timeline on a grid of ``frame_seconds``: each frame takes the scores of the window whose
        centre is nearest to its own (how a timeline is compared with frame-level models on one metric)."""
        centres = (np.arange(_frames(timeline.duration, frame_seconds)) + 0.5) * frame_seconds
        nearest = np.abs(centres[:, None] - timeline.centres[None, :]).argmin(axis=1)
        return cls(list(timeline.labels), frame_seconds, timeline.scores[nearest], timeline.duration)

    def as_timeline(self) -> Timeline:
        """The frames as a :class:`~tympan.tagging.Timeline` of one-frame windows (for :func:`plot_timeline`)."""
        hop = self.frame_seconds
        return Timeline(self.labels, self.starts, hop, hop, self.scores, self.duration)


def frame_model(pipeline: AudioPipeline) -> FrameModel:
    """The pipeline's network, which must be a frame-level model.

    Raises:
        ConfigError: it is a clip-level model.
    """
    if not isinstance(pipeline.model, FrameModel):
        raise ConfigError(
            f"{pipeline.name or type(pipeline.model).__name__} is a clip-level model; detect with a frame-level one "
            "(e.g. frame_mn06, or a checkpoint of `tympan finetune --task sed`), or use the clip-window timeline "
            "of `tympan tag --window W --hop H --events`"
        )
    return pipeline.model


def frame_seconds(pipeline: AudioPipeline) -> float:
    """The frame hop of a frame-level pipeline in seconds."""
    frame_model(pipeline)
    return as_network(pipeline).frame_seconds


class FrameJob(Job):
    """Frame scores of an input in windows of ``window`` seconds (default: the training clip length; the last one
    zero-padded), and its events; ``options``: ``batch_size`` (windows per forward pass), ``segment_seconds``."""

    def __init__(
        self,
        network: Network,
        *,
        window: float | None = None,
        config: PostProcessing = DEFAULT_POSTPROCESSING,
        **options: Any,
    ) -> None:
        options.setdefault("batch_size", 8)
        super().__init__(network, **options)
        hop = network.frame_seconds
        if hop is None:
            raise ConfigError("sound event detection needs a frame-level model (e.g. frame_mn06)")
        window = window or network.clip_samples / network.sample_rate
        self.frames_per_window = round(window / hop)
        if self.frames_per_window < 1 or abs(self.frames_per_window * hop - window) > 1e-6:
            raise ConfigError(f"the window ({window} s) must be a whole number of {hop * 1000:g}-ms frames")
        self.window, self.hop, self.config = round(window * network.sample_rate), hop, config

    def plan(self, item: Input) -> list[Piece]:
        return self._window_pieces(item, self.window, self.window, "pad", FrameWindowPiece)

    def finish(self, item: Input, pieces: list[Piece], outputs: list[Outputs]) -> Record:
        logits = torch.cat([output.values["frames"][..., : self.frames_per_window] for output in outputs])
        probabilities = torch.sigmoid(logits).transpose(1, 2).reshape(-1, logits.shape[1]).numpy()
        duration = item.total / self.network.sample_rate
        scores = FrameScores(self.network.labels, self.hop, probabilities[: _frames(duration, self.hop)], duration)
        line = Timeline(scores.labels, scores.starts, self.hop, self.hop, scores.scores, duration)
        events = detect_events(scores, self.config)
        return Record(item.name, item.index, scores.labels, timeline=line, events=events, notes=joined_notes(outputs))


def _frames(duration: float, hop: float) -> int:
    """Frames that cover ``duration`` seconds (at least one)."""
    return max(1, math.ceil(duration / hop - 1e-9))


def frame_scores(
    pipeline: AudioPipeline,
    audio: AudioInput,
    *,
    sample_rate: int | None = None,
    window: float | None = None,
    batch_size: int = 8,
    workers: int | None = 0,
) -> FrameScores:
    """Frame probabilities of a file or mono waveform of any length.

    Args:
        pipeline: a frame-level pipeline (:func:`tympan.load`).
        audio: a file path or a mono waveform.
        sample_rate: rate of an array input in Hz (default: the pipeline's).
        window: seconds per forward pass (default: the training clip length); a multiple of the frame hop.
        batch_size: windows per forward pass.
        workers: DataLoader worker processes of the engine (0: all in this process; None: one per core).

    Raises:
        ConfigError: a clip-level pipeline, or a window that is not a whole number of frames.
        AudioLoadError: the input cannot be decoded, is empty or has non-finite samples.
    """
    frame_model(pipeline)
    network = as_network(pipeline)
    job = FrameJob(network, window=window, batch_size=batch_size)
    return _scores(run_one(job, *source_of(network, audio, sample_rate), workers=workers))


def _scores(record: Record) -> FrameScores:
    line = record.timeline
    return FrameScores(line.labels, line.hop, line.scores, line.duration)


def detect_events(scores: FrameScores, config: PostProcessing = DEFAULT_POSTPROCESSING) -> list[Event]:
    """The events of one file's frame scores."""
    return decode_events(scores.scores, scores.labels, scores.starts, scores.ends, config)


def detect(
    pipeline: AudioPipeline,
    files: Iterable[str | Path],
    config: PostProcessing = DEFAULT_POSTPROCESSING,
    *,
    keep_scores: bool = False,
    window: float | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    trainer: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per file: ``{"file", "duration", "events": [{label, onset, offset, score}]}``.

    A file that cannot be read gives ``{"file", "error"}`` and the others go on. With ``keep_scores`` the record
    also holds the :class:`FrameScores` under ``"frame_scores"`` (for plots and metrics).

    Args:
        pipeline: a frame-level pipeline.
        files: audio files and folders.
        config: post-processing.
        keep_scores: add the frame scores to each record.
        window, batch_size: as :func:`frame_scores`.
        workers, trainer: where the engine runs (see :func:`tympan.engine.tag_files`).
    """
    frame_model(pipeline)
    job = FrameJob(as_network(pipeline), window=window, config=config, batch_size=batch_size)
    for record in run_files(job, files, workers, trainer) or ():
        if record.error is not None:
            yield {"file": record.file, "error": record.error}
            continue
        events = [
            {"label": e.label, "onset": e.onset, "offset": e.offset, "score": round(e.score, 4)} for e in record.events
        ]
        result: dict[str, Any] = {"file": record.file, "duration": round(record.timeline.duration, 3), "events": events}
        if keep_scores:
            result["frame_scores"] = _scores(record)
        yield result
