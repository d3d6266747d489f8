"""audio.io: decoding, mono mixing, librosa-identical resampling, streaming, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from tests.conftest import load_reference, shared_path
from tympan.audio.io import AudioInfo, audio_info, load_audio, prepare_waveform, read_span, stream_audio
from tympan.errors import AudioLoadError


def _tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    columns = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(t.size)
               for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def _librosa_like(frames_by_channel: np.ndarray, source: int, target: int) -> np.ndarray:
    """What librosa.load(sr=target, mono=True) computes, written out (librosa is not a dependency)."""
    mono = frames_by_channel.mean(axis=1, dtype=np.float32)
    out = soxr.resample(mono, source, target, quality="HQ")
    length = int(np.ceil(len(mono) * target / source))
    return np.pad(out, (0, max(0, length - len(out))))[:length]


@pytest.fixture
def stereo_wav(tmp_path):
    data = _tone(1.3, 44100, channels=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, data, 44100, subtype="PCM_16")
    return path, sf.read(path, dtype="float32", always_2d=True)[0]


def test_load_matches_librosa_recipe(stereo_wav):
    path, decoded = stereo_wav
    audio = load_audio(path, 32000)
    assert audio.dtype == np.float32 and audio.shape == (int(np.ceil(len(decoded) * 32000 / 44100)),)
    np.testing.assert_array_equal(audio, _librosa_like(decoded, 44100, 32000))
    both = load_audio(path, 32000, mono=False)
    assert both.shape == (2, len(audio))
    np.testing.assert_allclose(both.mean(axis=0), audio, atol=1e-6)
    np.testing.assert_array_equal(load_audio(path, 44100), decoded.mean(axis=1))
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(load_audio(handle, 32000), audio)


def test_real_recording_is_bit_identical_to_librosa():
    expected = load_reference("efficientat", "mn04_stress_seed0.pt")["real_audio"]["waveform"][0].numpy()
    audio = load_audio(shared_path("data", "metro_station-paris.wav"), 32000)
    np.testing.assert_array_equal(audio, expected)


@pytest.mark.parametrize(("suffix", "fmt", "subtype", "atol"), [
    ("flac", "FLAC", "PCM_16", 1e-4), ("ogg", "OGG", "VORBIS", None), ("mp3", "MP3", "MPEG_LAYER_III", None),
])
def test_compressed_formats(tmp_path, suffix, fmt, subtype, atol):
    data = _tone(1.0, 16000)
    path = tmp_path / f"clip.{suffix}"
    sf.write(path, data, 16000, format=fmt, subtype=subtype)
    audio = load_audio(path, 16000)
    info = audio_info(path)
    assert info.sample_rate == 16000 and info.channels == 1 and info.format == fmt
    if atol is not None:
        np.testing.assert_allclose(audio, data[:, 0], atol=atol)
    else:  # lossy codecs add delay and noise: the tone must survive
        assert abs(len(audio) - len(data)) < 0.2 * len(data)
        spectrum = np.abs(np.fft.rfft(audio[:8000]))
        assert abs(np.argmax(spectrum) * 16000 / 8000 - 220) < 4


def test_audio_info(stereo_wav):
    path, decoded = stereo_wav
    info = audio_info(path)
    assert info == AudioInfo(44100, 2, len(decoded), len(decoded) / 44100, "WAV", "PCM_16")


@pytest.mark.parametrize(("chunk", "block"), [(0.25, 4096), (0.7, 1000), (10.0, 65536)])
def test_stream_equals_whole_file(stereo_wav, chunk, block):
    path, _ = stereo_wav
    whole = load_audio(path, 32000)
    chunks = list(stream_audio(path, 32000, chunk, block_frames=block))
    assert all(len(c) == round(chunk * 32000) for c in chunks[:-1]) and 0 < len(chunks[-1]) <= round(chunk * 32000)
    streamed = np.concatenate(chunks)
    assert streamed.shape == whole.shape and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, atol=1e-6, rtol=0)


def test_stream_overlapping_windows(stereo_wav):
    path, _ = stereo_wav
    whole = load_audio(path, 16000)
    windows = list(stream_audio(path, 16000, 0.5, hop_seconds=0.2, block_frames=3000))
    starts = [i * 3200 for i in range(len(windows))]
    for start, window in zip(starts, windows, strict=True):
        np.testing.assert_allclose(window, whole[start : start + 8000], atol=1e-6)
    assert starts[-1] + 8000 >= len(whole) > starts[-2] + 8000  # the last window reaches the end, no extra one


def test_stream_reads_lazily(tmp_path):
    """The first chunk arrives after reading a small part of a long file: memory does not grow with length."""
    path = tmp_path / "long.wav"
    sf.write(path, _tone(60.0, 8000), 8000, subtype="PCM_16")

    class CountingFile(io.FileIO):
        bytes_read = 0

        def read(self, size=-1):
            data = super().read(size)
            CountingFile.bytes_read += len(data)
            return data

        def readinto(self, buffer):
            count = super().readinto(buffer)
            CountingFile.bytes_read += count or 0
            return count

    with CountingFile(path, "rb") as handle:
        first = next(stream_audio(handle, 16000, 1.0, block_frames=4000))
    assert len(first) == 16000
    assert CountingFile.bytes_read < path.stat().st_size / 10


def test_errors(tmp_path):
    with pytest.raises(AudioLoadError, match="does not exist"):
        load_audio(tmp_path / "missing.wav", 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioLoadError, match="empty"):
        load_audio(tmp_path / "empty.wav", 16000)
    with pytest.raises(AudioLoadError, match="directory"):
        audio_info(tmp_path)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(AudioLoadError, match="corrupt or not in a supported format"):
        load_audio(tmp_path / "corrupt.wav", 16000)
    with pytest.raises(AudioLoadError, match="corrupt"):
        next(stream_audio(tmp_path / "corrupt.wav", 16000))
    sf.write(tmp_path / "silent.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioLoadError, match="no samples"):
        load_audio(tmp_path / "silent.wav", 16000)
    with pytest.raises(AudioLoadError, match="no samples"):
        list(stream_audio(tmp_path / "silent.wav", 16000))
    data = _tone(0.5, 16000)
    data[100] = np.nan
    sf.write(tmp_path / "nan.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(AudioLoadError, match="1 non-finite"):
        load_audio(tmp_path / "nan.wav", 16000)
    with pytest.raises(AudioLoadError, match="non-finite"):
        list(stream_audio(tmp_path / "nan.wav", 16000))
    with pytest.raises(AudioLoadError, match="sample_rate"):
        load_audio(tmp_path / "nan.wav", 0)
    with pytest.raises(AudioLoadError, match="hop_seconds"):
        next(stream_audio(tmp_path / "nan.wav", 16000, 1.0, hop_seconds=2.0))
    assert issubclass(AudioLoadError, OSError)


def test_prepare_waveform_layouts_and_pcm(stereo_wav):
    path, decoded = stereo_wav
    expected = load_audio(path, 32000)
    np.testing.assert_array_equal(prepare_waveform(decoded, 44100, 32000), expected)
    np.testing.assert_array_equal(prepare_waveform(decoded.T.copy(), 44100, 32000), expected)
    np.testing.assert_array_equal(prepare_waveform(torch.from_numpy(decoded), 44100, 32000), expected)
    pcm = sf.read(path, dtype="int16")[0]  # the file is 16-bit: int16 / 2^15 is exactly soundfile's float
    np.testing.assert_array_equal(prepare_waveform(pcm, 44100, 32000), expected)
    assert prepare_waveform(decoded, 44100, 32000, mono=False).shape == (2, len(expected))
    assert prepare_waveform(decoded[:, :1].T, 44100, 44100, channel_axis=0).shape == (len(decoded),)
    np.testing.assert_allclose(prepare_waveform(np.array([0, 128, 255], np.uint8), 8000, 8000), [-1, 0, 127 / 128])


@pytest.mark.parametrize(("bad", "match"), [
    (np.zeros((2, 3, 4), np.float32), "shape"),
    (np.array([0.0, np.inf], np.float32), "non-finite"),
    (np.zeros(0, np.float32), "no samples"),
    (np.array(["a", "b"]), "dtype"),
])
def test_prepare_waveform_errors(bad, match):
    with pytest.raises(AudioLoadError, match=match):
        prepare_waveform(bad, 16000, 16000)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_16_bit_pcm_mixed_from_integers_is_the_float_mean_bit_for_bit(tmp_path, channels):
    pcm = np.random.default_rng(channels).integers(-32768, 32768, (20000, channels), dtype=np.int16)
    pcm[:2] = [[-32768] * channels, [32767] * channels]  # the extremes
    path = tmp_path / "pcm16.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    expected = np.mean(sf.read(path, dtype="float32", always_2d=True)[0].T, axis=0)
    np.testing.assert_array_equal(load_audio(path, 16000), expected)
    np.testing.assert_array_equal(read_span(path, 16000, 1000, 9000), expected[1000:9000])

