"""Band-limited resampling inside a module: the windowed-sinc polyphase filter of ``torchaudio.transforms.Resample``.

The DCASE24 / DCASE25 Task 1 baselines resample the 44.1 kHz TAU recordings to 32 kHz *inside* the model with
torchaudio's default ``Resample`` (Hann-windowed sinc, 6 zero crossings, roll-off 0.99). Weights trained that way
see the slightly different low-energy bins that this filter leaves (soxr, used by :mod:`tympan.audio.io`, filters
more sharply), so a frontend that serves them carries the same filter. tympan does not depend on torchaudio; this
is our implementation of the same arithmetic.

Both rates are divided by their greatest common divisor (44,100 → 32,000 is 441 → 320). Output sample ``j`` lies at
input time ``j · orig / new``; each of the ``new`` output phases has its own FIR kernel of ``2·width + orig`` taps,
so one strided ``conv1d`` with ``new`` output channels computes every phase of a block of ``orig`` input samples.

Reference: ``torchaudio.functional.functional._get_sinc_resample_kernel`` and ``_apply_sinc_resample_kernel``
(pytorch/audio); the method is Kaldi's / Julius O. Smith's band-limited interpolation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["SincResampler", "resampled_length", "sinc_resample_kernels"]


def resampled_length(num_samples: int, orig_rate: int, new_rate: int) -> int:
    """``ceil(num_samples · new / orig)``: the samples :class:`SincResampler` returns for ``num_samples`` inputs."""
    divisor = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // divisor, new_rate // divisor
    return -(-num_samples * new // orig)


def sinc_resample_kernels(
    orig_rate: int, new_rate: int, lowpass_filter_width: int = 6, rolloff: float = 0.99
) -> tuple[Tensor, int]:
    """The polyphase kernels ``[new, 1, 2·width + orig]`` (float32, built in float64) and the half width ``width``.

    Args:
        orig_rate: input rate in Hz.
        new_rate: output rate in Hz.
        lowpass_filter_width: zero crossings of the sinc on each side (sharper with more, slower too).
        rolloff: cut-off as a fraction of the lower Nyquist frequency (anti-aliasing margin).

    Raises:
        ConfigError: for non-positive rates or width, or a roll-off outside (0, 1].
    """
    if min(orig_rate, new_rate) <= 0 or lowpass_filter_width <= 0 or not 0.0 < rolloff <= 1.0:
        raise ConfigError(
            f"resampling needs positive rates and filter width and 0 < rolloff <= 1, got {orig_rate} -> {new_rate} "
            f"Hz, width {lowpass_filter_width}, rolloff {rolloff}"
        )
    divisor = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // divisor, new_rate // divisor
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    width = math.ceil(lowpass_filter_width * orig / cutoff)
    # The float64 operations of the reference in its order, the output phases' times rounded to float32 as there:
    # in the stop band the output is a small residue of the input, and kernels one float32 ulp apart already move
    # the top mel bands of the DCASE24 frontend by 5e-4.
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig  # input times of the taps
    phases = (-torch.arange(new, dtype=torch.float32) / new).to(torch.float64).unsqueeze(1)  # output times
    t = ((phases + taps) * cutoff).clamp(-lowpass_filter_width, lowpass_filter_width)  # in zero crossings
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2  # Hann over the support
    t = t * math.pi
    kernels = torch.where(t == 0, torch.ones_like(t), t.sin() / t) * (window * (cutoff / orig))
    return kernels.unsqueeze(1).to(torch.float32), width


class SincResampler(nn.Module):
    """Waveforms ``[..., samples]`` at ``orig_rate`` → ``[..., ceil(samples · new / orig)]`` at ``new_rate``.

    Equal to ``torchaudio.transforms.Resample(orig_rate, new_rate)`` with its defaults (``sinc_interp_hann``,
    ``lowpass_filter_width=6``, ``rolloff=0.99``). The input is zero-padded on both sides, as there. The kernels are
    a non-persistent buffer: the module adds no keys to a state dict. It runs in float32 even under autocast.

    Example:
        >>> SincResampler(44100, 32000)(torch.zeros(2, 44100)).shape
        torch.Size([2, 32000])
    """

    def __init__(self, orig_rate: int, new_rate: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
        super().__init__()
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        divisor = math.gcd(self.orig_rate, self.new_rate)
        self._orig, self._new = self.orig_rate // divisor, self.new_rate // divisor
        kernels, self._width = sinc_resample_kernels(self.orig_rate, self.new_rate, lowpass_filter_width, rolloff)
        self.register_buffer("kernels", kernels, persistent=False)

    def extra_repr(self) -> str:
        return f"{self.orig_rate} -> {self.new_rate} Hz"

    def forward(self, waveform: Tensor) -> Tensor:
        if self.orig_rate == self.new_rate:
            return waveform
        shape = waveform.shape
        x = waveform.reshape(-1, 1, shape[-1])
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = nn.functional.pad(x.to(self.kernels.dtype), (self._width, self._width + self._orig))
            phases = nn.functional.conv1d(x, self.kernels, stride=self._orig)  # [rows, new, blocks]
        resampled = phases.transpose(1, 2).reshape(x.shape[0], -1)  # interleave the phases of each block
        length = resampled_length(shape[-1], self.orig_rate, self.new_rate)
        return resampled[:, :length].reshape(*shape[:-1], length)
