"""Shared fixtures: the golden reference data in ../shared, read in place (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two xdist workers share the two cores; more intra-op threads would only oversubscribe them.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Exported ONNX graphs go to a folder of the test session, not to the user's cache."""
    from tympan import export

    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export, "graph_cache_dir", lambda: folder)
        yield folder


def shared_path(*parts: str) -> Path:
    """Path of a file in ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"golden data {path} is absent (../shared is not beside the checkout)")
    return path


def load_reference(*parts: str) -> dict[str, Any]:
    """``torch.load`` of a golden ``.pt`` file in ../shared/reference, or skip."""
    return torch.load(shared_path("reference", *parts), map_location="cpu", weights_only=True)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
