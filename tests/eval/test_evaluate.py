"""Plots of an evaluation result (the scene path runs end to end in tests/cli/test_finetune.py)."""

from __future__ import annotations

import numpy as np

from tympan.eval import metrics
from tympan.eval.evaluate import plot_results


def test_tagging_result_gets_an_average_precision_plot(tmp_path):
    rng = np.random.default_rng(0)
    targets = (rng.random((50, 40)) < 0.2).astype(int)
    result = metrics.tagging_metrics(targets, rng.normal(size=(50, 40)) + targets, [f"tag{i}" for i in range(40)])
    (path,) = plot_results(result, tmp_path)
    assert path.name == "average_precision.png" and path.stat().st_size > 0
