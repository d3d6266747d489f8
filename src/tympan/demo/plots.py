"""The demo report's figures, drawn from the metrics dictionary alone (so they can be redrawn from metrics.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator  # the object API: no pyplot state, no window, any backend

__all__ = ["plot_confusion", "plot_per_device", "plot_training_curves"]

_DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def plot_per_device(models: Mapping[str, Mapping[str, Any]], unseen: Sequence[str], path: Path) -> Path:
    """Grouped bars: test accuracy per device for each model; unseen devices on a shaded background."""
    devices = list(next(iter(models.values()))["per_device"])
    names = list(models)
    width = 0.8 / len(names)
    figure = Figure(figsize=(10, 4.8))
    axes = figure.subplots()
    for index, device in enumerate(devices):
        if device in unseen:
            axes.axvspan(index - 0.45, index + 0.45, color="0.92", zorder=0)
    positions = np.arange(len(devices))
    for offset, name in enumerate(names):
        values = [100 * models[name]["per_device"][d] for d in devices]
        axes.bar(positions - 0.4 + width * (offset + 0.5), values, width, label=name, zorder=2)
    axes.set_xticks(positions, [f"{d}\n(unseen)" if d in unseen else d for d in devices])
    axes.set_ylabel("test accuracy (%)")
    axes.set_ylim(0, 100)
    axes.set_title("Accuracy per recording device (shaded: devices never seen in training)")
    axes.grid(axis="y", alpha=0.3, zorder=1)
    axes.legend(fontsize=8, ncols=min(len(names), 3), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return _save(figure, path)


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (rows: true scene) with the percentages written in the cells."""
    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure = Figure(figsize=(7.5, 6.5))
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(labels)):
        for column in range(len(labels)):
            if share[row, column] >= 0.05:
                colour = "white" if share[row, column] > 0.6 else "black"
                axes.text(
                    column, row, f"{100 * share[row, column]:.0f}", ha="center", va="center", fontsize=7, color=colour
                )
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted scene")
    axes.set_ylabel("true scene")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true scene's clips")
    return _save(figure, path)


def plot_training_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """Training loss and validation accuracy per epoch, one line per model."""
    figure = Figure(figsize=(10, 3.8))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for name, curve in curves.items():
        epochs = np.arange(1, len(curve["train_loss"]) + 1)
        loss_axes.plot(epochs, curve["train_loss"], marker="o", markersize=3, label=name)
        accuracy_axes.plot(epochs, 100 * np.asarray(curve["val_accuracy"]), marker="o", markersize=3, label=name)
    loss_axes.set_title("training loss (task + KD terms)")
    accuracy_axes.set_title("validation accuracy (%)")
    for axes in (loss_axes, accuracy_axes):
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    accuracy_axes.legend(fontsize=8)
    return _save(figure, path)
