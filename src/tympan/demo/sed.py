"""The sound-event-detection section of the demo: frame-level students with and without KD from a frame-level
teacher, against the clip-window timeline, on PSDS1 and onset error.

Everything runs on the generated strong-labelled set of :mod:`tympan.sed.corpus` (onsets known to the sample):
a frame MN teacher (width 0.2, 141 k parameters) and two students (width 0.1, 44 k parameters) trained from scratch with
:func:`tympan.train.finetune` (``task="sed"``), one of them distilled from the teacher's stored frame logits; the
baseline is the teacher's clip head run over 1-s windows every 0.25 s (:func:`tympan.tagging.timeline`), the
resolution of a clip tagger, put on the same 40-ms grid. Metrics come from :mod:`tympan.sed.metrics`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..files import write_atomically

__all__ = ["SedDemoConfig", "run_sed_demo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SedDemoConfig:
    """Sizes of the SED demo (``quick``: a smaller set and shorter runs)."""

    output: Path = Path("demo_output") / "sed"
    quick: bool = False
    seed: int = 0
    teacher_width: float = 0.2
    student_width: float = 0.1
    kd_lambda: float = 0.5

    @property
    def train_files(self) -> int:
        return 32 if self.quick else 64

    @property
    def test_files(self) -> int:
        return 12 if self.quick else 24

    @property
    def steps(self) -> int:
        return 60 if self.quick else 160


def _train(table: Path, output: Path, width: float, steps: int, seed: int, **system_kwargs: Any) -> Path:
    from ..train import finetune

    result = finetune(
        table, "frame_mn", task="sed", steps=steps, output=output, batch_size=8, lr=2e-3, mixup_alpha=0.0,
        val_fraction=0.0, seed=seed, progress=False, system_kwargs={"model_kwargs": {"width_mult": width},
                                                                    **system_kwargs},
    )  # fmt: skip
    return result.checkpoint


def _scores_metrics(scores: dict[str, Any], table: Any) -> dict[str, Any]:
    from ..sed.detect import detect_events
    from ..sed.metrics import onset_errors, sed_metrics
    from ..sed.postprocess import PostProcessing

    result = sed_metrics(scores, table.events)
    config = PostProcessing(0.5, median_seconds=0.2)
    detected = {f: [(e.onset, e.offset, e.label) for e in detect_events(s, config)] for f, s in scores.items()}
    errors = onset_errors(detected, table.events)
    found = errors[np.isfinite(errors)]
    return {
        "psds1": result["psds1"],
        "psds2": result["psds2"],
        "event_f1": result["event_f1"],
        "segment_f1": result["segment_f1"],
        "onset_error_median_s": float(np.median(found)) if found.size else None,
        "onsets_within_0.2s": float(np.mean(errors <= 0.2)),
    }


def run_sed_demo(config: SedDemoConfig = SedDemoConfig()) -> dict[str, Any]:
    """Train teacher and students, evaluate them and the clip-window timeline; writes ``sed_metrics.json``."""
    from .. import load
    from ..sed.corpus import generate_event_set
    from ..sed.detect import FrameScores, frame_scores
    from ..sed.events import read_events
    from ..sed.teacher import compute_frame_teacher_logits
    from ..tagging import timeline

    start = time.perf_counter()
    out = Path(config.output)
    train = generate_event_set(out / "data" / "train", files=config.train_files, seed=config.seed)
    test = generate_event_set(out / "data" / "test", files=config.test_files, seed=config.seed + 1)
    logger.info("SED demo: teacher (frame MN width %g, %d steps)", config.teacher_width, config.steps)
    teacher_ckpt = _train(train, out / "teacher", config.teacher_width, config.steps, config.seed)
    teacher = load(checkpoint=teacher_ckpt, device="cpu")
    store = compute_frame_teacher_logits([teacher], train, out / "teacher_logits", clip_seconds=teacher.clip_seconds)
    logger.info("SED demo: students (width %g) without and with KD", config.student_width)
    students = {
        "student": _train(train, out / "student", config.student_width, config.steps, config.seed),
        "student_kd": _train(train, out / "student_kd", config.student_width, config.steps, config.seed,
                             teacher_logits=str(store), kd_lambda=config.kd_lambda),
    }  # fmt: skip
    table = read_events(test, teacher.labels)
    models: dict[str, Any] = {}
    for name, checkpoint in {"teacher": teacher_ckpt, **students}.items():
        pipeline = load(checkpoint=checkpoint, device="cpu")
        scores = {f: frame_scores(pipeline, table.path(f)) for f in table.files}
        models[name] = _scores_metrics(scores, table)
        models[name]["params"] = sum(p.numel() for p in pipeline.model.parameters())
    windows = {
        f: FrameScores.from_timeline(timeline(teacher, table.path(f), window=1.0, hop=0.25), 0.04) for f in table.files
    }
    models["teacher_clip_window_timeline"] = _scores_metrics(windows, table)
    metrics = {
        "config": {"train_files": config.train_files, "test_files": config.test_files, "steps": config.steps,
                   "teacher_width": config.teacher_width, "student_width": config.student_width,
                   "kd_lambda": config.kd_lambda, "seed": config.seed},
        "models": models,
        "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    write_atomically(out / "sed_metrics.json", json.dumps(metrics, indent=1))
    return metrics
