"""Decode, resample and cut clips to a fixed length, with an optional on-disk cache of the result.

Decoding and resampling (:func:`tympan.audio.io.load_audio`: the same samples as the references'
``librosa.load(sr=32000)``; also for the mp3 bytes of the HDF5 layout) dominate the cost of a training epoch on
small models. With a cache folder, each clip is decoded once and then memory-mapped from a ``.npy`` file keyed by
its source, row, size, modification time and the target rate.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..audio.io import load_audio
from ..errors import AudioLoadError, ConfigError
from ..files import atomic_path
from .metadata import ClipRecord

__all__ = ["ClipLoader", "fit_length"]

logger = logging.getLogger(__name__)


def fit_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or keep the first ``num_samples`` samples (the references' pad-or-truncate)."""
    if len(waveform) >= num_samples:
        return waveform[:num_samples]
    return np.pad(waveform, (0, num_samples - len(waveform)))


class ClipLoader:
    """Turns a :class:`ClipRecord` into a mono float32 waveform at ``sample_rate``.

    Args:
        sample_rate: output rate in Hz.
        num_samples: pad or cut every clip to this length; None keeps the full length.
        cache_dir: folder of the decoded-and-resampled cache (created on demand); None disables caching.
    """

    def __init__(self, sample_rate: int, num_samples: int | None = None, cache_dir: str | Path | None = None):
        if sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._hdf5_files: dict[str, object] = {}  # opened lazily, once per worker process

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_hdf5_files"] = {}  # h5py handles must not cross process boundaries
        return state

    def __call__(self, record: ClipRecord) -> np.ndarray:
        """The waveform ``[samples]`` of ``record``.

        Raises:
            AudioLoadError: the audio cannot be decoded; the message names the file (and HDF5 row).
        """
        cached = self._cache_path(record)
        if cached is not None and cached.exists():
            waveform = np.load(cached, mmap_mode="r")
        else:
            waveform = self._decode(record)
            if cached is not None:
                self._store(cached, waveform)
        if self.num_samples is not None:
            waveform = fit_length(waveform, self.num_samples)
        return np.array(waveform, dtype=np.float32)

    def _decode(self, record: ClipRecord) -> np.ndarray:
        if record.row is None:
            return load_audio(record.source, self.sample_rate)
        try:
            encoded = self._hdf5_bytes(record)
        except (OSError, KeyError, IndexError, ValueError) as error:
            raise AudioLoadError(f"cannot read row {record.row} of {record.source}: {error}") from None
        try:
            return load_audio(io.BytesIO(encoded), self.sample_rate)
        except AudioLoadError as error:
            raise AudioLoadError(f"{record.source}, row {record.row} ({record.id}): {error}") from None

    def _hdf5_bytes(self, record: ClipRecord) -> bytes:
        import h5py

        file = self._hdf5_files.get(record.source)
        if file is None:
            file = self._hdf5_files[record.source] = h5py.File(record.source, "r")
        return file["mp3"][record.row].tobytes()

    def _cache_path(self, record: ClipRecord) -> Path | None:
        if self.cache_dir is None:
            return None
        try:
            stat = os.stat(record.source)
        except OSError:
            return None  # decoding will report the missing file
        key = f"{os.path.abspath(record.source)}|{record.row}|{stat.st_size}|{stat.st_mtime_ns}|{self.sample_rate}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    @staticmethod
    def _store(path: Path, waveform: np.ndarray) -> None:
        """Write atomically, so that concurrent workers never read a half-written file."""
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            np.save(file, waveform)
