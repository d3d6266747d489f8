"""Metrics against sklearn and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tympan.errors import DataError
from tympan.eval import metrics


def test_average_precision_and_auc_match_sklearn_with_ties():
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 7)) < 0.3).astype(np.int64)
    scores = np.round(rng.normal(size=(200, 7)) + targets, 1)  # rounding creates ties
    ap = metrics.average_precision_per_class(targets, scores)
    auc = metrics.roc_auc_per_class(targets, scores)
    np.testing.assert_allclose(ap, average_precision_score(targets, scores, average=None), atol=1e-12)
    np.testing.assert_allclose(auc, roc_auc_score(targets, scores, average=None), atol=1e-12)
    assert metrics.mean_average_precision(targets, scores) == pytest.approx(ap.mean())


def test_tagging_metrics_hand_values_and_missing_class():
    targets = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    result = metrics.tagging_metrics(targets, scores, labels=["dog", "cat"])
    # Class 0: ranking 0.9 (hit), 0.8 (miss), 0.1 (hit): AP = 0.5 * 1 + 0.5 * 2/3.
    assert result["mAP"] == pytest.approx(0.5 + 1 / 3)
    assert result["average_precision_per_class"]["cat"] is None
    assert result["roc_auc"] == pytest.approx(0.5)
    assert result["d_prime"] == pytest.approx(0.0, abs=1e-9)
    assert metrics.d_prime(0.9) == pytest.approx(math.sqrt(2) * 1.2815515655446004)


def test_classification_metrics_per_device_and_groups():
    targets = np.array([0, 0, 1, 1, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 1, 0, 2]]
    devices = ["a", "a", "b", "s4", "s4", "s4"]
    result = metrics.classification_metrics(
        targets, scores, labels=["x", "y", "z"], devices=devices, device_groups={"seen": ["a", "b"], "unseen": ["s4"]}
    )
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["macro_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert result["accuracy_per_class"] == {"x": 0.5, "y": 1.0, "z": 0.5}
    assert result["accuracy_per_device"] == {"a": 0.5, "b": 1.0, "s4": pytest.approx(2 / 3)}
    assert result["accuracy_per_device_group"] == {"seen": pytest.approx(2 / 3), "unseen": pytest.approx(2 / 3)}
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_shape_errors_are_data_errors():
    with pytest.raises(DataError):
        metrics.tagging_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(DataError):
        metrics.classification_metrics([0, 1], np.zeros((3, 2)))
