"""The streaming tagger against the offline timeline, hysteresis events, latency, and every kind of zoo model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import tympan
from tympan.errors import ConfigError
from tympan.live import StreamingTagger
from tympan.pipeline import AudioPipeline
from tympan.tagging import EventTracker, detect_events, timeline

from .._models import small_mn_state, stress_

RATE = 32000


@pytest.fixture(scope="module")
def pipeline() -> AudioPipeline:
    return tympan.load("mn", small_mn_state(), width_mult=0.4, device="cpu")


def _feed_in_random_pieces(tagger: StreamingTagger, audio: np.ndarray, seed: int = 0) -> list:
    generator = np.random.default_rng(seed)
    updates, offset = [], 0
    while offset < len(audio):
        size = int(generator.integers(1, 9000))
        updates += tagger.feed(audio[offset : offset + size])
        offset += size
    tail, ended = tagger.finish()
    return updates + tail, ended


def test_full_windows_get_the_offline_timeline_scores(pipeline: AudioPipeline) -> None:
    audio = (0.1 * np.random.default_rng(1).standard_normal(int(2.3 * RATE))).astype(np.float32)
    tagger = StreamingTagger(pipeline, window=1.0, hop=0.5)
    updates, _ = _feed_in_random_pieces(tagger, audio)
    line = timeline(pipeline, audio, window=1.0, hop=0.5)
    full = [u for u in updates if u.end - u.start == pytest.approx(1.0)]
    np.testing.assert_allclose([u.start for u in full], line.starts)  # the tail window (1.3 s) included
    np.testing.assert_allclose(np.stack([u.scores for u in full]), line.scores, atol=1e-5)
    assert updates[0].start == 0 and updates[0].end == 0.5  # the first scores come after one hop
    np.testing.assert_allclose(updates[0].scores, pipeline.scores(audio[: RATE // 2]), atol=1e-5)


def test_a_44k_stereo_int16_stream_matches_the_timeline_of_its_file(pipeline: AudioPipeline, tmp_path: Path) -> None:
    stereo = (3000 * np.random.default_rng(2).standard_normal((3 * 44100, 2))).astype(np.int16)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 44100, subtype="PCM_16")
    tagger = StreamingTagger(pipeline, sample_rate=44100, channels=2, window=1.0, hop=1.0)
    updates, _ = _feed_in_random_pieces(tagger, stereo, seed=3)
    line = timeline(pipeline, path, window=1.0, hop=1.0)
    np.testing.assert_allclose(np.stack([u.scores for u in updates]), line.scores, atol=1e-4)


def test_live_events_are_the_offline_events_with_the_same_hysteresis(pipeline: AudioPipeline) -> None:
    audio = (0.1 * np.random.default_rng(4).standard_normal(3 * RATE)).astype(np.float32)
    tagger = StreamingTagger(pipeline, window=0.5, hop=0.5, threshold=0.59, off_threshold=0.58)
    updates, still_on = _feed_in_random_pieces(tagger, audio)
    live = sorted([e for u in updates for e in u.ended] + still_on, key=lambda e: (e.onset, e.label))
    line = timeline(pipeline, audio, window=0.5, hop=0.5)
    offline = detect_events(line, threshold=0.59, off_threshold=0.58, median_windows=1)
    assert live == offline and live
    began = [e.label for u in updates for e in u.began]
    assert sorted(began) == sorted(e.label for e in live)  # each event begins once


def test_hysteresis_reports_a_wavering_sound_once() -> None:
    scores = np.array([[0.2], [0.55], [0.45], [0.6], [0.48], [0.3], [0.7]])
    runs = []
    for off in (0.4, 0.5):
        tracker = EventTracker(["dog"], threshold=0.5, off_threshold=off)
        events = []
        for row, score in enumerate(scores):
            events += tracker.step(row, row + 1, score)[1]
        runs.append([(e.onset, e.offset, e.score) for e in events + tracker.close()])
    assert runs[0] == [(1, 5, 0.6), (6, 7, 0.7)]  # 0.45 and 0.48 stay above the off threshold
    assert runs[1] == [(1, 2, 0.55), (3, 4, 0.6), (6, 7, 0.7)]  # no hysteresis: one event per crossing
    with pytest.raises(ConfigError):
        EventTracker(["dog"], threshold=0.5, off_threshold=0.6)


def test_latency_runs_from_the_arrival_of_the_newest_sample_to_the_scores(pipeline: AudioPipeline) -> None:
    now = [10.0]

    def score(clips: list) -> np.ndarray:
        now[0] += 0.25  # the model takes 250 ms
        return np.zeros((len(clips), len(pipeline.labels)), np.float32)

    tagger = StreamingTagger(pipeline, window=1.0, hop=0.5, score=score, clock=lambda: now[0])
    assert tagger.feed(np.zeros(RATE // 4, np.float32), arrival=9.9) == []
    (update,) = tagger.feed(np.zeros(RATE // 4, np.float32), arrival=9.95)
    assert update.latency == pytest.approx(0.30) and update.level_db == pytest.approx(-120.0)
    assert tagger.latency.summary()["p50_ms"] == pytest.approx(300.0)


@pytest.mark.parametrize("name", ["cp_mobile_dcase23", "dymn04_as"])
def test_other_zoo_models_stream_with_windows_shorter_than_their_clip(name: str) -> None:
    pipeline = tympan.load(name, pretrained=False, device="cpu")
    stress_(pipeline.model, torch.Generator().manual_seed(0))
    audio = (0.1 * np.random.default_rng(5).standard_normal(int(1.5 * RATE))).astype(np.float32)
    tagger = StreamingTagger(pipeline, window=0.5 * pipeline.clip_seconds if name.startswith("cp") else 1.0, hop=0.5)
    updates, _ = _feed_in_random_pieces(tagger, audio)
    assert updates and all(u.scores.shape == (len(pipeline.labels),) for u in updates)
    line = timeline(pipeline, audio, window=tagger.window, hop=0.5)
    full = [u.scores for u in updates if u.end - u.start == pytest.approx(tagger.window)]
    np.testing.assert_allclose(np.stack(full), line.scores, atol=1e-4)


def test_keep_up_scores_only_the_newest_of_a_backlog(pipeline: AudioPipeline) -> None:
    audio = (0.1 * np.random.default_rng(6).standard_normal(2 * RATE)).astype(np.float32)
    tagger = StreamingTagger(pipeline, window=1.0, hop=0.5, keep_up=True)
    (update,) = tagger.feed(audio)  # four windows complete at once
    assert (update.start, update.end, tagger.skipped) == (1.0, 2.0, 3)
    np.testing.assert_allclose(update.scores, pipeline.scores(audio[RATE:]), atol=1e-5)
