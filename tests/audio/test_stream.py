"""Ring buffer, window cutter (growing windows) and the incremental resampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tympan.audio.io import load_audio
from tympan.audio.stream import ChunkResampler, RingBuffer, WindowCutter
from tympan.errors import AudioLoadError, ConfigError


def _pieces(samples: np.ndarray | int, sizes: list[int]) -> list[np.ndarray]:
    """``samples`` (or ``arange(samples)``) cut along its first axis in pieces of the ``sizes``, in turn."""
    if isinstance(samples, int):
        samples = np.arange(samples, dtype=np.float32)
    pieces, offset, turn = [], 0, 0
    while offset < len(samples):
        size = sizes[turn % len(sizes)]
        pieces.append(samples[offset : offset + size])
        offset, turn = offset + size, turn + 1
    return pieces


@pytest.mark.parametrize("sizes", [[1], [3, 11], [7], [1000]])
def test_ring_buffer_keeps_the_latest_samples_in_order(sizes: list[int]) -> None:
    ring = RingBuffer(10)
    written = np.zeros(0, np.float32)
    for piece in _pieces(57, sizes):
        ring.write(piece)
        written = np.concatenate([written, piece])
        count = min(10, len(written))
        np.testing.assert_array_equal(ring.latest(count), written[len(written) - count :])
    assert ring.total == 57
    with pytest.raises(ValueError):
        ring.latest(11)


@pytest.mark.parametrize("sizes", [[1], [4, 9], [1000]])
def test_growing_windows_come_every_hop_until_the_first_full_one(sizes: list[int]) -> None:
    cutter = WindowCutter(10, 4, grow=True)
    got = [(start, window.tolist()) for piece in _pieces(22, sizes) for start, window in cutter.push(piece)]
    expected = [(0, 4), (0, 8), (0, 10), (4, 14), (8, 18), (12, 22)]  # (start, end)
    assert got == [(start, list(map(float, range(start, end)))) for start, end in expected]
    assert cutter.finish("end") == []  # the last window ends at the end already


def test_finish_tail_and_errors() -> None:
    cutter = WindowCutter(10, 5)
    assert cutter.push(np.arange(13, dtype=np.float32))[0][0] == 0
    ((start, window),) = cutter.finish("end")
    assert start == 3 and torch.equal(window, torch.arange(3, 13, dtype=torch.float32))
    with pytest.raises(AudioLoadError, match="empty"):
        WindowCutter(10, 5).finish()
    with pytest.raises(ConfigError):
        WindowCutter(0, 5)
    with pytest.raises(ConfigError, match="tail"):
        cutter.finish("wrap")


def test_resampling_does_not_depend_on_how_the_stream_is_cut(tmp_path: object) -> None:
    """Pieces of any size give the samples of one whole-file read (soxr HQ, as load_audio), int16 or float."""
    import soundfile

    generator = np.random.default_rng(0)
    stereo = (0.2 * generator.standard_normal((44100, 2))).astype(np.float32)
    path = tmp_path / "a.wav"  # type: ignore[operator]
    soundfile.write(path, stereo, 44100, subtype="FLOAT")
    whole = load_audio(path, 32000)
    for sizes in ([441], [17, 1500, 3], [44100]):
        resampler = ChunkResampler(44100, 32000, channels=2)
        pieces = [resampler(piece) for piece in _pieces(stereo, sizes)] + [resampler.flush()]
        streamed = np.concatenate(pieces)
        assert abs(len(streamed) - len(whole)) <= 1
        n = min(len(streamed), len(whole))
        np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-5)
    pcm16 = ChunkResampler(32000, 32000)(np.array([16384, -32768], np.int16))
    np.testing.assert_array_equal(pcm16, [0.5, -1.0])
    with pytest.raises(AudioLoadError, match="channel"):
        ChunkResampler(32000, 32000, channels=2)(np.zeros((4, 3), np.float32))
