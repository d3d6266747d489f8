"""The generated corpus: deterministic, TAU22-like structure, overlapping classes, cached."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tympan.data import devices, synthetic
from tympan.data.metadata import read_csv
from tympan.errors import ConfigError

REAL_DIRS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dirs"

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
    per_class = Counter(r["label"] for r in corpus.rows("train"))
    assert set(per_class.values()) == {TINY.train_per_class}
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
        assert all(o.sum() >= 1 for o in overlapping), name  # every class's middle half overlaps another's


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


def test_training_device_mix_follows_tau22():
    mix = Counter(synthetic.device_mix(150))
    assert sum(mix.values()) == 150 and set(mix) == set(synthetic.SEEN_DEVICES)
    assert mix["a"] == 110  # 73.2 % of TAU22's training clips
    assert all(7 <= mix[d] <= 9 for d in synthetic.SEEN_DEVICES[1:])  # 5.4 % each
    assert Counter(synthetic.device_mix(24))["a"] >= 17


def test_devices_differ_as_much_as_real_microphones():
    """The simulated devices' deviations from device a have the per-band spread of the measured family."""
    band_db = np.array([d.band_db for d in synthetic.DEVICES.values()])
    assert np.allclose(synthetic.DEVICES["a"].band_db, devices.MICROPHONES.mean_db)
    deviation = band_db[1:] - band_db[0]
    spread = np.sqrt((deviation**2).mean(0))
    assert spread.mean() == pytest.approx(devices.MICROPHONES.band_std_db.mean(), rel=0.5)
    unseen = [list(synthetic.DEVICES).index(d) - 1 for d in synthetic.UNSEEN_DEVICES]
    assert np.sqrt((deviation[unseen] ** 2).mean(1)).min() > 2.0  # the test-only devices are far from a


def test_generated_impulse_responses_take_device_a_to_new_causal_devices_of_the_family():
    responses = synthetic.device_impulse_responses(8, length=2048)
    assert len(responses) == 8 and all(r.shape == (2048,) for r in responses)
    assert all(np.argmax(np.abs(r)) < 64 for r in responses)  # peak near the start, as measured responses
    # a clip of device a convolved with a response: a's bands plus the response's
    measured = np.array([devices.band_levels_db(r, 32000) for r in responses])
    through_a = measured + np.array(synthetic.DEVICES["a"].band_db)
    for device in synthetic.DEVICES.values():
        difference = through_a - np.array(device.band_db)
        assert (np.abs(difference - difference.mean(1, keepdims=True)).max(1) > 1.5).all(), device.name
    shapes = through_a - through_a.mean(1, keepdims=True)
    assert np.abs(shapes.mean(0) - devices.MICROPHONES.mean_db)[2:15].max() < 6.0  # inner bands: FIR resolves them


@pytest.mark.skipif(not REAL_DIRS.is_dir(), reason="../shared/data/dirs (the 66 real impulse responses) is absent")
def test_microphone_family_constants_are_the_measured_figures():
    assert devices.measure_family(REAL_DIRS) == devices.MICROPHONES


def test_source_corpus_is_multi_label_tagging_data(tmp_path):
    metadata = synthetic.ensure_source_corpus(synthetic.SourceCorpusConfig(train_clips=6, val_clips=3), tmp_path)
    table = read_csv(metadata, labels=synthetic.SOURCES)
    assert [r.split for r in table.records] == ["train"] * 6 + ["val"] * 3
    assert all(len(r.targets) >= 1 for r in table.records)
    assert len({r.targets for r in table.records}) > 1  # different sources in different clips
    audio, rate = soundfile.read(table.records[0].source)
    assert rate == 32000 and audio.shape == (32000,) and np.abs(audio).max() > 1e-4
