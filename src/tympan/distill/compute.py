"""Run one teacher or an ensemble once over a dataset and store the (averaged) logits by clip id.

Each teacher runs with its own mel frontend (the DCASE23 ensemble mixes PaSST at 128 mels / hop 320 with CP-ResNet
at 256 mels / hop 750), in eval mode; the ensemble output is the mean of the members' logits, as the references'
``EnsemblerModel`` computes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..audio.frontend import MelFrontend
from ..data.dataset import ClipDataset
from ..data.decode import ClipLoader
from ..data.metadata import ClipTable, read_data
from ..errors import ConfigError
from ..models.bundles import bundle, frontend_of
from ..models.spec import ModelSpec, spec_of
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
    num_workers: int = 0,
    device: str | None = None,
    cache_dir: str | None = None,
) -> TeacherLogitStore:
    """Compute the mean logits of ``teachers`` over every clip of ``data`` and save them as a store.

    Args:
        teachers: zoo presets (official weights), tympan checkpoint files, or models with a ``spec``
            (:func:`tympan.models.create`).
        data: any layout :func:`tympan.data.read_data` reads, or a :class:`ClipTable`.
        out: the store's path (``.npy``; the ``.json`` sidecar is written beside it).
        clip_seconds: clips are padded / cut to this length (None: full length, one clip per batch).
        batch_size: clips per forward pass.
        num_workers: DataLoader workers for decoding.
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA where present.
        cache_dir: decoded-clip cache folder (shared with training).

    Returns:
        the store, opened for reading.
    """
    if not teachers:
        raise ConfigError("name at least one teacher")
    table = data if isinstance(data, ClipTable) else read_data(data)
    table.check_unique_ids()
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    total = None
    names, frontends = [], []
    for teacher in teachers:
        name, model, frontend, spec = _teacher(teacher, torch_device)
        logits = _run(model, frontend, table, spec.sample_rate, clip_seconds, batch_size, num_workers, cache_dir,
                      torch_device)  # fmt: skip
        total = logits if total is None else total + logits
        names.append(name)
        frontends.append(spec.frontend.to_dict())
        logger.info("teacher %s done (%d clips)", name, len(table))
    provenance = {
        "teachers": names,
        "frontends": frontends,
        "data": table.name,
        "labels": list(table.labels),
        "clip_seconds": clip_seconds,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = write_store(out, table.ids, total / len(teachers), provenance)
    return TeacherLogitStore(path)


@torch.inference_mode()
def _run(model, frontend, table, rate, clip_seconds, batch_size, num_workers, cache_dir, device) -> np.ndarray:
    num_samples = None if clip_seconds is None else round(clip_seconds * rate)
    dataset = ClipDataset(table, ClipLoader(rate, num_samples, cache_dir))
    loader = DataLoader(dataset, batch_size=batch_size if num_samples else 1, num_workers=num_workers)
    outputs = []
    for batch in tqdm(loader, desc="teacher logits", leave=False, disable=None):
        mel = frontend(batch["audio"].to(device)).unsqueeze(1)
        outputs.append(model(mel).float().cpu())
    return torch.cat(outputs).numpy()
