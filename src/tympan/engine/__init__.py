"""The batch engine: tag, embed and time-line files, folders and hours of audio at the machine's speed.

``tag_files``, ``embed_files`` and ``timeline`` take files and folders and yield one :class:`Record` per file, in
order, errors included (a bad file never stops a job). Decoding, the mono mix and resampling run in DataLoader
worker processes (on the CPU the network too, one thread each); whole files of equal length share a forward pass;
long files are cut into independent segments, each read on its own (flat memory, and one long file uses every
core). ``tympan tag`` / ``tympan embed`` and :func:`tympan.embed` are thin layers over these functions;
:mod:`tympan.engine.predict` runs the same work under Lightning's ``Trainer.predict`` on many GPUs or nodes.

Example:
    >>> from tympan.engine import load_network, tag_files
    >>> network = load_network("mn10_as")
    >>> for record in tag_files(network, ["recordings/"]):
    ...     print(record.to_dict(top_k=3))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.io import AUDIO_EXTENSIONS, find_audio_files
from .jobs import LONG_FILE_SECONDS, EmbedJob, TagJob, TimelineJob
from .network import Network, as_network, load_network
from .records import Record, error_message, resume, save_periodically
from .runner import default_workers, run_job, run_one, source_of

__all__ = [
    "AUDIO_EXTENSIONS",
    "LONG_FILE_SECONDS",
    "Network",
    "Record",
    "default_method",
    "default_workers",
    "embed",
    "embed_files",
    "error_message",
    "find_audio_files",
    "load_network",
    "resume",
    "run_files",
    "run_sources",
    "save_periodically",
    "tag_files",
    "timeline",
]

PathLike = str | Path


def run_files(job: Any, paths: Iterable[PathLike], workers: int | None, trainer: dict[str, Any] | None) -> Any:
    """The records of ``job`` over the audio files of ``paths`` (see :func:`run_sources`)."""
    return run_sources(job, [(str(path), str(path)) for path in find_audio_files(paths)], workers, trainer)


def run_sources(
    job: Any, sources: Sequence[tuple[str, Any]], workers: int | None, trainer: dict[str, Any] | None
) -> Any:
    """The records of ``job`` over ``(name, source)`` pairs: here, or under ``Trainer.predict`` with ``trainer``
    options (``shards``: the folder of the rank shards; the others go to :class:`lightning.Trainer`), where only
    rank 0 gets the records and the other ranks get None."""
    if trainer is None:
        return run_job(job, sources, workers=workers)
    from .predict import predict_records

    options = dict(trainer)
    return predict_records(job, sources, options.pop("shards"), workers=workers or 0, **options)


def tag_files(
    network: Any, paths: Iterable[PathLike], *, workers: int | None = None, trainer: dict[str, Any] | None = None
) -> Iterator[Record]:
    """Class scores (:attr:`Record.scores`) of every file named or under the folders named.

    Args:
        network: a :class:`Network` (:func:`load_network`) or an :class:`~tympan.pipeline.AudioPipeline`.
        paths: audio files and folders (searched recursively for :data:`AUDIO_EXTENSIONS`).
        workers: DataLoader worker processes (default: one per core; 0: all in this process).
        trainer: run under Lightning's ``Trainer.predict`` (:mod:`tympan.engine.predict`) with these options
            (``accelerator``, ``devices``, ``num_nodes``, ``strategy``, and ``shards``: a folder all ranks see);
            then only rank 0 gets the records and the other ranks get None.
    """
    return run_files(TagJob(as_network(network)), paths, workers, trainer)


def embed_files(
    network: Any,
    paths: Iterable[PathLike],
    *,
    timestamps: str | None = None,
    workers: int | None = None,
    trainer: dict[str, Any] | None = None,
) -> Iterator[Record]:
    """The embedding (:attr:`Record.embedding`) of every file: one forward pass of a file up to
    :data:`LONG_FILE_SECONDS`, the mean of its clip-length windows' embeddings beyond (see
    :mod:`tympan.engine.jobs`); with ``timestamps`` (a HEAR variant: ``"base"``, ``"2level"``, ``"2levelmel"``),
    HEAR timestamp embeddings and :attr:`Record.timestamps` instead. Other arguments as :func:`tag_files`."""
    return run_files(EmbedJob(as_network(network), timestamps=timestamps), paths, workers, trainer)


def embed(network: Any, audio: Any, sample_rate: int | None = None, *, workers: int | None = None) -> np.ndarray:
    """The embedding ``[D]`` of a file or waveform, or ``[batch, D]`` of a list of them or a ``[batch, samples]``
    array: the definition of :func:`embed_files` (what ``tympan embed`` writes).

    Raises:
        AudioLoadError: an input cannot be read.
    """
    network = as_network(network)
    single = isinstance(audio, (str, Path)) or getattr(audio, "ndim", None) == 1
    inputs = [audio] if single else list(audio)
    embeddings = []
    for one in inputs:
        record = run_one(EmbedJob(network), *source_of(network, one, sample_rate), workers=workers)
        embeddings.append(record.embedding)
    return embeddings[0] if single else np.stack(embeddings)


def default_method(network: Network, window: float, hop: float | None, tail: str = "end") -> str:
    """``"pooled"`` where it applies (an EfficientAT CNN, a window that is a multiple of the hop, ``tail="end"``):
    scores within 1e-3 of the exact windows' (``benchmarks/bench_engine.py``) for ~``window / hop`` times less
    work; else ``"windows"``."""
    rate = network.sample_rate
    hop_samples = round((hop or window) * rate)
    fits = round(window * rate) % hop_samples == 0
    return "pooled" if network.poolable and fits and tail == "end" else "windows"


def timeline(
    network: Any,
    paths: Iterable[PathLike],
    *,
    window: float | None = None,
    hop: float | None = None,
    method: str = "auto",
    tail: str = "end",
    threshold: float = 0.5,
    median_windows: int = 3,
    workers: int | None = None,
    trainer: dict[str, Any] | None = None,
) -> Iterator[Record]:
    """Scores per window (:attr:`Record.timeline`) and events (:attr:`Record.events`) of every file.

    Args:
        network: as :func:`tag_files`.
        paths: as :func:`tag_files`.
        window: window length in seconds (default: the model's clip length).
        hop: step in seconds (default: the window).
        method: ``"windows"`` (every window through the network, exact), ``"pooled"`` (EfficientAT feature maps
            computed once and pooled per window) or ``"auto"`` (:func:`default_method`).
        tail: where the last window goes (see :func:`tympan.tagging.timeline`).
        threshold: event threshold on the median-filtered scores (see :func:`tympan.tagging.detect_events`).
        median_windows: median filter length in windows.
        workers: as :func:`tag_files`.
        trainer: as :func:`tag_files`.
    """
    network = as_network(network)
    if method == "auto":
        method = default_method(network, window or network.clip_samples / network.sample_rate, hop, tail)
    job = TimelineJob(
        network,
        window=window,
        hop=hop,
        method=method,
        tail=tail,
        threshold=threshold,
        median_windows=median_windows,
    )
    return run_files(job, paths, workers, trainer)
