"""Frame-level teacher logits for knowledge distillation: computed once per clip, stored with a time axis.

The clips are those the student trains on (each file of the event table, and of a weak label table beside it, cut
or padded to ``clip_seconds``); the
logits of several teachers are averaged (an ensemble, as PretrainedSED's 447 × 250 logits per AudioSet clip) and
written to a :class:`~tympan.distill.TeacherLogitStore` ``[clips, classes, frames]`` keyed by file name, which
:class:`~tympan.train.sed.SedSystem` reads with ``teacher_logits=PATH``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.io import load_audio
from ..data.decode import fit_length
from ..distill import write_store
from ..errors import ConfigError
from ..pipeline import AudioPipeline
from .detect import frame_model
from .events import read_events, read_weak_labels

__all__ = ["compute_frame_teacher_logits"]


@torch.inference_mode()
def compute_frame_teacher_logits(
    teachers: Sequence[AudioPipeline],
    table: str | Path,
    output: str | Path,
    *,
    clip_seconds: float,
    weak_table: str | Path | None = None,
) -> Path:
    """Average frame logits of ``teachers`` on every file of ``table`` (and of ``weak_table``, a weak label table,
    so that its weak-only items are distilled too); returns the store's ``.npy`` path.

    Raises:
        ConfigError: no teacher, or teachers whose labels differ from each other.
    """
    if not teachers:
        raise ConfigError("need at least one frame-level teacher")
    labels = teachers[0].labels
    if any(t.labels != labels for t in teachers):
        raise ConfigError("the teachers of an ensemble must predict the same labels in the same order")
    sources = [read_events(table, labels)] + ([read_weak_labels(weak_table, labels)] if weak_table else [])
    files = [(file, source.path(file)) for source in sources for file in source.files]
    rows = []
    for _, path in files:
        ensemble = None
        for teacher in teachers:
            rate = teacher.sample_rate
            audio = fit_length(load_audio(path, sample_rate=rate), round(clip_seconds * rate))
            mel = teacher.frontend(torch.from_numpy(audio)[None].to(teacher.device)).unsqueeze(1)
            logits = frame_model(teacher).forward_frames(mel).float().cpu()
            if ensemble is not None and logits.shape[-1] != ensemble.shape[-1]:
                logits = F.interpolate(logits, size=ensemble.shape[-1], mode="linear")
            ensemble = logits if ensemble is None else ensemble + logits
        rows.append((ensemble / len(teachers))[0].numpy())
    provenance = {
        "teachers": [t.name or type(t.model).__name__ for t in teachers],
        "data": [str(table), *([str(weak_table)] if weak_table else [])],
        "clip_seconds": clip_seconds,
        "labels": list(labels),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return write_store(output, [file for file, _ in files], np.stack(rows), provenance)
