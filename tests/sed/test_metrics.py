"""PSDS and F1 through sed_scores_eval: perfect frame scores score high, misplaced ones low."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sed_scores_eval", reason="SED metrics need the 'sed' extra (sed_scores_eval)")

from tympan.sed.detect import FrameScores
from tympan.sed.metrics import onset_errors, sed_metrics

TRUTH = {"a": [(1.0, 2.0, "x"), (3.0, 4.0, "y")], "b": []}


def _scores(shift: float) -> dict[str, FrameScores]:
    out = {}
    for key, events in TRUTH.items():
        scores = np.full((125, 2), 0.05)
        for onset, offset, label in events:
            first, last = round((onset + shift) / 0.04), round((offset + shift) / 0.04)
            scores[first:last, ["x", "y"].index(label)] = 0.9
        out[key] = FrameScores(["x", "y"], 0.04, scores, 5.0)
    return out


def test_exact_scores_beat_misplaced_ones() -> None:
    exact, late = sed_metrics(_scores(0.0), TRUTH), sed_metrics(_scores(0.6), TRUTH)
    assert exact["psds1"] > 0.9 and exact["event_f1"] == 1.0 and exact["segment_f1"] == 1.0
    assert late["psds1"] < 0.1 and late["event_f1"] == 0.0
    assert exact["psds2"] >= late["psds2"]


def test_onset_errors_match_each_reference_event_to_the_nearest_detection() -> None:
    errors = onset_errors({"a": [(1.1, 2.0, "x"), (2.9, 4.0, "x")]}, TRUTH)
    assert errors[0] == pytest.approx(0.1) and np.isinf(errors[1])
