"""The generated corpus: deterministic, TAU22-like structure, overlapping classes, cached."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile

from tympan.data import synthetic
from tympan.errors import ConfigError

TINY = synthetic.CorpusConfig(train_per_class=2, val_per_class=1, test_per_class=1, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> synthetic.Corpus:
    return synthetic.ensure_corpus(TINY, tmp_path_factory.mktemp("cache"))


def test_generation_is_deterministic_by_seed(corpus, tmp_path):
    again = synthetic.ensure_corpus(TINY, tmp_path)
    assert again.metadata.read_text() == corpus.metadata.read_text()
    first = corpus.rows()[5]["file"]
    np.testing.assert_array_equal(soundfile.read(corpus.root / first)[0], soundfile.read(again.root / first)[0])
    other = synthetic.ensure_corpus(synthetic.CorpusConfig(2, 1, 1, seed=4), tmp_path)
    assert other.root != again.root and other.metadata.read_text() != again.metadata.read_text()


def test_classes_devices_and_splits_follow_tau22(corpus):
    rows = corpus.rows()
    assert list(rows[0]) == list(synthetic.META_COLUMNS)
    assert len(corpus.labels) >= 10 and {r["label"] for r in rows} == set(corpus.labels)
    assert len(synthetic.DEVICES) >= 6
    for split in ("train", "val"):
        assert {r["device"] for r in corpus.rows(split)} <= set(synthetic.SEEN_DEVICES)
    test = corpus.rows("test")
    assert {r["device"] for r in test} == set(synthetic.DEVICES)  # unseen devices only here
    per_instance: dict[str, set[str]] = {}
    for row in test:
        per_instance.setdefault(row["id"].rsplit("-", 1)[0], set()).add(row["device"])
    assert len(per_instance) == 10 * TINY.test_per_class
    assert all(devices == set(synthetic.DEVICES) for devices in per_instance.values())
    assert len(corpus.rows("train")) == 10 * TINY.train_per_class
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["city"] for r in rows} <= set(synthetic.CITIES)
    audio, rate = soundfile.read(corpus.root / rows[0]["file"])
    assert rate == 32000 and audio.shape == (32000,) and 1e-4 < np.abs(audio).max() <= 1.0
    assert all(len(r["caption"].split()) >= 2 for r in rows)


def test_simple_statistics_overlap_between_classes():
    """No single cue separates the scenes: per-class loudness and band-energy ranges overlap heavily."""
    rng = np.random.default_rng(0)
    labels = sorted(synthetic.SCENES)
    scenes = [label for label in labels for _ in range(24)]
    dry, _ = synthetic.render_scenes(scenes, ["amberly"] * len(scenes), 32000, 32000, rng)
    wet = np.concatenate(
        [synthetic.record(dry[i::6], synthetic.DEVICES[d], 32000, rng) for i, d in enumerate(synthetic.SEEN_DEVICES)]
    )
    y = np.concatenate([np.repeat(np.arange(10), 24)[i::6] for i in range(6)])
    power = np.abs(np.fft.rfft(wet, axis=1)) ** 2
    freqs = np.fft.rfftfreq(32000, 1 / 32000)
    stats = {"loudness": np.log(power.sum(1))}
    for low, high in ((0, 250), (250, 1000), (1000, 4000), (4000, 16000)):
        stats[f"{low}-{high} Hz"] = np.log(power[:, (freqs >= low) & (freqs < high)].sum(1) + 1e-12)
    for name, value in stats.items():
        quartiles = np.array([np.percentile(value[y == c], [25, 75]) for c in range(10)])
        # Classify by the nearest class median of this one statistic: far from separating ten classes.
        medians = np.array([np.median(value[y == c]) for c in range(10)])
        accuracy = (np.abs(value[:, None] - medians[None]).argmin(1) == y).mean()
        assert accuracy < 0.45, (name, accuracy)
        overlapping = [
            (quartiles[c, 0] < np.delete(quartiles[:, 1], c)) & (quartiles[c, 1] > np.delete(quartiles[:, 0], c))
            for c in range(10)
        ]
        assert all(o.sum() >= 2 for o in overlapping), name


def test_corpus_is_cached_after_first_generation(corpus, monkeypatch):
    monkeypatch.setattr(synthetic, "_generate", lambda *a, **k: pytest.fail("regenerated a cached corpus"))
    assert synthetic.ensure_corpus(TINY, corpus.root.parent).root == corpus.root
    with open(corpus.metadata, newline="") as handle:
        assert all((corpus.root / row["file"]).exists() for row in csv.DictReader(handle))


def test_recording_walks_through_scenes():
    recording = synthetic.generate_recording(["park", "tram", "airport"], segment_seconds=2.0, seed=1)
    assert recording.sample_rate == 32000
    assert recording.waveform.shape == (round(6.5 * 32000),)
    assert [s[2] for s in recording.segments] == ["park", "tram", "airport"]
    assert recording.segments[0][0] == 0.0 and recording.segments[-1][1] == pytest.approx(6.5)
    assert all(a[1] == b[0] for a, b in zip(recording.segments, recording.segments[1:], strict=False))
    with pytest.raises(ConfigError, match="choose from"):
        synthetic.generate_recording(["moon_base"])


def test_generated_impulse_responses_differ_from_every_device():
    responses = synthetic.device_impulse_responses(4, length=1024)
    assert len(responses) == 4 and all(r.shape == (1024,) and np.abs(r).max() == 1.0 for r in responses)
    freqs = np.fft.rfftfreq(1024, 1 / 32000)
    for impulse in responses:
        magnitude = np.abs(np.fft.rfft(impulse))
        for device in synthetic.DEVICES.values():
            target = device.response(freqs)
            band = (freqs > 100) & (freqs < 8000)
            difference_db = 20 * np.log10(magnitude[band] / target[band])
            assert np.abs(difference_db - difference_db.mean()).mean() > 1.0  # mean deviation of the dB curves
