"""Fixtures of the command tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .._models import small_mn_state


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file of MN width 0.4 (``mn04_as``) with stress weights, for commands that take ``--checkpoint``."""
    path = tmp_path_factory.mktemp("weights") / "mn04.pt"
    torch.save(small_mn_state(), path)
    return path
