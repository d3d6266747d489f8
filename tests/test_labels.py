"""Label sets: order, content and errors of the CSV-backed ``tympan.labels``."""

from __future__ import annotations

import pytest

from tympan.errors import ConfigError
from tympan.labels import get_labels, list_label_sets


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
