"""DCASE 2023 Task 6b retrieval metrics against hand-computed cases, the reference's top-k formula and chance."""

from __future__ import annotations

import numpy as np
import pytest

from tympan.errors import ConfigError, DataError
from tympan.eval.metrics import retrieval_metrics, retrieval_ranks


def _descending_row(target_rank: int, items: int) -> np.ndarray:
    """Scores items-1 .. 0 with item 0 moved to ``target_rank`` (1-based)."""
    order = list(range(1, items))
    order.insert(target_rank - 1, 0)
    row = np.empty(items)
    row[order] = np.arange(items, 0, -1)
    return row


def test_ranks_1_10_11_give_ap_1_tenth_and_zero():
    similarity = np.stack([_descending_row(rank, 12) for rank in (1, 10, 11)])
    assert [r.tolist() for r in retrieval_ranks(similarity, [0, 0, 0])] == [[1], [10], [11]]
    result = retrieval_metrics(similarity, [0, 0, 0])
    assert list(result) == ["mAP@10", "R@1", "R@5", "R@10"]
    assert result["mAP@10"] == pytest.approx((1 + 0.1 + 0) / 3)
    assert result["R@1"] == pytest.approx(1 / 3)
    assert result["R@5"] == pytest.approx(1 / 3)
    assert result["R@10"] == pytest.approx(2 / 3)


def test_five_captions_per_clip_row_div_5():
    # 2 clips, 10 captions; caption q targets clip q // 5. Clip 1 captions rank their clip second except one.
    similarity = np.array([[0.9, 0.1]] * 5 + [[0.8, 0.2]] * 4 + [[0.3, 0.7]])
    result = retrieval_metrics(similarity, np.arange(10) // 5)
    assert result["mAP@10"] == pytest.approx((5 * 1 + 4 * 0.5 + 1) / 10)
    assert result["R@1"] == pytest.approx(6 / 10)
    assert result["R@5"] == 1.0


def test_ties_pessimistic_and_index_rules():
    similarity = np.array([[0.5, 0.5, 0.5, 0.1], [0.5, 0.5, 0.5, 0.1]])
    # Target 1 tied with items 0 and 2: pessimistic rank 3, index order rank 2.
    # Target 0 tied likewise: pessimistic rank 3, index order rank 1.
    assert [r.tolist() for r in retrieval_ranks(similarity, [1, 0])] == [[3], [3]]
    assert [r.tolist() for r in retrieval_ranks(similarity, [1, 0], tie="index")] == [[2], [1]]
    assert retrieval_metrics(similarity, [1, 0])["mAP@10"] == pytest.approx(1 / 3)
    assert retrieval_metrics(similarity, [1, 0], tie="index")["mAP@10"] == pytest.approx((1 / 2 + 1) / 2)
    assert retrieval_metrics(similarity, [1, 0], tie="index")["R@1"] == 0.5


def test_constant_scores_get_no_credit_when_pessimistic():
    similarity = np.zeros((4, 20))
    result = retrieval_metrics(similarity, [0, 5, 10, 19])
    assert result == {"mAP@10": 0.0, "R@1": 0.0, "R@5": 0.0, "R@10": 0.0}
    assert retrieval_metrics(similarity, [0, 5, 10, 19], tie="index")["R@10"] == 0.5


def test_several_relevant_items_and_other_cutoffs():
    similarity = np.array([[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.1, 0.0]])
    target = [[0, 2], [1, 0]]  # query 1: two relevant items tied with each other at the top
    assert [r.tolist() for r in retrieval_ranks(similarity, target)] == [[1, 3], [1, 2]]
    result = retrieval_metrics(similarity, target, ks=(1, 2), map_k=2)
    assert list(result) == ["mAP@2", "R@1", "R@2"]
    # Query 0: AP@2 = (1/1) / min(2, 2); query 1: (1/1 + 2/2) / 2.
    assert result["mAP@2"] == pytest.approx((0.5 + 1.0) / 2)
    relevance = np.array([[True, False, True, False], [True, True, False, False]])
    assert retrieval_metrics(similarity, relevance) == retrieval_metrics(similarity, target)


def test_matches_the_reference_topk_formula_without_ties():
    rng = np.random.default_rng(0)
    similarity = rng.normal(size=(50, 30))
    target = np.arange(50) // 5 + rng.integers(0, 20, 50) % 3
    top_ten = np.argsort(-similarity, axis=1)[:, :10]
    hits = top_ten == target[:, None]
    ap = np.where(hits.any(axis=1), 1 / (hits.argmax(axis=1) + 1), 0.0)
    result = retrieval_metrics(similarity, target)
    assert result["mAP@10"] == pytest.approx(ap.mean())
    for k in (1, 5, 10):
        assert result[f"R@{k}"] == pytest.approx(hits[:, :k].any(axis=1).mean())
    assert retrieval_metrics(similarity, target, tie="index") == result


def test_random_scores_sit_at_chance():
    rng = np.random.default_rng(1)
    items, queries = 100, 3000
    result = retrieval_metrics(rng.random((queries, items)), rng.integers(0, items, queries))
    harmonic_10 = sum(1 / r for r in range(1, 11))
    assert result["mAP@10"] == pytest.approx(harmonic_10 / items, rel=0.15)
    assert result["R@1"] <= result["R@5"] <= result["R@10"]
    assert result["R@10"] == pytest.approx(10 / items, rel=0.15)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(DataError, match="NaN"):
        retrieval_metrics(np.array([[np.nan, 1.0]]), [0])
    with pytest.raises(DataError, match="2 targets for 1 queries"):
        retrieval_metrics(np.ones((1, 3)), [0, 1])
    with pytest.raises(DataError, match="out of range"):
        retrieval_metrics(np.ones((1, 3)), [3])
    with pytest.raises(DataError, match="without a relevant item"):
        retrieval_metrics(np.ones((2, 3)), [[0], []])
    with pytest.raises(ConfigError, match="tie rule"):
        retrieval_metrics(np.ones((1, 3)), [0], tie="random")
