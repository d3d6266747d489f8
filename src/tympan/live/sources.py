"""Where live audio comes from: a microphone (sounddevice / PortAudio), or a file played at real-time pace.

A source is an iterable of ``(piece, arrival)`` pairs: float32 PCM ``[frames, channels]`` at :attr:`sample_rate`
and the :func:`time.perf_counter` time it arrived, which is where the tagger's latency is counted from. A file
played with ``realtime=True`` hands its blocks over no faster than a microphone would, so it runs the live path
the same way (the tests and users without a microphone do this).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..audio.io import audio_info
from ..errors import AudioDeviceError, AudioLoadError

__all__ = ["FileSource", "Microphone"]

DEFAULT_BLOCK_SECONDS = 0.05


class FileSource:
    """The blocks of an audio file, at its own rate and channels; with ``realtime``, paced as it would sound.

    Raises:
        AudioLoadError: the file is missing or not readable audio.
    """

    def __init__(self, path: str | Path, *, realtime: bool = False, block_seconds: float = DEFAULT_BLOCK_SECONDS):
        info = audio_info(path)
        self.path, self.realtime = Path(path), realtime
        self.sample_rate, self.channels = info.sample_rate, info.channels
        self.block_frames = max(round(block_seconds * info.sample_rate), 1)

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        start = time.perf_counter()
        played = 0
        try:
            for block in sf.blocks(self.path, blocksize=self.block_frames, dtype="float32", always_2d=True):
                played += len(block)
                if not self.realtime:
                    yield block, time.perf_counter()
                    continue
                recorded = start + played / self.sample_rate  # a block is there once its last sample is "recorded"
                time.sleep(max(recorded - time.perf_counter(), 0.0))
                yield block, recorded  # a consumer that falls behind sees the wait in its latency
        except (sf.SoundFileError, RuntimeError) as error:
            raise AudioLoadError(f"cannot decode {self.path} (corrupt data?): {error}") from error


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as error:
        raise AudioDeviceError(
            "the microphone needs the sounddevice package: pip install 'tympan[live]' (or play a file with "
            "--input FILE --realtime)"
        ) from error
    except OSError as error:  # sounddevice imports, but the PortAudio library is not there
        raise AudioDeviceError(
            f"PortAudio is missing ({error}); install it (Debian/Ubuntu: apt-get install libportaudio2, macOS: "
            "brew install portaudio), or play a file with --input FILE --realtime"
        ) from error
    return sounddevice


class Microphone:
    """Blocks from an input device through PortAudio, handed over from its callback thread as they are recorded;
    the blocks that wait while the consumer is busy come as one piece (its arrival: the newest block's).

    Args:
        device: a device index or a substring of its name (default: the system's default input).
        sample_rate: recording rate in Hz (default: the device's).
        channels: channels to record.
        block_seconds: length of the blocks.

    Raises:
        AudioDeviceError: sounddevice or PortAudio is missing, or there is no such input device.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
    ) -> None:
        self._sd = _sounddevice()
        try:
            info = self._sd.query_devices(device, "input")
        except (ValueError, self._sd.PortAudioError) as error:
            inputs = [d["name"] for d in self._devices() if d["max_input_channels"] > 0]
            found = f"input devices: {', '.join(inputs)}" if inputs else "this machine has no audio input device"
            wanted = "no default input device" if device is None else f"no input device {device!r}"
            raise AudioDeviceError(
                f"{wanted} ({error}); {found}. Pass --device, or play a file with --input FILE --realtime"
            ) from error
        self.device = device
        self.name = info["name"]
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        self.channels = channels
        self.block_frames = max(round(block_seconds * self.sample_rate), 1)

    def _devices(self) -> list[dict[str, Any]]:
        try:
            return list(self._sd.query_devices())
        except self._sd.PortAudioError:
            return []

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        blocks: queue.Queue[tuple[np.ndarray, float]] = queue.Queue()

        def record(data: np.ndarray, frames: int, times: Any, status: Any) -> None:
            blocks.put((data.copy(), time.perf_counter()))

        try:
            stream = self._sd.InputStream(
                device=self.device,
                channels=self.channels,
                samplerate=self.sample_rate,
                blocksize=self.block_frames,
                dtype="float32",
                callback=record,
            )
        except self._sd.PortAudioError as error:
            raise AudioDeviceError(f"cannot open input device {self.name!r}: {error}") from error
        with stream:
            while True:
                try:
                    waiting = [blocks.get(timeout=0.5)]  # a timeout, so that Ctrl-C is seen even when no block comes
                except queue.Empty:
                    continue
                while not blocks.empty():  # a consumer that fell behind gets its backlog as one piece
                    waiting.append(blocks.get_nowait())
                yield np.concatenate([data for data, _ in waiting]), waiting[-1][1]
