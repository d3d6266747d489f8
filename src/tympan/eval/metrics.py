"""Evaluation metrics of the papers: tagging (macro mAP, ROC AUC, d-prime) and scenes (accuracy per device).

Tagging follows EfficientAT / PaSST: per-class average precision and ROC AUC (sklearn's definitions), then the
unweighted mean over classes; d-prime is ``sqrt(2) * Phi^-1(AUC)`` (AudioSet convention; not computed by the
reference code). Scenes follow the DCASE23 reference: micro accuracy, macro (class-averaged) accuracy, accuracy per
recording device and pooled over device groups (e.g. seen vs unseen), and the confusion matrix.

All functions take numpy arrays (or anything ``np.asarray`` accepts) and return plain Python numbers / lists, so
the results go straight into JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = [
    "accuracy",
    "average_precision_per_class",
    "classification_metrics",
    "confusion_matrix",
    "d_prime",
    "macro_accuracy",
    "mean_average_precision",
    "roc_auc_per_class",
    "tagging_metrics",
]


def _check_2d(targets: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.shape != scores.shape or targets.ndim != 2:
        raise DataError(f"targets and scores must both be [clips, classes]; got {targets.shape} and {scores.shape}")
    return targets > 0.5, scores


def average_precision_per_class(targets: Any, scores: Any) -> np.ndarray:
    """Average precision of each class (sklearn's step-wise definition, ties handled as one threshold).

    Args:
        targets: ``[clips, classes]`` binary (or soft, thresholded at 0.5) labels.
        scores: ``[clips, classes]`` logits or probabilities (any monotonic score).

    Returns:
        ``[classes]`` float64; NaN for a class without positives.
    """
    targets, scores = _check_2d(targets, scores)
    result = np.full(targets.shape[1], np.nan)
    for c in range(targets.shape[1]):
        positives = targets[:, c].sum()
        if positives == 0:
            continue
        order = np.argsort(-scores[:, c], kind="mergesort")
        sorted_scores, hits = scores[order, c], targets[order, c]
        # Keep the last index of each run of tied scores: one operating point per distinct threshold.
        last = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(sorted_scores) - 1]
        true_positives = np.cumsum(hits)[last]
        precision = true_positives / (last + 1)
        recall_steps = np.diff(np.r_[0, true_positives]) / positives
        result[c] = float(np.sum(recall_steps * precision))
    return result


def roc_auc_per_class(targets: Any, scores: Any) -> np.ndarray:
    """ROC AUC of each class (Mann-Whitney statistic with average ranks for ties); NaN if a class is constant."""
    targets, scores = _check_2d(targets, scores)
    result = np.full(targets.shape[1], np.nan)
    for c in range(targets.shape[1]):
        positives = int(targets[:, c].sum())
        negatives = len(targets) - positives
        if positives == 0 or negatives == 0:
            continue
        ranks = _average_ranks(scores[:, c])
        result[c] = (ranks[targets[:, c]].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    return result


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_values))[0] + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks = np.empty(len(values))
    ranks[order] = ranks_sorted
    return ranks


def mean_average_precision(targets: Any, scores: Any) -> float:
    """Macro mAP over the classes that have at least one positive."""
    return float(np.nanmean(average_precision_per_class(targets, scores)))


def d_prime(auc: float) -> float:
    """Sensitivity index ``sqrt(2) * Phi^-1(auc)`` of a ROC AUC (AudioSet papers' d')."""
    auc = min(max(auc, 1e-12), 1 - 1e-12)
    return math.sqrt(2.0) * NormalDist().inv_cdf(auc)


def tagging_metrics(targets: Any, scores: Any, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Macro mAP, macro ROC AUC and d-prime of multi-label predictions, plus the per-class values.

    Args:
        targets: ``[clips, classes]`` binary labels.
        scores: ``[clips, classes]`` logits or probabilities.
        labels: class names for the per-class entries (default: indices as strings).
    """
    ap = average_precision_per_class(targets, scores)
    auc = roc_auc_per_class(targets, scores)
    mean_auc = float(np.nanmean(auc))
    names = list(labels) if labels is not None else [str(i) for i in range(len(ap))]
    return {
        "mAP": float(np.nanmean(ap)),
        "roc_auc": mean_auc,
        "d_prime": d_prime(mean_auc),
        "average_precision_per_class": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, ap, strict=True)},
    }


def accuracy(targets: Any, predictions: Any) -> float:
    """Fraction of clips whose predicted class equals the target class."""
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    if len(targets) == 0:
        raise DataError("accuracy of an empty set is undefined: no clips were evaluated")
    return float(np.mean(targets == predictions))


def macro_accuracy(targets: Any, predictions: Any) -> float:
    """Mean over the classes present in ``targets`` of the per-class accuracy (DCASE24's primary metric)."""
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    return float(np.mean([np.mean(predictions[targets == c] == c) for c in np.unique(targets)]))


def confusion_matrix(targets: Any, predictions: Any, num_classes: int) -> np.ndarray:
    """``[num_classes, num_classes]`` counts; row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def classification_metrics(
    targets: Any,
    scores: Any,
    labels: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    device_groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Single-label metrics: accuracy, macro accuracy, per class, per device and per device group.

    Args:
        targets: ``[clips]`` class indices.
        scores: ``[clips, classes]`` logits or probabilities.
        labels: class names (default: indices as strings).
        devices: recording device of each clip (e.g. TAU22's ``a``, ``s4``); enables the per-device entries.
        device_groups: pooled accuracy over named groups of devices, e.g. ``{"seen": ["a", "b", "c", "s1", "s2",
            "s3"], "unseen": ["s4", "s5", "s6"]}``; groups without clips are left out.

    Returns:
        ``accuracy``, ``macro_accuracy``, ``accuracy_per_class``, ``confusion_matrix`` (nested lists) and, with
        devices, ``accuracy_per_device`` and ``accuracy_per_device_group``.
    """
    targets = np.asarray(targets, dtype=np.int64)
    scores = np.asarray(scores)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise DataError(f"scores must be [clips, classes] with {len(targets)} clips; got shape {scores.shape}")
    predictions = scores.argmax(axis=1)
    num_classes = scores.shape[1]
    names = list(labels) if labels is not None else [str(i) for i in range(num_classes)]
    result: dict[str, Any] = {
        "accuracy": accuracy(targets, predictions),
        "macro_accuracy": macro_accuracy(targets, predictions),
        "accuracy_per_class": {
            names[c]: float(np.mean(predictions[targets == c] == c)) for c in np.unique(targets).tolist()
        },
        "confusion_matrix": confusion_matrix(targets, predictions, num_classes).tolist(),
    }
    if devices is not None:
        devices = np.asarray(devices)
        if len(devices) != len(targets):
            raise DataError(f"got {len(devices)} device names for {len(targets)} clips")
        result["accuracy_per_device"] = {
            str(d): accuracy(targets[devices == d], predictions[devices == d]) for d in sorted(set(devices.tolist()))
        }
        groups = {}
        for name, members in (device_groups or {}).items():
            mask = np.isin(devices, list(members))
            if mask.any():
                groups[name] = accuracy(targets[mask], predictions[mask])
        result["accuracy_per_device_group"] = groups
    return result
