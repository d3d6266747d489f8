"""Evaluate a model on a dataset: metrics as a dict, written as JSON, and plots as PNG.

Tagging models (multi-label) get macro mAP, ROC AUC and d-prime with per-class AP; scene / classification models
get accuracy, macro accuracy, per-class and per-device accuracy (pooled over seen and unseen devices) and the
confusion matrix. The model comes with its own frontend and labels (:func:`tympan.load`), so a zoo name or a
self-describing checkpoint is all it needs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.dataset import ClipDataset
from ..data.decode import ClipLoader
from ..data.metadata import ClipTable, read_data
from ..errors import DataError
from ..files import write_atomically
from . import metrics

__all__ = ["evaluate", "plot_results"]

logger = logging.getLogger(__name__)


def _select_split(table: ClipTable, split: str | None) -> ClipTable:
    splits = {r.split for r in table.records}
    if split == "auto":
        split = "test" if "test" in splits else None
    return table if split is None else table.where(split=split)


def _in_model_order(table: ClipTable, labels: list[str]) -> ClipTable:
    """``table`` with its targets re-indexed to the model's label order."""
    unknown = sorted(set(table.labels) - set(labels))
    if unknown:
        raise DataError(f"labels of {table.name} unknown to the model: {unknown[:10]}; use a model trained on them")
    index = {name: i for i, name in enumerate(labels)}
    records = tuple(
        replace(r, targets=tuple(sorted(index[table.labels[t]] for t in r.targets))) for r in table.records
    )
    return replace(table, records=records, labels=tuple(labels))


def _device_groups(table: ClipTable, evaluated: ClipTable) -> dict[str, list[str]]:
    """Seen = devices with training clips, unseen = the others (TAU22: s4-s6); empty without a train split."""
    seen = {r.device for r in table.records if r.split == "train" and r.device}
    if not seen:
        return {}
    unseen = sorted(set(evaluated.device_names) - seen)
    return {"seen": sorted(seen), "unseen": unseen}


@torch.inference_mode()
def _predict(pipeline: Any, table: ClipTable, clip_seconds: float, batch_size: int) -> np.ndarray:
    rate = pipeline.frontend_config.sample_rate
    dataset = ClipDataset(table, ClipLoader(rate, round(clip_seconds * rate)))
    outputs = []
    for batch in DataLoader(dataset, batch_size=batch_size):
        logits, _ = pipeline.forward_waveforms(batch["audio"].to(pipeline.device))
        outputs.append(logits.float().cpu())
    return torch.cat(outputs).numpy()


def evaluate(
    model: str,
    data: str | Path,
    *,
    checkpoint: str | Path | None = None,
    split: str | None = "auto",
    clip_seconds: float | None = None,
    batch_size: int = 32,
    device: str | None = None,
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on the clips of ``data``.

    Args:
        model: a zoo preset, or a self-describing ``.ckpt`` file (``tympan finetune`` / ``tympan train`` output).
        data: any layout :func:`tympan.data.read_data` reads; its labels must be among the model's labels.
        checkpoint: weights for a preset (default: the official ones).
        split: ``"auto"`` (the ``test`` split where the data has one, else all clips), a split name, or None (all).
        clip_seconds: clip length (default: the model's training clip length).
        batch_size: clips per forward pass.
        device: torch device (default: CUDA where present).
        output_dir: where to write ``metrics.json`` and the PNG plots (nothing written if None).

    Returns:
        the metrics, plus ``model``, ``data`` and ``clips``.

    Raises:
        DataError: a label of the data is unknown to the model, or no clips are selected.
    """
    from ..pipeline import load

    pipeline = load(model, checkpoint=checkpoint, device=device)  # a name, or a tympan checkpoint file
    table = _in_model_order(read_data(data), pipeline.labels)
    evaluated = _select_split(table, split)
    if len(evaluated) == 0:
        raise DataError(f"no clips of {data} in split {split!r}")
    logits = _predict(pipeline, evaluated, clip_seconds or pipeline.clip_seconds, batch_size)
    if pipeline.multilabel:
        result = metrics.tagging_metrics(evaluated.target_matrix(), logits, pipeline.labels)
    else:
        targets = [r.targets[0] for r in evaluated.records]
        devices = [r.device for r in evaluated.records] if evaluated.device_names else None
        groups = _device_groups(table, evaluated)
        result = metrics.classification_metrics(targets, logits, pipeline.labels, devices, groups)
        result["device_groups"] = groups
    result.update({"model": str(model), "data": str(data), "clips": len(evaluated), "labels": list(pipeline.labels)})
    if output_dir is not None:
        output_dir = Path(output_dir)
        write_atomically(output_dir / "metrics.json", json.dumps(result, indent=1))
        result["plots"] = [str(p) for p in plot_results(result, output_dir)]
    return result


def plot_results(result: dict[str, Any], output_dir: Path) -> list[Path]:
    """PNG plots of an :func:`evaluate` result: confusion matrix and per-device accuracy, or per-class AP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "confusion_matrix" in result:
        matrix = np.asarray(result["confusion_matrix"], dtype=float)
        normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        labels = result["labels"]
        figure, axes = plt.subplots(figsize=(1 + 0.5 * len(labels), 1 + 0.5 * len(labels)))
        axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        axes.set_xticks(range(len(labels)), labels, rotation=90)
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(f"accuracy {result['accuracy']:.3f}")
        written.append(_save(figure, output_dir / "confusion_matrix.png"))
        if result.get("accuracy_per_device"):
            devices = result["accuracy_per_device"]
            figure, axes = plt.subplots(figsize=(1 + 0.6 * len(devices), 3))
            unseen = set(result.get("device_groups", {}).get("unseen", []))
            colours = ["tab:red" if d in unseen else "tab:blue" for d in devices]
            axes.bar(list(devices), list(devices.values()), color=colours)
            axes.set_ylim(0, 1)
            axes.set_ylabel("accuracy")
            axes.set_title("accuracy per device (red: unseen in training)")
            written.append(_save(figure, output_dir / "accuracy_per_device.png"))
    else:
        ap = {k: v for k, v in result["average_precision_per_class"].items() if v is not None}
        ranked = sorted(ap.items(), key=lambda item: item[1])
        shown = ranked[:15] + ranked[-15:] if len(ranked) > 30 else ranked
        figure, axes = plt.subplots(figsize=(6, 1 + 0.25 * len(shown)))
        axes.barh([name for name, _ in shown], [value for _, value in shown])
        axes.set_xlim(0, 1)
        axes.set_xlabel("average precision")
        axes.set_title(f"mAP {result['mAP']:.3f} (worst and best classes)")
        written.append(_save(figure, output_dir / "average_precision.png"))
    return written


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
