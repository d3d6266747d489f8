"""Audio that arrives in pieces: incremental resampling, a ring buffer, and windows cut as the samples come.

The live tagger (:class:`tympan.live.StreamingTagger`) cuts its windows with :class:`WindowCutter` as samples
arrive, on the grid and with the tail rules of the offline timeline (:func:`tympan.engine.pieces.window_starts`,
which plans all windows of a file at once), so a window both of them see holds the same samples and gets the same
scores (``tests/live/test_tagger.py``). Memory is one window, whatever the length of the stream or its pieces.
"""

from __future__ import annotations

import numpy as np
import soxr
import torch
from torch import Tensor

from ..errors import AudioLoadError, ConfigError
from .io import RESAMPLE_QUALITY, _check_rate, prepare_waveform

__all__ = ["ChunkResampler", "RingBuffer", "WindowCutter"]

# Where the last window goes when the grid misses the end of the audio (see :meth:`WindowCutter.finish`).
TAILS = ("end", "pad")


class RingBuffer:
    """The latest ``capacity`` samples of a stream in one preallocated float32 array: writing never reallocates."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ConfigError(f"a ring buffer needs a positive capacity, got {capacity}")
        self.capacity = capacity
        self.total = 0  # samples written since the start
        self._data = np.zeros(capacity, dtype=np.float32)
        self._position = 0  # where the next sample goes

    def write(self, samples: np.ndarray) -> None:
        count = len(samples)
        if count >= self.capacity:
            self._data[:] = samples[count - self.capacity :]
            self._position = 0
        else:
            first = min(count, self.capacity - self._position)
            self._data[self._position : self._position + first] = samples[:first]
            self._data[: count - first] = samples[first:]
            self._position = (self._position + count) % self.capacity
        self.total += count

    def latest(self, count: int) -> np.ndarray:
        """A copy of the last ``count`` samples, oldest first."""
        if not 0 <= count <= min(self.capacity, self.total):
            raise ValueError(f"cannot read {count} samples from a buffer holding {min(self.capacity, self.total)}")
        start = (self._position - count) % self.capacity
        if start + count <= self.capacity:
            return self._data[start : start + count].copy()
        return np.concatenate((self._data[start:], self._data[: self._position]))


class WindowCutter:
    """(start sample, window) pairs every ``hop`` samples out of pieces of any size, pushed as they arrive.

    Full windows start at ``i·hop``. With ``grow``, the stream also gets, before its first full window, the growing
    window ``[0, k·hop)`` at every hop, so that a live view shows scores one hop after the start rather than one
    window. :meth:`finish` places the last window by the ``tail`` rule of :func:`tympan.engine.pieces.window_starts`.

    Args:
        window: window length in samples.
        hop: step between window starts in samples.
        grow: give the growing windows before the first full one.
    """

    def __init__(self, window: int, hop: int, *, grow: bool = False) -> None:
        if window <= 0 or hop <= 0:
            raise ConfigError(f"window and hop must be at least one sample, got window={window}, hop={hop}")
        self.window, self.hop = window, hop
        self._ring = RingBuffer(window)
        self._next_start = 0  # of the next full window
        self._next_end = hop if grow and hop < window else window  # of the next window given
        self._last_full_end = 0
        self._given_end = 0  # end of the last window given, grown or full

    @property
    def total(self) -> int:
        """Samples pushed so far."""
        return self._ring.total

    def push(self, samples: np.ndarray | Tensor) -> list[tuple[int, Tensor]]:
        """Add samples; returns the windows they complete, in order."""
        if isinstance(samples, Tensor):
            samples = samples.detach().cpu().numpy()
        samples = np.asarray(samples, dtype=np.float32)
        windows = []
        offset = 0
        while offset < len(samples):
            take = min(len(samples) - offset, self._next_end - self.total)
            self._ring.write(samples[offset : offset + take])
            offset += take
            if self.total == self._next_end:
                windows.append(self._give())
        return windows

    def _give(self) -> tuple[int, Tensor]:
        end = self._next_end
        if end < self.window:  # a growing window
            self._next_end = min(end + self.hop, self.window)
            start = 0
        else:
            start = self._next_start
            self._last_full_end = end
            self._next_start += self.hop
            self._next_end = self._next_start + self.window
        self._given_end = end
        return start, torch.from_numpy(self._ring.latest(end - start))

    def finish(self, tail: str = "end") -> list[tuple[int, Tensor]]:
        """The last window, if the audio goes on past the last one given.

        ``tail="end"``: it ends at the end of the audio (audio shorter than one window gives one window of all of
        it); ``tail="pad"``: it starts at the next ``i·hop`` and is zero-padded to ``window`` samples.

        Raises:
            AudioLoadError: nothing was pushed.
            ConfigError: an unknown ``tail``.
        """
        if tail not in TAILS:
            raise ConfigError(f"tail must be one of {TAILS}, got {tail!r}")
        total = self.total
        if total == 0:
            raise AudioLoadError("the audio is empty (0 samples)")
        if tail == "pad":
            if self._last_full_end < total or self._last_full_end == 0:
                real = max(total - self._next_start, 0)
                padded = torch.nn.functional.pad(torch.from_numpy(self._ring.latest(real)), (0, self.window - real))
                return [(self._next_start, padded)]
            return []
        if self._given_end < total:
            length = min(self.window, total)
            return [(total - length, torch.from_numpy(self._ring.latest(length)))]
        return []


class ChunkResampler:
    """Mono float32 at ``target_rate`` from PCM pieces of any size at ``source_rate``, resampled incrementally.

    soxr's streaming resampler keeps its filter state between pieces, so the output does not depend on how the
    input was cut (the quality is :func:`tympan.audio.io.load_audio`'s). Integer PCM is scaled as soundfile does.

    Args:
        source_rate: rate of the pieces in Hz.
        target_rate: rate of the output in Hz.
        channels: interleaved channels per frame; pieces are ``[frames]`` or ``[frames, channels]``.
    """

    def __init__(self, source_rate: int, target_rate: int, channels: int = 1) -> None:
        if channels <= 0:
            raise ConfigError(f"channels must be positive, got {channels}")
        self.source_rate = _check_rate(source_rate, "source_rate")
        self.target_rate = _check_rate(target_rate, "target_rate")
        self.channels = channels
        self._stream = None
        if source_rate != target_rate:
            self._stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)

    def __call__(self, piece: np.ndarray) -> np.ndarray:
        """The resampled mono samples of ``piece`` (the resampler may hold back a few until later pieces)."""
        piece = np.asarray(piece)
        if piece.size == 0:
            return np.empty(0, dtype=np.float32)
        frames = piece.reshape(-1, self.channels) if piece.ndim == 1 else piece
        if frames.shape[1] != self.channels:
            raise AudioLoadError(f"expected pieces of {self.channels} channel(s), got shape {piece.shape}")
        mono = prepare_waveform(frames, self.source_rate, self.source_rate, channel_axis=1)
        return mono if self._stream is None else self._stream.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds, at the end of the stream."""
        if self._stream is None:
            return np.empty(0, dtype=np.float32)
        return self._stream.resample_chunk(np.empty(0, dtype=np.float32), last=True)
