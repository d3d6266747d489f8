"""Reading audio: find audio files, decode (soundfile), mix to mono, resample (soxr), read a span of a long file or
stream it in chunks.

``load_audio`` gives the same samples as the references' ``librosa.load(path, sr=..., mono=True)``: a float32
soundfile read, the mean over channels, soxr 'HQ' resampling, and librosa's length fix to
``ceil(frames · target_rate / source_rate)`` samples (soxr sometimes returns one sample less; librosa pads a zero).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioLoadError

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "audio_info",
    "find_audio_files",
    "load_audio",
    "prepare_waveform",
    "read_span",
    "resampled_length",
    "stream_audio",
]

PathOrFile = str | os.PathLike | BinaryIO

RESAMPLE_QUALITY = "HQ"  # what librosa's default res_type 'soxr_hq' uses
# Audio decoded around a span so that soxr's filter sees the same neighbourhood as in a whole-file resampling.
RESAMPLE_MARGIN_SECONDS = 0.1
# The extensions picked from folders: what libsndfile decodes.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64")
_FORMATS = "WAV, FLAC, OGG/Vorbis, MP3 and the other formats libsndfile reads"
_INTEGER_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says.

    Attributes:
        sample_rate: in Hz.
        channels: number of channels.
        frames: samples per channel (for MP3 an estimate of the decoder).
        duration: in seconds.
        format: container, e.g. ``"WAV"``.
        subtype: encoding, e.g. ``"PCM_24"``.
    """

    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str


def find_audio_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files named, and the audio files (:data:`AUDIO_EXTENSIONS`) under the folders named: recursive, sorted."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS))
        else:
            files.append(path)
    return files


def _describe(source: PathOrFile) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _open(source: PathOrFile) -> sf.SoundFile:
    """Open for reading, turning every way a file can be unusable into an :class:`AudioLoadError`."""
    name = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioLoadError(f"audio file {name} does not exist; check the path")
        if path.is_dir():
            raise AudioLoadError(f"{name} is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioLoadError(f"audio file {name} is empty (0 bytes); re-export or re-download it")
    try:
        return sf.SoundFile(source)
    except PermissionError as error:
        raise AudioLoadError(f"audio file {name} cannot be read: permission denied") from error
    except (sf.SoundFileError, RuntimeError, OSError, TypeError) as error:
        raise AudioLoadError(
            f"cannot decode {name}: {error}. The file is corrupt or not in a supported format ({_FORMATS}); "
            "convert it, e.g. with `ffmpeg -i input output.wav`"
        ) from error


def _check_samples(data: np.ndarray, name: str) -> None:
    if data.size == 0:
        raise AudioLoadError(f"{name} holds no samples")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int(data.size - np.isfinite(data).sum())
        raise AudioLoadError(f"{name} contains {bad} non-finite samples (NaN or inf); clean or re-export it")


def _to_mono(frames_by_channel: np.ndarray) -> np.ndarray:
    """Mean over channels of ``[frames, channels]``, bit-identical to librosa's ``to_mono`` (``np.mean`` over the
    channel axis, which adds the channels one after the other), at a fraction of the cost: ``np.mean`` reduces the
    transposed array with strided reads (11 % of a folder job's time in the issue's profile)."""
    channels = frames_by_channel.shape[1]
    if channels == 1:
        return frames_by_channel[:, 0]
    total = frames_by_channel[:, 0] + frames_by_channel[:, 1]
    for channel in range(2, channels):
        total += frames_by_channel[:, channel]
    total /= np.asarray(channels, dtype=total.dtype)
    return total


def _read(handle: sf.SoundFile, frames: int, name: str, dtype: str = "float32") -> np.ndarray:
    """``[frames, channels]`` from the handle's position (``frames`` -1: to the end), checked."""
    try:
        data = handle.read(frames, dtype=dtype, always_2d=True)
    except (sf.SoundFileError, RuntimeError) as error:
        raise AudioLoadError(f"cannot decode {name} (corrupt data?): {error}") from error
    _check_samples(data, f"audio file {name}")
    return data


def _read_mono(handle: sf.SoundFile, frames: int, name: str) -> np.ndarray:
    """:func:`_read` mixed to mono: :func:`_to_mono` of the float32 read, bit for bit. 16-bit PCM is read as
    integers, mixed and scaled here, 4x faster than libsndfile's float conversion and exact: the channel sum fits
    float32's mantissa and the scale is a power of two."""
    if handle.subtype != "PCM_16":
        return _to_mono(_read(handle, frames, name))
    data = _read(handle, frames, name, "int16")
    mono = data[:, 0].astype(np.float32)
    for channel in range(1, data.shape[1]):
        mono += data[:, channel]  # integers below 2**24: exact
    mono *= np.float32(2.0**-15)
    if data.shape[1] > 1:
        mono /= np.float32(data.shape[1])
    return mono


def _resample(data: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """soxr 'HQ' along axis 0, length fixed to ``ceil(n · target / source)`` as ``librosa.resample`` does."""
    if source_rate == target_rate:
        return data
    resampled = soxr.resample(data, source_rate, target_rate, quality=RESAMPLE_QUALITY)
    return _fix_length(resampled, resampled_length(len(data), source_rate, target_rate))


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """Samples of ``frames`` frames resampled to ``target_rate``, as ``librosa.resample`` counts them."""
    return int(np.ceil(frames * (float(target_rate) / source_rate)))


def _fix_length(data: np.ndarray, length: int) -> np.ndarray:
    if len(data) >= length:
        return data[:length]
    padding = [(0, length - len(data))] + [(0, 0)] * (data.ndim - 1)
    return np.pad(data, padding)


def _check_rate(rate: Any, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise AudioLoadError(f"{what} must be a positive integer in Hz, got {rate!r}")
    return int(rate)


def load_audio(path_or_file: PathOrFile, sample_rate: int, *, mono: bool = True) -> np.ndarray:
    """Decode a whole audio file and resample it to ``sample_rate``.

    Args:
        path_or_file: a path or an open binary file object (WAV, FLAC, OGG/Vorbis, MP3, ...).
        sample_rate: the rate the model expects, in Hz.
        mono: mix the channels to mono (the references do); otherwise keep them.

    Returns:
        float32 samples in [-1, 1]: ``[samples]`` if ``mono`` else ``[channels, samples]``.

    Raises:
        AudioLoadError: the file is missing, empty, unreadable, corrupt or contains NaN/inf.
    """
    sample_rate = _check_rate(sample_rate, "sample_rate")
    name = _describe(path_or_file)
    with _open(path_or_file) as handle:
        source_rate = handle.samplerate
        data = _read_mono(handle, -1, name) if mono else _read(handle, -1, name)
    if mono:
        return _resample(data, source_rate, sample_rate)
    return np.ascontiguousarray(_resample(data, source_rate, sample_rate).T)


def prepare_waveform(
    array: Any, source_rate: int, target_rate: int, *, mono: bool = True, channel_axis: int | None = None
) -> np.ndarray:
    """Bring an in-memory waveform into the form :func:`load_audio` returns.

    Args:
        array: a numpy array or torch tensor, ``[samples]`` or 2-D with a channel axis; integer PCM is scaled to
            [-1, 1] as soundfile does (int16 / 2^15, int32 / 2^31, uint8 centred at 128).
        source_rate: the rate of ``array`` in Hz.
        target_rate: the rate wanted in Hz.
        mono: mix the channels to mono; otherwise return ``[channels, samples]``.
        channel_axis: which axis of a 2-D array holds channels; by default the shorter one.

    Returns:
        float32 ``[samples]`` (or ``[channels, samples]``) at ``target_rate``.

    Raises:
        AudioLoadError: empty, more than 2-D, non-numeric or non-finite input, or invalid rates.
    """
    source_rate = _check_rate(source_rate, "source_rate")
    target_rate = _check_rate(target_rate, "target_rate")
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    data = np.asarray(array)
    if data.ndim not in (1, 2):
        raise AudioLoadError(f"a waveform must be [samples] or [channels, samples], got shape {data.shape}")
    if data.ndim == 1:
        data = data[:, None]
    else:
        axis = (0 if data.shape[0] < data.shape[1] else 1) if channel_axis is None else channel_axis % 2
        data = data.T if axis == 0 else data  # -> [frames, channels]
    data = _to_float32(data)
    _check_samples(data, "the waveform")
    if mono:
        return np.ascontiguousarray(_resample(_to_mono(data), source_rate, target_rate))
    return np.ascontiguousarray(_resample(data, source_rate, target_rate).T)


def _to_float32(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if data.dtype in _INTEGER_SCALE:
        return (data.astype(np.float64) / _INTEGER_SCALE[data.dtype]).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise AudioLoadError(f"cannot interpret a waveform of dtype {data.dtype}; pass float or integer PCM samples")


def read_span(path: str | os.PathLike, sample_rate: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Mono float32 samples ``[start, stop)`` of a file at ``sample_rate``, decoding only that part.

    The span is resampled with :data:`RESAMPLE_MARGIN_SECONDS` of audio on either side, so its samples are those of
    :func:`load_audio` on the whole file up to the resampler's rounding (~1e-6); the whole file (``start=0``,
    ``stop=None``) is exactly :func:`load_audio`'s. Lets workers read pieces of one long file in parallel.

    Args:
        path: an audio file whose format seeks exactly (WAV, FLAC, AIFF, MP3, Ogg, ...).
        sample_rate: output rate in Hz.
        start, stop: the span in samples at ``sample_rate``; ``stop`` None or past the end: to the end of the file.

    Raises:
        AudioLoadError: as :func:`load_audio`.
    """
    sample_rate = _check_rate(sample_rate, "sample_rate")
    name = _describe(path)
    with _open(path) as handle:
        source_rate, frames = handle.samplerate, handle.frames
        total = resampled_length(frames, source_rate, sample_rate)
        stop = total if stop is None else min(stop, total)
        # Read whole resampling periods (source_step frames <-> target_step samples) so that the span is aligned.
        divisor = math.gcd(source_rate, sample_rate)
        source_step, target_step = source_rate // divisor, sample_rate // divisor
        margin = math.ceil(RESAMPLE_MARGIN_SECONDS * source_rate / source_step) if source_rate != sample_rate else 0
        first = max(start // target_step - margin, 0)
        last = min(math.ceil(stop / target_step) + margin, math.ceil(frames / source_step))
        handle.seek(first * source_step)
        mono = _read_mono(handle, min(last * source_step, frames) - first * source_step, name)
    if source_rate != sample_rate:
        mono = soxr.resample(mono, source_rate, sample_rate, quality=RESAMPLE_QUALITY)
    offset = first * target_step
    return _fix_length(mono[start - offset : stop - offset], max(stop - start, 0))


def audio_info(path: PathOrFile) -> AudioInfo:
    """Sample rate, channels, frames and duration of an audio file, without decoding it.

    Raises:
        AudioLoadError: the file is missing, empty or not a readable audio file.
    """
    with _open(path) as handle:
        return AudioInfo(
            sample_rate=handle.samplerate,
            channels=handle.channels,
            frames=handle.frames,
            duration=handle.frames / handle.samplerate,
            format=handle.format,
            subtype=handle.subtype,
        )


def stream_audio(
    path: PathOrFile,
    sample_rate: int,
    chunk_seconds: float = 10.0,
    *,
    hop_seconds: float | None = None,
    block_frames: int = 65536,
) -> Iterator[np.ndarray]:
    """Yield a long file as mono float32 windows at ``sample_rate``, reading and resampling block by block.

    Memory stays flat for hour-long files. Concatenating the windows of the default (non-overlapping) hop gives
    :func:`load_audio`'s result up to the streaming resampler's rounding (~1e-7). Windows start at multiples of
    the hop; the last one ends at the end of the file and may be shorter than ``chunk_seconds``.

    Args:
        path: a path or an open binary file object.
        sample_rate: output rate in Hz.
        chunk_seconds: window length in seconds.
        hop_seconds: distance between window starts (default ``chunk_seconds``: contiguous chunks).
        block_frames: frames decoded per read.

    Yields:
        float32 ``[samples]`` arrays of ``round(chunk_seconds · sample_rate)`` samples (the last may be shorter).

    Raises:
        AudioLoadError: as :func:`load_audio`; non-finite samples are reported when their block is read.
    """
    sample_rate = _check_rate(sample_rate, "sample_rate")
    chunk = round(chunk_seconds * sample_rate)
    hop = chunk if hop_seconds is None else round(hop_seconds * sample_rate)
    if chunk <= 0 or not 0 < hop <= chunk:
        raise AudioLoadError(
            f"need 0 < hop_seconds <= chunk_seconds, at least one sample each; got {chunk_seconds}, {hop_seconds}"
        )
    name = _describe(path)
    with _open(path) as handle:
        source_rate = handle.samplerate
        resampler = None
        if source_rate != sample_rate:
            resampler = soxr.ResampleStream(source_rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        buffer = np.empty(0, dtype=np.float32)
        frames_read = produced = 0
        try:
            for block in handle.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                _check_samples(block, f"audio file {name}")
                frames_read += len(block)
                mono = _to_mono(block)
                out = mono if resampler is None else resampler.resample_chunk(mono)
                produced += len(out)
                buffer = np.concatenate((buffer, out))
                while len(buffer) > chunk:  # more audio follows, so this window is not the last
                    yield buffer[:chunk].copy()
                    buffer = buffer[hop:]
        except (sf.SoundFileError, RuntimeError) as error:
            raise AudioLoadError(f"cannot decode {name} (corrupt data?): {error}") from error
    if frames_read == 0:
        raise AudioLoadError(f"audio file {name} holds no samples")
    if resampler is not None:
        # Flush, then fix the total length as load_audio does (the streamed part never exceeds it in practice).
        owed = resampled_length(frames_read, source_rate, sample_rate) - produced
        tail = resampler.resample_chunk(np.empty(0, dtype=np.float32), last=True)
        buffer = np.concatenate((buffer, _fix_length(tail, max(owed, 0))))
        buffer = buffer[: len(buffer) + min(owed, 0)]
    while True:
        yield buffer[:chunk].copy()
        if len(buffer) <= chunk:
            return
        buffer = buffer[hop:]
