from __future__ import annotations

import pytest

from tympan.errors import ConfigError, UnknownModelError
from tympan.models import create, get_preset, list_models


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UnknownModelError, match="mn10_as"):
        create("mn10_ass")


def test_presets_refuse_contradicting_arguments_but_accept_equal_ones():
    entry = get_preset("mn10_as_fc_s2211")
    strides = list(entry.model_kwargs["strides"])
    model = create("mn10_as_fc_s2211", strides=strides)  # a list equal to the preset's tuple is no conflict
    assert model.preset is entry and model.frontend_config == entry.frontend
    with pytest.raises(ConfigError, match="reset_classifier"):
        create("mn10_as", num_classes=10)
    with pytest.raises(ConfigError, match="architecture 'mn'"):
        create("mn10_as", width_mult=2.0)


def test_list_models_filters_with_wildcards():
    names = list_models("mn*_as")
    assert "mn10_as" in names and all(n.startswith("mn") for n in names)
    assert "mn10_as" not in list_models("mn*", exclude="mn1*")
