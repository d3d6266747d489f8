"""Frame scores of files of any length, and events per file.

A file is cut into consecutive windows of the model's training clip length (the last one zero-padded, as
PretrainedSED's ``inference.py`` does), the windows run through the frame model in batches, and their frame scores
are joined and trimmed to the audio. Files are streamed in chunks, so memory stays flat for long recordings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, TympanError
from ..models.frame import FrameModel
from ..pipeline import AudioInput, AudioPipeline
from ..tagging import CHUNK_SECONDS, Timeline, _chunks, _Counter, _windows
from .postprocess import DEFAULT_POSTPROCESSING, Event, PostProcessing, decode_events

__all__ = ["FrameScores", "detect", "detect_events", "frame_model", "frame_scores", "frame_seconds"]

logger = logging.getLogger(__name__)


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
        frames = max(1, int(np.ceil(timeline.duration / frame_seconds - 1e-9)))
        centres = (np.arange(frames) + 0.5) * frame_seconds
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
    config = pipeline.frontend_config
    return frame_model(pipeline).mel_frames_per_output * config.hop_length / config.stft_sample_rate


@torch.inference_mode()
def frame_scores(
    pipeline: AudioPipeline,
    audio: AudioInput,
    *,
    sample_rate: int | None = None,
    window: float | None = None,
    batch_size: int = 8,
    chunk_seconds: float = CHUNK_SECONDS,
) -> FrameScores:
    """Frame probabilities of a file or mono waveform of any length.

    Args:
        pipeline: a frame-level pipeline (:func:`tympan.load`).
        audio: a file path (streamed) or a mono waveform.
        sample_rate: rate of an array input in Hz (default: the pipeline's).
        window: seconds per forward pass (default: the training clip length); a multiple of the frame hop.
        batch_size: windows per forward pass.
        chunk_seconds: length of the pieces a file is read in.

    Raises:
        ConfigError: a clip-level pipeline, or a window that is not a whole number of frames.
        AudioLoadError: the input cannot be decoded, is empty or has non-finite samples.
    """
    model, hop = frame_model(pipeline), frame_seconds(pipeline)
    window = window or pipeline.clip_seconds
    frames_per_window = round(window / hop)
    if frames_per_window < 1 or abs(frames_per_window * hop - window) > 1e-6:
        raise ConfigError(f"the window ({window} s) must be a whole number of {hop * 1000:g}-ms frames")
    rate = pipeline.sample_rate
    window_samples = round(window * rate)
    chunk = max(round(chunk_seconds * rate), window_samples)
    pieces: list[np.ndarray] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            with pipeline.autocast():
                mel = pipeline.frontend(torch.stack(pending).to(pipeline.device)).unsqueeze(1)
                logits = model.forward_frames(mel).float()
            probabilities = torch.sigmoid(logits).transpose(1, 2).cpu().numpy()  # [windows, frames, classes]
            pieces.extend(probabilities[:, :frames_per_window])
            pending.clear()

    counter = _Counter(_chunks(pipeline, audio, sample_rate, chunk), rate, None)
    for _, samples in _windows(counter, window_samples, window_samples, tail="pad"):
        pending.append(samples)
        if len(pending) == batch_size:
            flush()
    flush()
    duration = counter.samples / rate
    frames = max(1, int(np.ceil(duration / hop - 1e-9)))
    return FrameScores(pipeline.labels, hop, np.concatenate(pieces)[:frames], duration)


def detect_events(scores: FrameScores, config: PostProcessing = DEFAULT_POSTPROCESSING) -> list[Event]:
    """The events of one file's frame scores."""
    return decode_events(scores.scores, scores.labels, scores.starts, scores.ends, config)


def detect(
    pipeline: AudioPipeline,
    files: Iterable[str | Path],
    config: PostProcessing = DEFAULT_POSTPROCESSING,
    *,
    keep_scores: bool = False,
    **scoring: Any,
) -> Iterator[dict[str, Any]]:
    """One record per file: ``{"file", "duration", "events": [{label, onset, offset, score}]}``.

    A file that cannot be read gives ``{"file", "error"}`` and the others go on. With ``keep_scores`` the record
    also holds the :class:`FrameScores` under ``"frame_scores"`` (for plots and metrics).

    Args:
        pipeline: a frame-level pipeline.
        files: audio paths.
        config: post-processing.
        keep_scores: add the frame scores to each record.
        **scoring: arguments of :func:`frame_scores` (window, batch_size, chunk_seconds).
    """
    frame_model(pipeline)
    for file in files:
        try:
            scores = frame_scores(pipeline, file, **scoring)
        except TympanError as error:
            logger.warning("%s: %s", file, error)
            yield {"file": str(file), "error": str(error)}
            continue
        events = [
            {"label": e.label, "onset": e.onset, "offset": e.offset, "score": round(e.score, 4)}
            for e in detect_events(scores, config)
        ]
        record: dict[str, Any] = {"file": str(file), "duration": round(scores.duration, 3), "events": events}
        if keep_scores:
            record["frame_scores"] = scores
        yield record
