"""SED metrics through ``sed_scores_eval`` (Ebbers et al., ICASSP 2022), the DCASE Task 4 evaluation: PSDS1 and
PSDS2 (threshold-independent, from the frame scores), event-based F1 (200-ms collars) and segment-based F1
(1-s segments) at a threshold. Nothing is computed by hand here; this module only converts our frame scores and
event tables to the library's inputs.

PSDS settings are DCASE's: PSDS1 ``dtc = gtc = 0.7, alpha_ct = 0, alpha_st = 1``; PSDS2
``dtc = gtc = 0.1, cttc = 0.3, alpha_ct = 0.5, alpha_st = 1``; both up to an eFPR of 100 per hour.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from .detect import FrameScores
from .events import GroundTruth

__all__ = ["PSDS1", "PSDS2", "evaluate_detection", "onset_errors", "sed_metrics"]

PSDS1: dict[str, float] = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "alpha_ct": 0.0, "alpha_st": 1.0}
PSDS2: dict[str, float] = {
    "dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5, "alpha_st": 1.0,
}  # fmt: skip


def _library() -> Any:
    try:
        with warnings.catch_warnings():  # dcase_util (under sed_eval) imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import sed_scores_eval
    except ImportError as error:
        raise ConfigError(
            f"SED metrics need sed_scores_eval ({error}); install it with `pip install 'tympan[sed]'`"
        ) from error
    return sed_scores_eval


def _score_frames(scores: Mapping[str, FrameScores]) -> dict[str, Any]:
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    frames = {}
    for key, item in scores.items():
        timestamps = np.append(item.starts, item.ends[-1])
        frames[key] = create_score_dataframe(np.asarray(item.scores, np.float64), timestamps, list(item.labels))
    return frames


def sed_metrics(
    scores: Mapping[str, FrameScores],
    ground_truth: GroundTruth,
    *,
    threshold: float = 0.5,
    collar: float = 0.2,
    segment_seconds: float = 1.0,
) -> dict[str, Any]:
    """PSDS1, PSDS2, event-based and segment-based F1 (macro averages) of frame scores against reference events.

    Args:
        scores: frame scores per file key.
        ground_truth: reference events per file key (files without events: an empty list).
        threshold: decision threshold of the F1 scores.
        collar: onset (and offset) collar of the event-based F1 in seconds (offset: also 20 % of the length).
        segment_seconds: segment length of the segment-based F1.

    Raises:
        ConfigError: ``sed_scores_eval`` is missing, or the keys of scores and reference differ.
    """
    library = _library()
    if set(scores) != set(ground_truth):
        raise ConfigError(f"scores for {len(scores)} files, reference events for {len(ground_truth)}; keys differ")
    frames = _score_frames(scores)
    truth = {key: list(events) for key, events in ground_truth.items()}
    durations = {key: float(item.duration) for key, item in scores.items()}
    psds1 = library.intersection_based.psds(frames, truth, durations, **PSDS1)[0]
    psds2 = library.intersection_based.psds(frames, truth, durations, **PSDS2)[0]
    event_f1 = library.collar_based.fscore(
        frames, truth, threshold=threshold, onset_collar=collar, offset_collar=collar, offset_collar_rate=0.2
    )[0]
    segment_f1 = library.segment_based.fscore(
        frames, truth, durations, threshold=threshold, segment_length=segment_seconds
    )[0]
    return {
        "files": len(frames),
        "psds1": float(psds1),
        "psds2": float(psds2),
        "event_f1": float(event_f1["macro_average"]),
        "segment_f1": float(segment_f1["macro_average"]),
        "event_f1_per_class": {k: float(v) for k, v in event_f1.items() if not k.endswith("_average")},
    }


def onset_errors(detected: Mapping[str, list[tuple[float, float, str]]], ground_truth: GroundTruth) -> np.ndarray:
    """For every reference event, the distance in seconds to the nearest detected onset of its label in its file
    (``inf`` when its label was not detected there): how well a detector places onsets, threshold given."""
    errors = []
    for key, events in ground_truth.items():
        for onset, _, label in events:
            candidates = [abs(o - onset) for o, _, l in detected.get(key, []) if l == label]
            errors.append(min(candidates, default=np.inf))
    return np.asarray(errors, dtype=np.float64)


def evaluate_detection(
    pipeline: Any, table: str | Any, *, threshold: float = 0.5, postprocessing: Any = None, **scoring: Any
) -> dict[str, Any]:
    """Metrics of a frame-level pipeline on the files of an event table (see :func:`sed_metrics`), plus the
    median onset error and the share of reference onsets found within 0.2 s at ``threshold``.

    Args:
        pipeline: a frame-level pipeline (:func:`tympan.load`).
        table: an event table path or :class:`~tympan.sed.events.EventTable`.
        threshold: decision threshold of the F1 scores and of the onsets.
        postprocessing: :class:`~tympan.sed.postprocess.PostProcessing` of the onsets (default: ``threshold``,
            a 0.2-s median).
        **scoring: arguments of :func:`~tympan.sed.detect.frame_scores`.
    """
    from .detect import detect_events, frame_scores
    from .events import read_events
    from .postprocess import PostProcessing

    table = read_events(table, pipeline.labels) if not hasattr(table, "events") else table
    config = postprocessing or PostProcessing(threshold, median_seconds=0.2)
    scores = {file: frame_scores(pipeline, table.path(file), **scoring) for file in table.files}
    result = sed_metrics(scores, table.events, threshold=threshold)
    detected = {f: [(e.onset, e.offset, e.label) for e in detect_events(s, config)] for f, s in scores.items()}
    errors = onset_errors(detected, table.events)
    found = errors[np.isfinite(errors)]
    result["onset_error_median"] = float(np.median(found)) if found.size else None
    result["onsets_within_0.2s"] = float(np.mean(errors <= 0.2)) if errors.size else None
    return result
