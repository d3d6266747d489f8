"""SincResampler: torchaudio's default windowed-sinc Resample (lengths, band limit, float32, no state)."""

from __future__ import annotations

import math

import pytest
import torch

from tympan.audio.resample import SincResampler, resampled_length, sinc_resample_kernels
from tympan.errors import ConfigError


def test_lengths_and_shapes():
    resampler = SincResampler(44100, 32000)
    assert resampler(torch.zeros(3, 44100)).shape == (3, 32000)
    assert resampler(torch.zeros(2, 1, 1001)).shape == (2, 1, resampled_length(1001, 44100, 32000)) == (2, 1, 727)
    assert resampled_length(1000, 44100, 32000) == math.ceil(1000 * 320 / 441)
    assert resampled_length(44100, 44100, 44100) == 44100
    assert resampler.state_dict() == {} and not list(resampler.parameters())
    same = torch.randn(2, 100)
    assert SincResampler(16000, 16000)(same) is same


def test_kernel_geometry_of_44k1_to_32k():
    """441 -> 320 after the gcd; cut-off 0.99 · 320; ceil(6 · 441 / 316.8) = 9 taps of margin on each side."""
    kernels, width = sinc_resample_kernels(44100, 32000)
    assert width == 9 and kernels.shape == (320, 1, 2 * 9 + 441) and kernels.dtype == torch.float32
    # the DC gain of every phase is 1 (to the truncation of the windowed sinc)
    torch.testing.assert_close(kernels.sum(-1).double(), torch.ones(320, 1, dtype=torch.float64), atol=2e-3, rtol=0)


def test_a_passband_tone_keeps_its_amplitude_and_a_stopband_tone_is_removed():
    t = torch.arange(44100) / 44100
    resampler = SincResampler(44100, 32000)
    low = resampler(torch.sin(2 * math.pi * 1000 * t)[None])[0, 2000:-2000]
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(32000) / 32000)[2000:-2000]
    assert (low - expected).abs().max() < 1e-3  # a delay-free, unit-gain passband
    high = resampler(torch.sin(2 * math.pi * 19000 * t)[None])[0, 2000:-2000]  # above the new Nyquist
    # about 26 dB down: a short Hann-windowed sinc leaves a residue that soxr would not (the top mel bands see it)
    assert 0.01 < high.abs().max() < 0.1


def test_runs_in_float32_under_autocast_and_follows_the_input_device():
    x = torch.randn(2, 4410, generator=torch.Generator().manual_seed(0))
    resampler = SincResampler(44100, 32000)
    plain = resampler(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(resampler(x), plain)
    torch.testing.assert_close(resampler.double()(x.double()).float(), plain, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("orig", "new", "width", "rolloff"), [(0, 16000, 6, 0.99), (16000, 8000, 0, 0.99),
                                                                  (16000, 8000, 6, 1.5)])
def test_bad_settings(orig, new, width, rolloff):
    with pytest.raises(ConfigError, match="resampling"):
        SincResampler(orig, new, width, rolloff)
