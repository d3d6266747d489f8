"""A family of microphone magnitude responses measured from real impulse responses, for simulated devices.

The generated corpus (:mod:`tympan.data.synthetic`) records every scene through simulated devices, and DIR
augmentation convolves with generated device responses. For the device shift to be as large as real microphones
make it, both draw from one :class:`ResponseFamily`: a Gaussian over the response in dB on log-spaced bands, with the
mean and the principal axes of spread of real microphones.

:data:`MICROPHONES` holds the figures :func:`measure_family` returns on the 66 MicIRP impulse responses that the
DCASE23 system uses for DIR (``../shared/data/dirs``, resampled to 32 kHz): per-band spread 1.9-9.3 dB (largest in
the low-frequency roll-off, 2-4 dB from 300 Hz to 8 kHz), overall level 0.7 ± 3.9 dB, the first four principal axes
94 % of the variance. They are stored as constants so that nothing reads ``../shared`` at run time; a test recomputes
them when the folder is present.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import load_audio
from ..errors import ConfigError

__all__ = [
    "BAND_EDGES_HZ",
    "MICROPHONES",
    "ResponseFamily",
    "band_levels_db",
    "interpolate_bands",
    "measure_family",
    "minimum_phase_fir",
]

# 16 bands, about 0.5 octave each, from 50 Hz to 15 kHz (below the 16 kHz Nyquist frequency of 32 kHz audio).
BAND_EDGES_HZ: tuple[float, ...] = tuple(float(f) for f in np.geomspace(50.0, 15000.0, 17))
_FFT_SIZE = 16384  # longer than every MicIRP response at 32 kHz (at most 0.5 s)


@dataclass(frozen=True)
class ResponseFamily:
    """Responses ``mean_db + Σ_k z_k · axes_db[k]`` per band with ``z_k ~ N(0, 1)``, and a level ``N(level_db,
    level_std_db)``.

    Attributes:
        mean_db: mean response shape per band of :data:`BAND_EDGES_HZ` (dB, each response's mean level removed).
        axes_db: principal axes of the spread around the mean, each scaled by its standard deviation (dB).
        level_db, level_std_db: mean and standard deviation of a response's level (its mean over bands, dB).
    """

    mean_db: tuple[float, ...]
    axes_db: tuple[tuple[float, ...], ...]
    level_db: float
    level_std_db: float

    @property
    def band_std_db(self) -> np.ndarray:
        """Standard deviation of the response per band (dB) that the family draws with."""
        return np.sqrt((np.asarray(self.axes_db) ** 2).sum(0))

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A random response shape per band (dB) and a level (dB)."""
        axes = np.asarray(self.axes_db)
        shape = np.asarray(self.mean_db) + rng.standard_normal(len(axes)) @ axes
        return shape, float(rng.normal(self.level_db, self.level_std_db))


def band_levels_db(impulse_response: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean power of the impulse response's spectrum in each band of :data:`BAND_EDGES_HZ`, in dB."""
    if len(impulse_response) > _FFT_SIZE:
        raise ConfigError(f"impulse responses longer than {_FFT_SIZE} samples are not supported")
    power = np.abs(np.fft.rfft(impulse_response, _FFT_SIZE)) ** 2
    frequencies = np.fft.rfftfreq(_FFT_SIZE, 1 / sample_rate)
    bands = itertools.pairwise(BAND_EDGES_HZ)
    return np.array([10 * np.log10(power[(frequencies >= lo) & (frequencies < hi)].mean() + 1e-20) for lo, hi in bands])


def measure_family(folder: str | Path, sample_rate: int = 32000, axes: int = 4) -> ResponseFamily:
    """Fit a :class:`ResponseFamily` to every ``*.wav`` impulse response under ``folder`` (how :data:`MICROPHONES`
    was measured: ``measure_family("../shared/data/dirs")``).

    Each response's band levels are split into its level (mean over bands) and shape; the shapes' mean and their
    first ``axes`` principal components (scaled to standard deviations) define the family.
    """
    paths = sorted(Path(folder).expanduser().rglob("*.wav"))
    if len(paths) <= axes:
        raise ConfigError(f"need more than {axes} impulse responses under {folder} to measure a family")
    levels = np.stack([band_levels_db(load_audio(path, sample_rate), sample_rate) for path in paths])
    overall = levels.mean(1)
    shapes = levels - overall[:, None]
    deviations = shapes - shapes.mean(0)
    _, singular, directions = np.linalg.svd(deviations, full_matrices=False)
    scaled = directions[:axes] * (singular[:axes] / np.sqrt(len(paths) - 1))[:, None]
    # a fixed sign per axis, so that re-measuring compares: its largest band positive (a sum over bands is near 0
    # for some axes, and rounding differences between machines flipped it)
    largest = np.abs(scaled).argmax(1)
    scaled *= np.sign(scaled[np.arange(axes), largest])[:, None]
    return ResponseFamily(
        tuple(shapes.mean(0).round(1)),
        tuple(tuple(row) for row in scaled.round(1)),
        round(float(overall.mean()), 2),
        round(float(overall.std(ddof=1)), 2),
    )


# measure_family("../shared/data/dirs") on the 66 MicIRP responses of the DCASE23 DIR set.
# fmt: off
MICROPHONES = ResponseFamily(
    mean_db=(-6.7, -4.0, -1.6, -1.0, 0.5, 0.9, 1.5, 0.7, 4.7, 4.2, 4.6, 7.5, 7.6, 5.3, -2.9, -21.2),
    axes_db=(
        (8.7, 7.6, 5.0, 2.5, 0.8, -1.1, -2.1, -1.8, -2.1, -2.1, -2.2, -2.7, -2.6, -2.7, -2.8, -2.2),
        (0.8, 0.8, -0.0, -1.1, -1.4, -1.4, -1.3, -1.4, -1.6, -1.5, -1.3, -1.0, 0.5, 2.5, 3.9, 3.6),
        (3.0, -0.2, -2.2, -2.4, -1.1, 0.1, 0.3, 0.3, 0.2, 0.3, 0.5, 0.9, 0.9, 0.5, -0.2, -1.1),
        (0.8, -0.6, -0.6, -0.3, 0.1, 0.6, 0.9, 0.9, 0.5, 0.1, -0.5, -1.0, -1.1, -1.3, -0.7, 2.4),
    ),
    level_db=0.65,
    level_std_db=3.91,
)
# fmt: on


def interpolate_bands(band_db: Sequence[float], frequencies: np.ndarray) -> np.ndarray:
    """Linear magnitude at ``frequencies`` of a response given in dB per band: linear in log-frequency between band
    centres, constant beyond the outer ones."""
    edges = np.asarray(BAND_EDGES_HZ)
    centres = np.sqrt(edges[:-1] * edges[1:])
    db = np.interp(np.log(np.maximum(frequencies, 1.0)), np.log(centres), np.asarray(band_db))
    return 10.0 ** (db / 20.0)


def minimum_phase_fir(magnitude: np.ndarray, length: int) -> np.ndarray:
    """A causal minimum-phase impulse response of ``length`` taps with the given magnitude on an ``rfft`` grid.

    Real device responses peak within their first samples; a minimum-phase filter (homomorphic construction from
    the real cepstrum) does too, so a generated response convolves like a measured one.
    """
    size = 2 * (len(magnitude) - 1)
    if length > size:
        raise ConfigError(f"a {length}-tap response needs a magnitude grid of at least {length // 2 + 1} bins")
    cepstrum = np.fft.irfft(np.log(np.maximum(magnitude, 1e-6)), size)
    folded = np.zeros(size)
    folded[0], folded[size // 2] = cepstrum[0], cepstrum[size // 2]
    folded[1 : size // 2] = 2 * cepstrum[1 : size // 2]
    impulse = np.fft.irfft(np.exp(np.fft.rfft(folded)), size)[:length]
    fade = max(1, length // 8)
    impulse[-fade:] *= np.hanning(2 * fade)[fade:]  # no click where the truncated tail ends
    return impulse.astype(np.float32)
