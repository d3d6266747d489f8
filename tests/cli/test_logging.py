"""What the command prints besides its own output: Lightning's lines once, no advertising, no library deprecations."""

from __future__ import annotations

import logging
import warnings

import pytest

from tympan.cli import _configure_logging


@pytest.fixture(autouse=True)
def _restore_logging():
    torch_level = logging.getLogger("torch").level
    with warnings.catch_warnings():
        yield
    logging.getLogger("torch").setLevel(torch_level)


def test_lightning_tips_are_dropped_and_its_lines_have_one_handler() -> None:
    _configure_logging(verbose=False)
    assert not logging.getLogger("lightning.pytorch").handlers
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    tip, stop = (logging.makeLogRecord({"msg": m}) for m in ("💡 Tip: try our cloud product", "`Trainer.fit` stopped"))
    assert not rank_zero.filter(tip)
    assert rank_zero.filter(stop)


def test_library_deprecations_are_hidden_unless_verbose() -> None:
    _configure_logging(verbose=False)
    assert not logging.getLogger("torch").isEnabledFor(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)
    assert not caught
