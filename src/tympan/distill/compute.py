"""Run one teacher or an ensemble once over a dataset and store the (averaged) logits by clip id.

Each teacher runs with its own mel frontend (the DCASE23 ensemble mixes PaSST at 128 mels / hop 320 with CP-ResNet
at 256 mels / hop 750), in eval mode; the ensemble output is the mean of the members' logits, as the references'
``EnsemblerModel`` computes it. The clips go through the batch engine (:mod:`tympan.distill.job`), here or under
``Trainer.predict`` on many GPUs or nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..audio.frontend import MelFrontend
from ..data.decode import ClipLoader
from ..data.metadata import ClipTable, read_data
from ..engine import Record, run_sources
from ..errors import ConfigError, DataError
from ..models.bundles import bundle, frontend_of
from ..models.spec import ModelSpec, spec_of
from .job import TeacherEnsemble, TeacherLogitsJob
from .store import TeacherLogitStore, write_store

__all__ = ["compute_teacher_logits"]

logger = logging.getLogger(__name__)


def _teacher(teacher: str | nn.Module, device: torch.device) -> tuple[str, nn.Module, MelFrontend, ModelSpec]:
    """Name, network, frontend and spec of a teacher: a module with a spec, a preset (official weights) or a
    tympan checkpoint file."""
    if isinstance(teacher, nn.Module):
        spec = spec_of(teacher)
        name, model, frontend = spec.preset or type(teacher).__name__, teacher.eval(), frontend_of(teacher)
    else:
        source = bundle(teacher)
        name, model, frontend, spec = teacher, source.get_model(), source.get_frontend(), source.spec
    return name, model.to(device), frontend.to(device), spec


def compute_teacher_logits(
    teachers: Sequence[str | nn.Module],
    data: str | Path | ClipTable,
    out: str | Path,
    *,
    clip_seconds: float | None = 10.0,
    batch_size: int = 16,
    num_workers: int | None = None,
    device: str | None = None,
    cache_dir: str | None = None,
    trainer: dict[str, Any] | None = None,
) -> TeacherLogitStore | None:
    """Compute the mean logits of ``teachers`` over every clip of ``data`` and save them as a store.

    The work runs on the batch engine (:mod:`tympan.distill.job`): clips decoded in worker processes, batched,
    and, with ``trainer``, under Lightning's ``Trainer.predict`` on many devices or nodes. Teachers that share a
    sample rate run as one job (each clip decoded once for all of them). A clip that cannot be read is left out of
    the store (training zeroes its distillation term, see :meth:`TeacherLogitStore.check`) and listed under
    ``failed`` in its provenance.

    Args:
        teachers: zoo presets (official weights), tympan checkpoint files, or models with a ``spec``
            (:func:`tympan.models.create`).
        data: any layout :func:`tympan.data.read_data` reads, or a :class:`ClipTable`.
        out: the store's path (``.npy``; the ``.json`` sidecar is written beside it).
        clip_seconds: clips are padded / cut to this length (None: full length; clips of one length share a
            forward pass).
        batch_size: clips per forward pass.
        num_workers: DataLoader worker processes (default: one per core; 0: all in this process).
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA where present.
        cache_dir: decoded-clip cache folder (shared with training).
        trainer: run under ``Trainer.predict`` with these options (as :func:`tympan.engine.tag_files`).

    Returns:
        the store, opened for reading; None on the ranks other than 0 of a ``trainer`` job.

    Raises:
        DataError: no clip could be read.
    """
    if not teachers:
        raise ConfigError("name at least one teacher")
    table = data if isinstance(data, ClipTable) else read_data(data)
    table.check_unique_ids()
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loaded = [_teacher(teacher, torch_device) for teacher in teachers]
    by_rate: dict[int, list[tuple[nn.Module, nn.Module]]] = {}
    for _, model, frontend, spec in loaded:
        by_rate.setdefault(spec.sample_rate, []).append((model, frontend))
    sources = [(clip.id, clip) for clip in table.records]
    total: np.ndarray | None = None
    failed: dict[str, str] = {}
    writes = True
    for rate, members in by_rate.items():
        loader = ClipLoader(rate, None if clip_seconds is None else round(clip_seconds * rate), cache_dir)
        job = TeacherLogitsJob(TeacherEnsemble(members, rate), loader, batch_size=batch_size)
        records = run_sources(job, sources, num_workers, trainer)
        if records is None:  # a rank other than 0: rank 0 writes the store
            writes = False
            continue
        total = _add(records, len(members), total, len(sources), failed)
        logger.info("teachers at %d Hz done (%d clips, %d failed)", rate, len(sources), len(failed))
    if not writes:
        return None
    if total is None:
        raise DataError(f"no clip of {table.name} could be read (e.g. {next(iter(failed.values()))})")
    if failed:
        logger.warning("%d clips could not be read and have no teacher logits (see 'failed' in the store)", len(failed))
    keep = [row for row, clip_id in enumerate(table.ids) if clip_id not in failed]
    provenance = {
        "teachers": [name for name, *_ in loaded],
        "frontends": [spec.frontend.to_dict() for *_, spec in loaded],
        "data": table.name,
        "labels": list(table.labels),
        "clip_seconds": clip_seconds,
        "failed": failed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = write_store(out, [table.ids[row] for row in keep], total[keep] / len(teachers), provenance)
    return TeacherLogitStore(path)


def _add(
    records: Iterator[Record], weight: int, total: np.ndarray | None, clips: int, failed: dict[str, str]
) -> np.ndarray | None:
    """``total`` plus ``weight`` times the logits of the records (the sum of the members'), rows by clip index; the
    clips that failed go into ``failed``, by id."""
    for record in tqdm(records, total=clips, desc="teacher logits", leave=False, disable=None):
        if record.error is not None:
            failed.setdefault(record.file, record.error)
            continue
        if total is None:
            total = np.zeros((clips, *record.logits.shape), dtype=np.float32)
        total[record.index] += weight * record.logits
    return total
