"""Evaluation metrics of the papers: tagging (macro mAP, ROC AUC, d-prime) and scenes (accuracy per device).

Tagging follows EfficientAT / PaSST: per-class average precision and ROC AUC (sklearn's definitions), then the
unweighted mean over classes; d-prime is ``sqrt(2) * Phi^-1(AUC)`` (AudioSet convention; not computed by the
reference code). Scenes follow the DCASE23 reference: micro accuracy, macro (class-averaged) accuracy, accuracy per
recording device and pooled over device groups (e.g. seen vs unseen), and the confusion matrix. Retrieval follows
DCASE 2023 Task 6b (every caption a query over all clips; mAP@10 and R@1/5/10) with a documented tie rule.

All functions take numpy arrays (or anything ``np.asarray`` accepts) and return plain Python numbers / lists, so
the results go straight into JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = [
    "accuracy",
    "average_precision_per_class",
    "classification_metrics",
    "confusion_matrix",
    "d_prime",
    "macro_accuracy",
    "mean_average_precision",
    "retrieval_metrics",
    "retrieval_ranks",
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


# --- retrieval (DCASE 2023 Task 6b) ------------------------------------------------------------------------------

_TIE_RULES = ("pessimistic", "index")


def _relevance(target: Any, shape: tuple[int, int]) -> np.ndarray:
    """``[queries, items]`` bool relevance from clip indices ``[queries]``, index sets, or a bool matrix."""
    queries, items = shape
    if isinstance(target, np.ndarray) and target.dtype == bool:
        if target.shape != shape:
            raise DataError(f"a relevance matrix must have the similarity's shape {shape}; got {target.shape}")
        relevance = target.copy()
    else:
        relevance = np.zeros(shape, dtype=bool)
        if len(target) != queries:
            raise DataError(f"got {len(target)} targets for {queries} queries (rows of the similarity matrix)")
        for query, relevant in enumerate(target):
            indices = np.atleast_1d(np.asarray(relevant, dtype=np.int64))
            if indices.size and (indices.min() < 0 or indices.max() >= items):
                raise DataError(f"query {query}: target index out of range for {items} items: {indices.tolist()}")
            relevance[query, indices] = True
    if not relevance.any(axis=1).all():
        raise DataError(f"queries without a relevant item: {np.flatnonzero(~relevance.any(axis=1))[:10].tolist()}")
    return relevance


def retrieval_ranks(similarity: Any, target: Any, *, tie: str = "pessimistic") -> list[np.ndarray]:
    """1-based ranks of the relevant items of each query, ascending.

    Items are sorted by decreasing similarity. Tie rule (deterministic, unlike the reference's ``torch.topk``):

    * ``"pessimistic"`` (default): among equal scores, every irrelevant item ranks before the relevant ones, so a
      single target's rank is the number of items scoring at least as high as it (itself included). A model
      that outputs constant scores therefore gets no credit.
    * ``"index"``: equal scores keep item index order (a stable sort).

    Relevant items tied with each other are ordered by index under both rules, so the ranks are distinct.

    Args:
        similarity: ``[queries, items]`` scores (e.g. caption x clip cosine similarities).
        target: the relevant item of each query (``[queries]`` ints), or a set of relevant items per query
            (a sequence of index sequences), or a ``[queries, items]`` bool matrix.
        tie: ``"pessimistic"`` or ``"index"``.

    Raises:
        DataError: shapes do not fit, a score is NaN, or a query has no relevant item.
        ConfigError: unknown tie rule.
    """
    if tie not in _TIE_RULES:
        raise ConfigError(f"unknown tie rule {tie!r}; choose one of {_TIE_RULES}")
    scores = np.asarray(similarity, dtype=np.float64)
    if scores.ndim != 2:
        raise DataError(f"similarity must be [queries, items]; got shape {scores.shape}")
    if np.isnan(scores).any():
        raise DataError("the similarity matrix holds NaN; check the embeddings for non-finite values")
    relevance = _relevance(target, scores.shape)
    index = np.arange(scores.shape[1])
    ranks = []
    for row, relevant in zip(scores, relevance, strict=True):
        targets = np.flatnonzero(relevant)
        target_scores = row[targets, None]
        higher = (row[None] > target_scores).sum(axis=1)
        tied = row[None] == target_scores
        tied_before = tied & (index[None] <= targets[:, None])  # ties up to and including the item itself
        if tie == "pessimistic":
            tied_before = (tied & ~relevant[None]) | (tied_before & relevant[None])
        ranks.append(np.sort(higher + tied_before.sum(axis=1)))
    return ranks


def retrieval_metrics(
    similarity: Any,
    target: Any,
    *,
    ks: Sequence[int] = (1, 5, 10),
    map_k: int = 10,
    tie: str = "pessimistic",
) -> dict[str, float]:
    """mAP@k and R@k of a retrieval run, exactly as DCASE 2023 Task 6b defines them.

    With one relevant item per query (DCASE 2023), AP@k is ``1 / rank`` if ``rank <= k`` else 0, and R@k is the
    fraction of queries whose item ranks within the top k. With several relevant items (DCASE 2025 style), AP@k is
    ``sum(precision@rank over relevant items ranked <= k) / min(#relevant, k)`` and R@k the fraction of queries
    with at least one relevant item in the top k. Ties follow :func:`retrieval_ranks`.

    Args:
        similarity: ``[queries, items]`` scores, e.g. ``text_embeddings @ audio_embeddings.T``.
        target: as for :func:`retrieval_ranks`; for Clotho with 5 captions per clip, ``np.arange(Q) // 5``.
        ks: cut-offs of the recalls.
        map_k: cut-off of the mean average precision.
        tie: ``"pessimistic"`` (default) or ``"index"``.

    Returns:
        ``{"mAP@10": ..., "R@1": ..., "R@5": ..., "R@10": ...}`` (keys follow ``map_k`` and ``ks``).
    """
    ranks = retrieval_ranks(similarity, target, tie=tie)
    average_precisions = []
    for query_ranks in ranks:
        within = query_ranks[query_ranks <= map_k]
        precision = np.arange(1, len(within) + 1) / within
        average_precisions.append(precision.sum() / min(len(query_ranks), map_k))
    result = {f"mAP@{map_k}": float(np.mean(average_precisions))}
    first = np.array([query_ranks[0] for query_ranks in ranks])
    result.update({f"R@{k}": float(np.mean(first <= k)) for k in ks})
    return result
