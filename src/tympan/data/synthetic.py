"""A procedural acoustic-scene corpus that poses TAU22's device problem: the embedded data of the demo and the tests.

No public dataset can be downloaded everywhere, so tympan generates one. Each clip layers sound sources
(traffic rumble, passing vehicles, rain, bird chirps, babble, rail clatter, brakes, wind, mains hum, engines,
footsteps, announcement chimes) drawn with scene-dependent probabilities and levels. Most sources occur in several
scenes, and loudness is randomised per clip, so no single cue separates the classes.

The recording setup mirrors TAU Urban Acoustic Scenes 2022 Mobile, development set (fold 1):

* the training split's device mix: 102,150 of its 139,620 one-second clips (73.2 %) come from device ``a``,
  7,490 from ``b``, 7,480 from ``c`` and 7,500 from each of ``s1``-``s3`` (5.4 % each); every class gets that mix
  (:data:`TAU22_TRAIN_CLIPS`; the validation split too);
* devices ``s4``-``s6`` appear only in the test split, and the test split is balanced over the nine devices (TAU22:
  3,300 clips per device, 3,290 for ``b`` and ``c``): each test scene instance is recorded by every device, so
  per-device accuracies compare the same content;
* device responses differ as much as real microphones do: each device's magnitude response is a draw from
  :data:`tympan.data.devices.MICROPHONES`, the family measured on the 66 real MicIRP impulse responses of the DCASE23
  DIR set. Device ``a``, the high-quality reference recorder of TAU22, has the family's mean response. On top of it
  a device has a level, a mild non-linearity and a noise floor (not measurable from impulse responses, hence drawn
  from fixed ranges).

The class names are those of TAU22 so the demo tells the DCASE23 story with the real label set. The corpus is
written as WAV files plus ``meta.csv`` in the generic layout of :mod:`tympan.data` (columns ``file``, ``label``,
``device``, ``city``, ``split``, ``id``, ``caption``) and cached: the same configuration is generated once.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from tqdm import tqdm

from ..errors import ConfigError
from .devices import MICROPHONES, ResponseFamily, interpolate_bands, minimum_phase_fir

__all__ = [
    "CITIES",
    "DEVICES",
    "SCENES",
    "SEEN_DEVICES",
    "SOURCES",
    "TAU22_TRAIN_CLIPS",
    "UNSEEN_DEVICES",
    "Corpus",
    "CorpusConfig",
    "Device",
    "Recording",
    "SourceCorpusConfig",
    "default_cache_dir",
    "device_impulse_responses",
    "device_mix",
    "ensure_corpus",
    "ensure_source_corpus",
    "generate_recording",
    "record",
    "render_scenes",
    "render_source",
    "render_sources",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
META_FILE = "meta.csv"
META_COLUMNS = ("file", "label", "device", "city", "split", "id", "caption")

# Sound sources, and how a caption names each one (several phrasings so captions vary).
# fmt: off
SOURCES: tuple[str, ...] = (
    "rumble", "vehicle", "rain", "birds", "babble", "clatter", "brakes", "wind", "hum", "engine", "footsteps", "chime",
)
# fmt: on
_PHRASES: dict[str, tuple[str, ...]] = {
    "rumble": ("traffic rumbles in the distance", "a low rumble goes on", "distant traffic drones"),
    "vehicle": ("a car passes", "a vehicle drives by", "a car goes past"),
    "rain": ("rain falls", "it is raining", "raindrops patter"),
    "birds": ("birds chirp", "birds sing", "a bird tweets"),
    "babble": ("people talk", "a crowd murmurs", "people chatter"),
    "clatter": ("a train clatters over the rails", "wheels rattle on the tracks", "a train rumbles along"),
    "brakes": ("brakes squeal", "a train brakes with a screech", "brakes screech"),
    "wind": ("wind blows", "the wind gusts", "wind howls"),
    "hum": ("an electric hum buzzes", "the mains hum drones", "a ventilation system hums"),
    "engine": ("an engine idles", "a motor runs", "an engine drones"),
    "footsteps": ("footsteps walk past", "people walk by", "footsteps echo"),
    "chime": ("an announcement chime rings", "a chime sounds", "a signal chime plays"),
}

# Scene -> source -> (probability of presence, mean level in dB). Sources overlap between scenes on purpose.
# fmt: off
SCENES: dict[str, dict[str, tuple[float, float]]] = {
    "airport": {"babble": (0.9, -14), "footsteps": (0.6, -20), "chime": (0.5, -18), "hum": (0.6, -22),
                "rumble": (0.4, -18), "engine": (0.3, -24), "wind": (0.1, -26)},
    "bus": {"rumble": (0.9, -10), "engine": (0.8, -14), "babble": (0.5, -22), "brakes": (0.3, -22),
            "vehicle": (0.3, -20), "hum": (0.3, -24), "chime": (0.15, -22)},
    "metro": {"clatter": (0.9, -12), "rumble": (0.7, -14), "brakes": (0.4, -18), "babble": (0.4, -22),
              "hum": (0.4, -20), "chime": (0.2, -22), "engine": (0.2, -22)},
    "metro_station": {"clatter": (0.4, -18), "brakes": (0.5, -18), "babble": (0.7, -16), "footsteps": (0.6, -18),
                      "chime": (0.5, -18), "hum": (0.5, -22), "rumble": (0.3, -20)},
    "park": {"birds": (0.85, -16), "wind": (0.6, -18), "footsteps": (0.4, -22), "babble": (0.3, -24),
             "rumble": (0.3, -24), "rain": (0.2, -20), "vehicle": (0.1, -26)},
    "public_square": {"babble": (0.7, -16), "footsteps": (0.6, -18), "birds": (0.3, -22), "vehicle": (0.3, -20),
                      "rumble": (0.5, -20), "wind": (0.3, -22), "rain": (0.15, -20), "chime": (0.1, -24)},
    "shopping_mall": {"babble": (0.9, -12), "footsteps": (0.7, -18), "chime": (0.4, -20), "hum": (0.5, -22),
                      "engine": (0.2, -26)},
    "street_pedestrian": {"footsteps": (0.8, -14), "babble": (0.6, -18), "vehicle": (0.3, -20),
                          "rumble": (0.5, -20), "birds": (0.2, -24), "wind": (0.3, -22), "rain": (0.2, -20)},
    "street_traffic": {"rumble": (0.9, -12), "vehicle": (0.9, -12), "wind": (0.3, -20), "footsteps": (0.2, -24),
                       "brakes": (0.2, -22), "rain": (0.2, -20), "birds": (0.1, -26), "engine": (0.2, -20)},
    "tram": {"clatter": (0.7, -16), "rumble": (0.7, -14), "engine": (0.5, -18), "hum": (0.5, -20),
             "babble": (0.4, -22), "brakes": (0.4, -20), "chime": (0.2, -22)},
}
# fmt: on

# Simulated cities: mains frequency of the hum and a pitch offset of the voices in the babble.
# fmt: off
CITIES: dict[str, tuple[float, float]] = {
    "amberly": (50.0, 1.0), "brookhaven": (60.0, 0.92), "corwick": (50.0, 1.08),
    "dunmere": (60.0, 1.0), "elsworth": (50.0, 0.95), "farrow": (60.0, 1.05),
}
# fmt: on


@dataclass(frozen=True)
class Device:
    """A simulated recording device: a magnitude response in dB per band, level, non-linearity and noise floor."""

    name: str
    band_db: tuple[float, ...]
    gain_db: float
    drive: float
    noise_db: float

    def response(self, frequencies: np.ndarray) -> np.ndarray:
        """Linear magnitude response at ``frequencies`` (Hz)."""
        return interpolate_bands(self.band_db, frequencies)


def _make_device(name: str, seed: int, family: ResponseFamily = MICROPHONES) -> Device:
    """A device with a response and level drawn from ``family``; the rest from ranges that keep clips clean."""
    rng = np.random.default_rng(seed)
    band_db, level_db = family.draw(rng)
    return Device(
        name=name,
        band_db=tuple(float(v) for v in band_db),
        gain_db=level_db,
        drive=float(rng.uniform(1.0, 3.0)),
        noise_db=float(rng.uniform(-62.0, -46.0)),
    )


def _reference_device(name: str) -> Device:
    """TAU22's device ``a``: a high-quality recorder, here the family's mean response at its mean level."""
    return Device(name, MICROPHONES.mean_db, MICROPHONES.level_db, drive=1.0, noise_db=-66.0)


# Training clips per device of TAU22 Mobile development, fold 1 (``evaluation_setup/fold1_train.csv``).
TAU22_TRAIN_CLIPS: dict[str, int] = {"a": 102_150, "b": 7_490, "c": 7_480, "s1": 7_500, "s2": 7_500, "s3": 7_500}
SEEN_DEVICES: tuple[str, ...] = tuple(TAU22_TRAIN_CLIPS)
UNSEEN_DEVICES: tuple[str, ...] = ("s4", "s5", "s6")
DEVICES: dict[str, Device] = {
    "a": _reference_device("a"),
    **{name: _make_device(name, 1000 + index) for index, name in enumerate(SEEN_DEVICES[1:] + UNSEEN_DEVICES, 1)},
}


def device_mix(count: int) -> list[str]:
    """The devices of ``count`` training clips in TAU22's proportions (largest remainders, so the counts add up)."""
    total = sum(TAU22_TRAIN_CLIPS.values())
    exact = {device: count * clips / total for device, clips in TAU22_TRAIN_CLIPS.items()}
    counts = {device: int(share) for device, share in exact.items()}
    by_remainder = sorted(exact, key=lambda d: exact[d] - counts[d], reverse=True)
    for device in by_remainder[: count - sum(counts.values())]:
        counts[device] += 1
    return [device for device, n in counts.items() for _ in range(n)]


@dataclass(frozen=True)
class CorpusConfig:
    """Size and seed of a generated corpus; every field enters the cache key.

    Train and validation instances are each recorded by one seen device, in TAU22's training mix; test instances
    by every device.
    """

    train_per_class: int = 240
    val_per_class: int = 30
    test_per_class: int = 20
    seed: int = 0
    sample_rate: int = 32000
    clip_seconds: float = 1.0

    @classmethod
    def quick(cls, seed: int = 0) -> CorpusConfig:
        """A small corpus for tests and ``tympan demo --quick``."""
        return cls(train_per_class=24, val_per_class=6, test_per_class=2, seed=seed)

    @property
    def key(self) -> str:
        """Short hash naming the cache folder of this configuration."""
        return _key(self)


def _key(config: CorpusConfig | SourceCorpusConfig) -> str:
    text = json.dumps(
        {"version": FORMAT_VERSION, "kind": type(config).__name__, **dataclasses.asdict(config)}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SourceCorpusConfig:
    """Size and seed of a source-tagging corpus (:func:`ensure_source_corpus`); every field enters the cache key."""

    train_clips: int = 2000
    val_clips: int = 200
    seed: int = 0
    sample_rate: int = 32000
    clip_seconds: float = 1.0

    @property
    def key(self) -> str:
        return _key(self)


@dataclass(frozen=True)
class Corpus:
    """A generated corpus on disk: ``root/meta.csv`` and the WAV files it names."""

    root: Path
    config: CorpusConfig

    @property
    def metadata(self) -> Path:
        return self.root / META_FILE

    @property
    def labels(self) -> list[str]:
        return sorted(SCENES)

    def rows(self, split: str | None = None) -> list[dict[str, str]]:
        """Metadata rows, optionally of one split (``train``, ``val`` or ``test``)."""
        with open(self.metadata, newline="") as handle:
            return [row for row in csv.DictReader(handle) if split is None or row["split"] == split]


@dataclass(frozen=True)
class Recording:
    """A long multi-scene recording and the ground-truth segments ``(start_s, end_s, scene)``."""

    waveform: np.ndarray
    sample_rate: int
    segments: list[tuple[float, float, str]]


# --- signal helpers: every function works on a batch [B, T] at once ---------------------------------------------


def _spectral_filter(x: np.ndarray, sample_rate: int, gain: np.ndarray) -> np.ndarray:
    """Multiply the spectrum of each row by ``gain`` ([B, F] or [F]); zero-phase filtering by FFT."""
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * gain, n=x.shape[-1], axis=-1).astype(np.float32)


def _band(frequencies: np.ndarray, low: np.ndarray, high: np.ndarray, order: int = 2) -> np.ndarray:
    """Butterworth-like band-pass magnitudes [B, F] for per-row cut-offs ``low``/``high`` [B]."""
    f = np.maximum(frequencies, 1e-3)[None]
    return 1.0 / np.sqrt((1.0 + (low[:, None] / f) ** (2 * order)) * (1.0 + (f / high[:, None]) ** (2 * order)))


def _normalise(x: np.ndarray) -> np.ndarray:
    """Unit RMS, except that impulsive rows are scaled down until their peak is at most 8 (crest factor 18 dB)."""
    scale = np.maximum(np.sqrt((x**2).mean(-1, keepdims=True)), np.abs(x).max(-1, keepdims=True) / 8.0)
    return (x / (scale + 1e-8)).astype(np.float32)


def _smooth_envelope(rng: np.random.Generator, rows: int, samples: int, points_per_s: float, sample_rate: int):
    """Random positive envelopes varying at about ``points_per_s``: linear interpolation of random knots."""
    knots = max(2, int(samples / sample_rate * points_per_s) + 2)
    values = rng.uniform(0.2, 1.0, size=(rows, knots))
    grid = np.linspace(0, knots - 1, samples)
    left = np.floor(grid).astype(int).clip(0, knots - 2)
    frac = grid - left
    return (values[:, left] * (1 - frac) + values[:, left + 1] * frac).astype(np.float32)


def _event_times(rng: np.random.Generator, rows: int, seconds: float, rate: tuple[float, float], cap: int):
    """Onset times [B, K] (s) of Poisson events and a mask [B, K] of which exist; at least one per row."""
    counts = np.clip(rng.poisson(rng.uniform(*rate, size=rows) * seconds), 1, cap)
    onsets = rng.uniform(-0.1, seconds, size=(rows, cap))
    return onsets, np.arange(cap)[None] < counts[:, None]


def _impulse_bursts(rng, onsets, mask, samples, sample_rate, decay_s, band, frequencies):
    """Decaying noise bursts at ``onsets``: an impulse train convolved with an exponential noise kernel."""
    rows = onsets.shape[0]
    train = np.zeros((rows, samples), np.float32)
    positions = np.clip((onsets * sample_rate).astype(int), 0, samples - 1)
    amplitudes = rng.uniform(0.4, 1.0, size=onsets.shape) * mask
    np.add.at(train, (np.repeat(np.arange(rows), onsets.shape[1]), positions.ravel()), amplitudes.ravel())
    t = np.arange(samples) / sample_rate
    kernel = rng.standard_normal((rows, samples)).astype(np.float32) * np.exp(-t / decay_s[:, None])
    spectrum = np.fft.rfft(train, axis=-1) * np.fft.rfft(kernel, axis=-1) * _band(frequencies, *band)
    return np.fft.irfft(spectrum, n=samples, axis=-1).astype(np.float32)


def _sweep_tones(frequency: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sine of a time-varying instantaneous frequency [B, T] (Hz)."""
    return np.sin(2 * np.pi * np.cumsum(frequency, axis=-1) / sample_rate).astype(np.float32)


# --- sound sources: (rng, rows, samples, sample_rate, mains_hz [B], pitch [B]) -> [B, T] -------------------------


def _rumble(rng, rows, samples, sr, mains, pitch):
    f = np.fft.rfftfreq(samples, 1 / sr)
    brown = np.fft.rfft(rng.standard_normal((rows, samples)), axis=-1) / np.maximum(f, 20.0)
    band = _band(f, rng.uniform(20, 50, rows), rng.uniform(150, 600, rows))
    x = np.fft.irfft(brown * band, n=samples, axis=-1).astype(np.float32)
    return _normalise(x) * _smooth_envelope(rng, rows, samples, 0.7, sr)


def _vehicle(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    seconds = samples / sr
    onsets, mask = _event_times(rng, rows, seconds, (0.4, 1.2), max(1, int(2 * seconds) + 1))
    width = rng.uniform(0.12, 0.4, size=onsets.shape)
    bumps = (np.exp(-0.5 * ((t[None, None] - onsets[..., None]) / width[..., None]) ** 2) * mask[..., None]).sum(1)
    f = np.fft.rfftfreq(samples, 1 / sr)
    tyres = _spectral_filter(
        rng.standard_normal((rows, samples)), sr, _band(f, rng.uniform(200, 500, rows), rng.uniform(1500, 4000, rows))
    )
    centre = onsets[:, :1]
    f0 = rng.uniform(35, 90, size=(rows, 1)) * (1 - 0.06 * np.tanh((t[None] - centre) / 0.1))
    engine = np.sign(_sweep_tones(f0, sr)) * 0.3 + _sweep_tones(2 * f0, sr)
    return _normalise((_normalise(tyres) + 0.6 * engine) * bumps)


def _rain(rng, rows, samples, sr, mains, pitch):
    f = np.fft.rfftfreq(samples, 1 / sr)
    hiss = _spectral_filter(
        rng.standard_normal((rows, samples)), sr, _band(f, rng.uniform(800, 3000, rows), np.full(rows, 14000.0))
    )
    onsets, mask = _event_times(rng, rows, samples / sr, (60, 200), int(200 * samples / sr) + 1)
    drops = _impulse_bursts(
        rng,
        onsets,
        mask,
        samples,
        sr,
        rng.uniform(0.002, 0.006, rows),
        (rng.uniform(1500, 3000, rows), np.full(rows, 12000.0)),
        f,
    )
    return _normalise(_normalise(hiss) + 0.7 * _normalise(drops))


def _birds(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    onsets, mask = _event_times(rng, rows, samples / sr, (2, 6), int(6 * samples / sr) + 1)
    out = np.zeros((rows, samples), np.float32)
    for k in range(onsets.shape[1]):
        duration = rng.uniform(0.04, 0.15, rows)[:, None]
        local = (t[None] - onsets[:, k : k + 1]) / duration
        window = np.where((local >= 0) & (local <= 1), np.sin(np.pi * np.clip(local, 0, 1)) ** 2, 0.0)
        start = rng.uniform(2500, 5500, rows)[:, None]
        sweep = rng.uniform(-2000, 2000, rows)[:, None]
        vibrato = 150 * np.sin(2 * np.pi * rng.uniform(20, 60, rows)[:, None] * t[None])
        out += _sweep_tones(start + sweep * np.clip(local, 0, 1) + vibrato, sr) * window * mask[:, k : k + 1]
    return _normalise(out)


def _babble(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    f = np.fft.rfftfreq(samples, 1 / sr)
    out = np.zeros((rows, samples), np.float32)
    for _ in range(4):
        f0 = rng.uniform(95, 240, rows)[:, None] * pitch[:, None] * (1 + 0.08 * np.sin(2 * np.pi * 3 * t[None]))
        phase = np.cumsum(f0, axis=-1) / sr
        voice = 2 * (phase % 1.0) - 1  # a sawtooth: a harmonic-rich glottal source
        formant1 = _band(f, rng.uniform(300, 700, rows), rng.uniform(900, 1300, rows), order=1)
        formant2 = 0.5 * _band(f, rng.uniform(1500, 2200, rows), rng.uniform(2600, 3400, rows), order=1)
        syllables = np.clip(
            np.sin(2 * np.pi * rng.uniform(3, 6, rows)[:, None] * t[None] + rng.uniform(0, 6.3, (rows, 1))), 0, 1
        )
        out += _normalise(_spectral_filter(voice, sr, formant1 + formant2)) * syllables * rng.uniform(0.3, 1, (rows, 1))
    return _normalise(out)


def _clatter(rng, rows, samples, sr, mains, pitch):
    f = np.fft.rfftfreq(samples, 1 / sr)
    period = rng.uniform(0.12, 0.4, rows)[:, None]
    pairs = int(samples / sr / 0.12) + 2
    first = rng.uniform(0, 0.4, rows)[:, None] + np.arange(pairs)[None] * period
    onsets = np.concatenate([first, first + 0.05], axis=1) - 0.2
    mask = onsets < samples / sr
    knocks = _impulse_bursts(
        rng,
        onsets,
        mask,
        samples,
        sr,
        rng.uniform(0.01, 0.03, rows),
        (rng.uniform(150, 400, rows), rng.uniform(2000, 5000, rows)),
        f,
    )
    roll = _spectral_filter(
        rng.standard_normal((rows, samples)), sr, _band(f, np.full(rows, 80.0), rng.uniform(500, 1200, rows))
    )
    return _normalise(_normalise(knocks) + 0.8 * _normalise(roll))


def _brakes(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    centre = rng.uniform(2000, 5000, rows)[:, None]
    tone = _sweep_tones(centre * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 9, rows)[:, None] * t[None])), sr)
    start = rng.uniform(-0.3, samples / sr * 0.7, rows)[:, None]
    length = rng.uniform(0.3, 1.0, rows)[:, None]
    local = np.clip((t[None] - start) / length, 0, 1)
    return _normalise((tone + 0.3 * _sweep_tones(2 * centre + 0 * t[None], sr)) * np.sin(np.pi * local) ** 0.5)


def _wind(rng, rows, samples, sr, mains, pitch):
    f = np.fft.rfftfreq(samples, 1 / sr)
    x = _spectral_filter(
        rng.standard_normal((rows, samples)), sr, _band(f, np.full(rows, 20.0), rng.uniform(150, 900, rows), order=1)
    )
    return _normalise(_normalise(x) * _smooth_envelope(rng, rows, samples, 4.0, sr) ** 2)


def _hum(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    out = np.zeros((rows, samples), np.float32)
    for harmonic in range(1, 9):
        weight = rng.uniform(0, 1, rows)[:, None] / harmonic**0.5
        out += weight * np.sin(2 * np.pi * harmonic * mains[:, None] * t[None] + rng.uniform(0, 6.3, (rows, 1)))
    f = np.fft.rfftfreq(samples, 1 / sr)
    hiss = _spectral_filter(
        rng.standard_normal((rows, samples)), sr, _band(f, np.full(rows, 200.0), np.full(rows, 3000.0), order=1)
    )
    return _normalise(_normalise(out) + rng.uniform(0.1, 0.6, (rows, 1)) * _normalise(hiss))


def _engine(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    f0 = rng.uniform(25, 140, rows)[:, None] * (1 + 0.02 * np.sin(2 * np.pi * 0.5 * t[None]))
    firing = np.sin(2 * np.pi * np.cumsum(f0, axis=-1) / sr)
    pulses = np.maximum(firing, 0) ** rng.uniform(2, 8, rows)[:, None]
    f = np.fft.rfftfreq(samples, 1 / sr)
    return _normalise(_spectral_filter(pulses, sr, _band(f, np.full(rows, 20.0), rng.uniform(600, 2500, rows))))


def _footsteps(rng, rows, samples, sr, mains, pitch):
    f = np.fft.rfftfreq(samples, 1 / sr)
    period = rng.uniform(0.35, 0.65, rows)[:, None]
    steps = int(samples / sr / 0.35) + 2
    onsets = rng.uniform(-0.3, 0.3, rows)[:, None] + np.arange(steps)[None] * period
    onsets = onsets + rng.normal(0, 0.02, onsets.shape)
    mask = (onsets < samples / sr) & (onsets > -0.05)
    return _normalise(
        _impulse_bursts(
            rng,
            onsets,
            mask,
            samples,
            sr,
            rng.uniform(0.015, 0.04, rows),
            (rng.uniform(80, 200, rows), rng.uniform(1500, 4000, rows)),
            f,
        )
    )


def _chime(rng, rows, samples, sr, mains, pitch):
    t = np.arange(samples) / sr
    base = rng.uniform(400, 900, rows)[:, None]
    start = rng.uniform(-0.2, samples / sr * 0.6, rows)[:, None]
    out = np.zeros((rows, samples), np.float32)
    for note, ratio in enumerate((1.0, 1.26, 1.5)):
        onset = start + 0.25 * note
        local = t[None] - onset
        envelope = np.where(local >= 0, np.exp(-np.maximum(local, 0) / 0.35), 0.0)
        frequency = base * ratio
        out += envelope * (np.sin(2 * np.pi * frequency * t[None]) + 0.3 * np.sin(4 * np.pi * frequency * t[None]))
    return _normalise(out)


# fmt: off
_RENDER = {
    "rumble": _rumble, "vehicle": _vehicle, "rain": _rain, "birds": _birds, "babble": _babble, "clatter": _clatter,
    "brakes": _brakes, "wind": _wind, "hum": _hum, "engine": _engine, "footsteps": _footsteps, "chime": _chime,
}
# fmt: on


def render_source(name: str, rng: np.random.Generator, rows: int, samples: int, sample_rate: int) -> np.ndarray:
    """``rows`` dry renderings ``[rows, samples]`` (unit RMS) of one of :data:`SOURCES` (50-Hz mains, neutral pitch).

    Raises:
        ConfigError: an unknown source.
    """
    if name not in _RENDER:
        raise ConfigError(f"unknown source {name!r}; choose from {', '.join(SOURCES)}")
    return _RENDER[name](rng, rows, samples, sample_rate, np.full(rows, 50.0), np.ones(rows))


def _caption(rng: np.random.Generator, present: list[tuple[float, str]]) -> str:
    """Describe the (up to three) loudest sources: "rain falls while a car passes and birds chirp"."""
    phrases = [str(rng.choice(_PHRASES[name])) for _, name in sorted(present, reverse=True)[:3]]
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return f"{phrases[0]} and {phrases[1]}"
    return f"{phrases[0]} while {phrases[1]} and {phrases[2]}"


def _mix_sources(
    probability: np.ndarray, level_db: np.ndarray, cities: Sequence[str], samples: int, sample_rate: int, rng
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dry mixtures [B, samples] of sources present with ``probability`` [B, S] (at least one per row) at
    ``level_db`` ± 4 dB, then at a random overall level (-16 ± 8 dB) so that loudness identifies nothing.

    Returns the mixtures, which sources are present [B, S] and their linear levels [B, S].
    """
    rows = len(probability)
    present = rng.uniform(size=probability.shape) < probability
    strongest = np.argmax(probability * rng.uniform(0.5, 1.0, probability.shape), axis=1)
    present[np.arange(rows), strongest] = True
    levels = 10.0 ** ((level_db + rng.normal(0.0, 4.0, level_db.shape)) / 20.0)
    mains = np.array([CITIES[c][0] for c in cities])
    pitch = np.array([CITIES[c][1] for c in cities])
    mix = np.zeros((rows, samples), np.float32)
    for index, source in enumerate(SOURCES):
        chosen = np.flatnonzero(present[:, index])
        if chosen.size:
            audio = _RENDER[source](rng, chosen.size, samples, sample_rate, mains[chosen], pitch[chosen])
            mix[chosen] += audio * levels[chosen, index, None].astype(np.float32)
    mix *= (10.0 ** (rng.uniform(-24.0, -8.0, rows) / 20.0)).astype(np.float32)[:, None]
    return mix, present, levels


def render_scenes(
    scenes: Sequence[str], cities: Sequence[str], samples: int, sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Render dry (device-free) scene audio [B, samples] and one caption per row.

    Sources are drawn per row with the scene's probabilities and mixed at random levels (:func:`_mix_sources`).
    """
    unknown = sorted(set(scenes) - set(SCENES)) + sorted(set(cities) - set(CITIES))
    if unknown:
        raise ConfigError(f"unknown scene or city {unknown}; choose from {sorted(SCENES)} and {sorted(CITIES)}")
    probability = np.array([[SCENES[s].get(src, (0.0, 0.0))[0] for src in SOURCES] for s in scenes])
    level_db = np.array([[SCENES[s].get(src, (0.0, -30.0))[1] for src in SOURCES] for s in scenes])
    mix, present, levels = _mix_sources(probability, level_db, cities, samples, sample_rate, rng)
    captions = [
        _caption(rng, [(levels[r, i], s) for i, s in enumerate(SOURCES) if present[r, i]]) for r in range(len(mix))
    ]
    return mix, captions


def render_sources(
    clips: int, samples: int, sample_rate: int, rng: np.random.Generator, probability: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Dry clips [B, samples] of sources that occur independently of any scene (each with ``probability``, at
    -18 dB), and which sources each holds [B, S]: multi-label source tagging data, as AudioSet is for real audio."""
    shape = (clips, len(SOURCES))
    cities = [str(c) for c in rng.choice(sorted(CITIES), clips)]
    mix, present, _ = _mix_sources(
        np.full(shape, probability), np.full(shape, -18.0), cities, samples, sample_rate, rng
    )
    return mix, present


def record(audio: np.ndarray, device: Device, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pass dry audio [B, T] through ``device``: response, gain, soft saturation, noise floor; clipped to ±1."""
    frequencies = np.fft.rfftfreq(audio.shape[-1], 1 / sample_rate)
    filtered = _spectral_filter(audio, sample_rate, device.response(frequencies)) * 10.0 ** (device.gain_db / 20)
    saturated = np.tanh(device.drive * filtered) / device.drive
    noise = rng.standard_normal(audio.shape).astype(np.float32) * 10.0 ** (device.noise_db / 20)
    return np.clip(saturated + noise, -1.0, 1.0).astype(np.float32)


def device_impulse_responses(count: int, sample_rate: int = 32000, length: int = 4096, seed: int = 12345):
    """Impulse responses of ``count`` new devices of the same family as :data:`DEVICES`, for DIR augmentation of
    device ``a``'s clips when no real ones are given.

    Each response takes a recording of ``a`` to a new device: the new device's response (and level) divided by
    ``a``'s. In TAU22 device A is a near-flat reference, so the real MicIRP responses, applied to its clips, give
    other devices; here ``a`` has the family's mean response, and an absolute response would colour its clips twice
    (its mean shape added once more: clips no device of the family records). The draws use seeds disjoint from
    those of :data:`DEVICES`, so they never reproduce a test device. Each response is causal and minimum-phase, not
    normalised.
    """
    frequencies = np.fft.rfftfreq(2 * length, 1 / sample_rate)
    reference = DEVICES["a"]
    reference_magnitude = reference.response(frequencies) * 10.0 ** (reference.gain_db / 20)
    responses = []
    for index in range(count):
        device = _make_device(f"dir{index}", seed + 100_003 * (index + 1))
        magnitude = device.response(frequencies) * 10.0 ** (device.gain_db / 20)
        responses.append(minimum_phase_fir(magnitude / reference_magnitude, length))
    return responses


def _split_plan(config: CorpusConfig, rng: np.random.Generator) -> list[tuple[str, str, str, list[str]]]:
    """(split, scene, city, devices) for every scene instance: train and validation instances are each recorded by
    one seen device in TAU22's training mix (:func:`device_mix`), test instances by every device."""
    plan = []
    for scene in sorted(SCENES):
        for split, count in (
            ("train", config.train_per_class),
            ("val", config.val_per_class),
            ("test", config.test_per_class),
        ):
            mix = [list(DEVICES)] * count if split == "test" else [[str(d)] for d in rng.permutation(device_mix(count))]
            plan += [(split, scene, str(rng.choice(sorted(CITIES))), devices) for devices in mix]
    return plan


def _write_metadata(root: Path, rows: list[dict[str, str]], columns: Sequence[str], config: Any) -> None:
    with open(root / META_FILE, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (root / "config.json").write_text(json.dumps({"version": FORMAT_VERSION, **dataclasses.asdict(config)}))


def _generate(root: Path, config: CorpusConfig, chunk: int = 128) -> None:
    rng = np.random.default_rng(config.seed)
    plan = _split_plan(config, rng)
    samples = round(config.sample_rate * config.clip_seconds)
    rows = []
    (root / "audio").mkdir(parents=True)
    progress = tqdm(total=len(plan), desc="generate the scene corpus", unit="instance")
    for begin in range(0, len(plan), chunk):
        part = plan[begin : begin + chunk]
        dry, captions = render_scenes([p[1] for p in part], [p[2] for p in part], samples, config.sample_rate, rng)
        for offset, ((split, scene, city, devices), caption) in enumerate(zip(part, captions, strict=True)):
            instance = f"{scene}-{city}-{begin + offset:05d}"
            for device in devices:
                wet = record(dry[offset : offset + 1], DEVICES[device], config.sample_rate, rng)[0]
                relative = f"audio/{instance}-{device}.wav"
                soundfile.write(root / relative, wet, config.sample_rate, subtype="PCM_16")
                rows.append(
                    {
                        "file": relative,
                        "label": scene,
                        "device": device,
                        "city": city,
                        "split": split,
                        "id": f"{instance}-{device}",
                        "caption": caption,
                    }
                )
        progress.update(len(part))
    progress.close()
    _write_metadata(root, rows, META_COLUMNS, config)


def _generate_sources(root: Path, config: SourceCorpusConfig, chunk: int = 128) -> None:
    """Every clip through a device of its own, drawn from the microphone family (never one of :data:`DEVICES`)."""
    rng = np.random.default_rng(config.seed)
    samples = round(config.sample_rate * config.clip_seconds)
    splits = ["train"] * config.train_clips + ["val"] * config.val_clips
    rows = []
    (root / "audio").mkdir(parents=True)
    progress = tqdm(total=len(splits), desc="generate the source-tagging corpus", unit="clip")
    for begin in range(0, len(splits), chunk):
        dry, present = render_sources(min(chunk, len(splits) - begin), samples, config.sample_rate, rng)
        for offset, (clip, tags) in enumerate(zip(dry, present, strict=True)):
            number = begin + offset
            device = _make_device(f"p{number}", 7_000_000 + 100_000 * config.seed + number)
            relative = f"audio/sources-{number:05d}.wav"
            soundfile.write(root / relative, record(clip[None], device, config.sample_rate, rng)[0], config.sample_rate)
            names = [source for source, on in zip(SOURCES, tags, strict=True) if on]
            rows.append(
                {"file": relative, "labels": ";".join(names), "split": splits[number], "id": f"sources-{number:05d}"}
            )
        progress.update(len(dry))
    progress.close()
    _write_metadata(root, rows, ("file", "labels", "split", "id"), config)


def default_cache_dir() -> Path:
    """Where generated corpora live: ``$TYMPAN_CACHE/data`` or ``~/.cache/tympan/data``."""
    base = os.environ.get("TYMPAN_CACHE") or Path.home() / ".cache" / "tympan"
    return Path(base) / "data"


def _cached(root: Path, generate: Callable[[Path], None]) -> Path:
    """``root``, generated by ``generate(folder)`` on first use (atomically, so parallel callers are safe)."""
    if (root / META_FILE).exists():
        logger.info("reusing the generated corpus in %s", root)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    try:
        logger.info("generating a corpus in %s", root)
        generate(staging / "corpus")
        try:
            (staging / "corpus").rename(root)
        except OSError:
            if not (root / META_FILE).exists():  # not a concurrent writer that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def ensure_corpus(config: CorpusConfig | None = None, cache_dir: str | Path | None = None) -> Corpus:
    """Return the scene corpus of ``config``, generating it on first use."""
    config = config or CorpusConfig()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return Corpus(_cached(cache / f"synthetic-scenes-{config.key}", lambda root: _generate(root, config)), config)


def ensure_source_corpus(config: SourceCorpusConfig | None = None, cache_dir: str | Path | None = None) -> Path:
    """The ``meta.csv`` of a source-tagging corpus (multi-label ``labels`` column: the sources each clip holds),
    generated on first use; for pre-training, as AudioSet is used for the real teachers."""
    config = config or SourceCorpusConfig()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _cached(cache / f"synthetic-sources-{config.key}", lambda root: _generate_sources(root, config)) / META_FILE


def generate_recording(
    scenes: Sequence[str],
    segment_seconds: float = 6.0,
    device: str = "a",
    city: str = "amberly",
    sample_rate: int = 32000,
    seed: int = 0,
    crossfade_seconds: float = 0.5,
) -> Recording:
    """A long recording that walks through ``scenes`` (``segment_seconds`` each, cross-faded), for tagging demos.

    Segment boundaries in :attr:`Recording.segments` are the cross-fade midpoints.
    """
    if not scenes:
        raise ConfigError("generate_recording needs at least one scene name")
    rng = np.random.default_rng(seed)
    segment = round(segment_seconds * sample_rate)
    fade = min(round(crossfade_seconds * sample_rate), segment // 2)
    dry, _ = render_scenes(list(scenes), [city] * len(scenes), segment + fade, sample_rate, rng)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    total = segment * len(scenes) + fade
    mix = np.zeros(total, np.float32)
    for index in range(len(scenes)):
        piece = dry[index].copy()
        if index > 0:
            piece[:fade] *= ramp
        if index < len(scenes) - 1:
            piece[-fade:] *= ramp[::-1]
        mix[index * segment : index * segment + segment + fade] += piece
    wet = record(mix[None], DEVICES[device], sample_rate, rng)[0]
    half = fade / 2 / sample_rate
    segments = [
        (max(0.0, i * segment_seconds + (half if i else 0.0)), (i + 1) * segment_seconds + half, scene)
        for i, scene in enumerate(scenes)
    ]
    segments[-1] = (segments[-1][0], total / sample_rate, scenes[-1])
    return Recording(wet, sample_rate, segments)
