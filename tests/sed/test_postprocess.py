"""From frame scores to events: thresholds, hysteresis, median filter, merging, minimum duration."""

from __future__ import annotations

import numpy as np
import pytest

from tympan.errors import ConfigError
from tympan.sed import PostProcessing, decode_events, median_filter

HOP = 0.04


def _decode(column: list[float], **settings: float) -> list[tuple[float, float]]:
    scores = np.asarray(column, dtype=np.float64)[:, None]
    starts = np.arange(len(column)) * HOP
    events = decode_events(scores, ["x"], starts, starts + HOP, PostProcessing(**settings))
    return [(e.onset, e.offset) for e in events]


def test_single_threshold_gives_one_event_per_run() -> None:
    assert _decode([0, 0.9, 0.9, 0, 0, 0.7, 0]) == [(0.04, 0.12), (0.2, 0.24)]


def test_hysteresis_extends_events_while_above_the_low_threshold() -> None:
    column = [0, 0.4, 0.8, 0.4, 0.35, 0.1, 0.4, 0]
    assert _decode(column, threshold=0.7) == [(0.08, 0.12)]
    assert _decode(column, threshold=0.7, low_threshold=0.3) == [(0.04, 0.2)]  # the 2nd 0.4 run never reaches 0.7


def test_merge_gap_and_min_duration() -> None:
    column = [0.9, 0.9, 0, 0.9, 0, 0, 0, 0, 0.9]
    assert _decode(column, merge_gap=0.05) == [(0.0, 0.16), (0.32, 0.36)]
    assert _decode(column, min_duration=0.06) == [(0.0, 0.08)]


def test_median_filter_removes_one_frame_spikes_per_class_window() -> None:
    scores = np.zeros((9, 2))
    scores[4] = 1.0
    filtered = median_filter(scores, [3, 1])
    assert filtered[:, 0].max() == 0.0 and filtered[4, 1] == 1.0
    assert PostProcessing(median_seconds={"x": 0.2}).median_frames(["x", "y"], HOP) == [5, 1]


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        PostProcessing(threshold=0.5, low_threshold=0.7)
    with pytest.raises(ConfigError):
        PostProcessing(merge_gap=-1)
