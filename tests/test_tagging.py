"""Timeline over long audio (streamed windows), event table, timeline plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import tympan
from tympan.engine import jobs
from tympan.engine.pieces import window_starts
from tympan.errors import AudioLoadError
from tympan.pipeline import AudioPipeline
from tympan.tagging import Timeline, clip_scores, detect_events, plot_timeline, timeline

from ._models import small_mn_state

RATE = 32000


@pytest.fixture(scope="module")
def pipeline() -> AudioPipeline:
    return tympan.load("mn", small_mn_state(), width_mult=0.4, device="cpu")


def _spans(total: int, window: int, hop: int, tail: str = "end") -> list[tuple[int, int]]:
    return [(start, min(window, total)) for start in window_starts(total, window, hop, tail)]


def test_window_starts_follow_the_grid_and_end_at_the_end() -> None:
    assert _spans(25, 10, 5) == [(0, 10), (5, 10), (10, 10), (15, 10)]
    assert _spans(27, 10, 5) == [(0, 10), (5, 10), (10, 10), (15, 10), (17, 10)]
    assert _spans(7, 10, 5) == [(0, 7)]
    assert _spans(10, 10, 10) == [(0, 10)]


def _reference_starts(total: int, window: int, hop: int) -> list[int]:
    """EfficientAT windowed_inference.py: ceil((N - window) / hop) + 1 windows at i * hop, the audio zero-padded."""
    return [i * hop for i in range(max(int(np.ceil((total - window) / hop)) + 1, 1))]


@pytest.mark.parametrize(("total", "window", "hop"), [(27, 10, 5), (25, 10, 5), (7, 10, 5), (26, 10, 4), (30, 3, 7)])
def test_pad_tail_is_the_efficientat_rule(total: int, window: int, hop: int) -> None:
    assert window_starts(total, window, hop, tail="pad") == _reference_starts(total, window, hop)


def test_timeline_tail_rules_on_a_length_off_the_hop_grid(pipeline: AudioPipeline) -> None:
    """5.3 s in 2 s windows every 1 s: (N - window) = 3.3 s is not a multiple of the hop."""
    waveform = 0.1 * torch.randn(int(5.3 * RATE), generator=torch.Generator().manual_seed(2))
    ours = timeline(pipeline, waveform, window=2.0, hop=1.0)
    np.testing.assert_allclose(ours.starts, [0, 1, 2, 3, 3.3])
    reference = timeline(pipeline, waveform, window=2.0, hop=1.0, tail="pad")
    np.testing.assert_allclose(reference.starts, [0, 1, 2, 3, 4])
    padded = torch.nn.functional.pad(waveform[4 * RATE :], (0, int(0.7 * RATE)))
    np.testing.assert_allclose(reference.scores[-1], pipeline.scores(padded), atol=1e-5)
    np.testing.assert_allclose(reference.scores[:4], ours.scores[:4], atol=1e-6)
    assert "zero-padded by 0.700 s" in reference.notes[0] and reference.window == 2.0
    with pytest.raises(tympan.errors.ConfigError, match="tail"):
        timeline(pipeline, waveform, window=2.0, tail="wrap")


def test_empty_audio_is_an_error(pipeline: AudioPipeline, tmp_path: Path) -> None:
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), RATE)
    with pytest.raises(AudioLoadError, match="empty"):
        timeline(pipeline, tmp_path / "empty.wav", window=1.0)


def test_timeline_of_a_file_matches_windows_tagged_one_by_one(pipeline: AudioPipeline, tmp_path: Path) -> None:
    waveform = 0.1 * torch.randn(int(5.5 * RATE), generator=torch.Generator().manual_seed(0))
    soundfile.write(tmp_path / "long.wav", waveform.numpy(), RATE, subtype="FLOAT")
    line = timeline(pipeline, tmp_path / "long.wav", window=2.0, hop=1.0, batch_size=3, chunk_seconds=1.3)
    np.testing.assert_allclose(line.starts, [0, 1, 2, 3, 3.5])
    assert line.duration == pytest.approx(5.5) and line.scores.shape == (5, 527)
    expected = pipeline.scores(torch.stack([waveform[int(s * RATE) : int(s * RATE) + 2 * RATE] for s in line.starts]))
    np.testing.assert_allclose(line.scores, expected, atol=1e-5)
    # An array gives the same timeline as the file.
    np.testing.assert_allclose(timeline(pipeline, waveform, window=2.0, hop=1.0).scores, line.scores, atol=1e-5)


def test_audio_shorter_than_a_window_is_one_padded_window(pipeline: AudioPipeline) -> None:
    line = timeline(pipeline, np.full(10, 0.1, dtype=np.float32), window=1.0)
    assert line.scores.shape == (1, 527) and "zero-padded" in line.notes[0]


def _line(scores: list[list[float]]) -> Timeline:
    values = np.asarray(scores, dtype=np.float64).T
    return Timeline(["a", "b"], np.arange(len(values), dtype=float), 1.0, 1.0, values, float(len(values)))


def test_events_from_median_filtered_thresholded_scores() -> None:
    line = _line([[0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.8]])
    events = detect_events(line, threshold=0.5, median_windows=3)
    # "b" spikes for one window only: the median filter removes them.
    assert [(e.label, e.onset, e.offset) for e in events] == [("a", 1.0, 4.0)]
    assert events[0].score == pytest.approx(0.9)
    unfiltered = detect_events(line, threshold=0.5, median_windows=1)
    assert [(e.label, e.onset, e.offset) for e in unfiltered] == [("a", 1.0, 4.0), ("b", 3.0, 4.0), ("b", 6.0, 7.0)]


def test_plot_is_a_png(tmp_path: Path) -> None:
    line = _line([[0.1, 0.9, 0.9], [0.2, 0.3, 0.4]])
    path = plot_timeline(line, tmp_path / "plots" / "line.png", events=detect_events(line))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]


def test_pooled_timeline_is_close_to_the_windowed_one(pipeline: AudioPipeline) -> None:
    waveform = 0.1 * torch.randn(int(12.5 * RATE), generator=torch.Generator().manual_seed(3))
    waveform *= torch.repeat_interleave(torch.rand(13, generator=torch.Generator().manual_seed(4)), RATE)[
        : len(waveform)
    ]
    windowed = timeline(pipeline, waveform, window=4.0, hop=1.0)
    pooled = timeline(pipeline, waveform, window=4.0, hop=1.0, method="pooled", chunk_seconds=5.0)
    np.testing.assert_allclose(pooled.starts, windowed.starts)
    # Squeeze-excitation sees the chunk instead of the window: close, not equal.
    np.testing.assert_allclose(pooled.scores, windowed.scores, atol=0.01)
    assert np.mean(pooled.scores.argmax(1) == windowed.scores.argmax(1)) >= 0.9


def test_long_files_are_scored_window_by_window(
    pipeline: AudioPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waveform = 0.1 * torch.randn(3 * RATE, generator=torch.Generator().manual_seed(5))
    soundfile.write(tmp_path / "a.wav", waveform.numpy(), RATE, subtype="FLOAT")
    short_scores, short_notes = clip_scores(pipeline, tmp_path / "a.wav")
    assert short_notes == []
    monkeypatch.setattr(jobs, "LONG_FILE_SECONDS", 1.0)
    pipeline.clip_seconds = 1.0
    try:
        long_scores, long_notes = clip_scores(pipeline, tmp_path / "a.wav")
        expected = pipeline.scores(waveform.reshape(3, RATE)).max(axis=0)
    finally:
        pipeline.clip_seconds = 10.0
    np.testing.assert_allclose(long_scores, expected, atol=1e-5)
    assert "maximum of the scores of 3 windows" in long_notes[-1]
    assert not np.allclose(long_scores, short_scores, atol=1e-3)
