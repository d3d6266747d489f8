"""Label sets: order, content and errors of the CSV-backed ``tympan.labels``."""

from __future__ import annotations

import numpy as np
import pytest

from tympan.errors import ConfigError
from tympan.labels import get_labels, list_label_sets, top_indices
from tympan.models import get_preset, list_models


def test_tau22_scenes_in_reference_order() -> None:
    assert get_labels("tau22") == [
        "airport",
        "bus",
        "metro",
        "metro_station",
        "park",
        "public_square",
        "shopping_mall",
        "street_pedestrian",
        "street_traffic",
        "tram",
    ]


def test_every_shipped_set_reads_and_returns_a_fresh_list() -> None:
    assert {"tau22", "audioset"} <= set(list_label_sets())
    for name in list_label_sets():
        labels = get_labels(name)
        assert labels and all(isinstance(label, str) and label for label in labels)
    labels = get_labels("tau22")
    labels.append("changed")
    assert len(get_labels("tau22")) == 10


def test_unknown_set_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="tau22"):
        get_labels("tau23")


@pytest.mark.parametrize("name", list_models())
def test_every_preset_has_one_label_per_output(name: str) -> None:
    entry = get_preset(name)
    classes = entry.model_kwargs.get("num_classes", entry.model_kwargs.get("n_classes"))
    assert len(get_labels(entry.labels)) == classes


def test_fine_tune_label_sets_in_training_order() -> None:
    fsd50k = get_labels("fsd50k")
    assert len(fsd50k) == 200 and fsd50k == sorted(fsd50k)  # PaSST indexes FSD50K's sorted vocabulary
    assert fsd50k[:2] == ["Accelerating_and_revving_and_vroom", "Accordion"]
    esc50 = get_labels("esc50")
    assert (len(esc50), esc50[0], esc50[10], esc50[49]) == (50, "dog", "rain", "hand_saw")
    openmic = get_labels("openmic")
    assert (len(openmic), openmic[0], openmic[19]) == (20, "accordion", "voice")


def test_every_shipped_set_declares_whether_it_is_multilabel() -> None:
    from tympan.labels import is_multilabel

    flags = {name: is_multilabel(name) for name in list_label_sets()}
    assert flags == {
        "audioset": True, "audioset_strong": True, "esc50": False, "fsd50k": True, "openmic": True, "tau22": False,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="tau22"):
        is_multilabel("tau23")


def test_top_indices_order_rows_as_a_stable_sort_does() -> None:
    """Best first, ties in class order, NaN last, k beyond the classes clipped: what argsort(kind="stable") gives."""
    generator = np.random.default_rng(0)
    scores = generator.integers(0, 4, size=(50, 9)).astype(np.float32)  # many ties
    scores[generator.random(scores.shape) < 0.1] = np.nan
    for k in (0, 1, 3, 9, 12):
        expected = [np.argsort(-np.nan_to_num(row, nan=-np.inf), kind="stable")[:k] for row in scores]
        np.testing.assert_array_equal(top_indices(scores, k), np.stack(expected))
