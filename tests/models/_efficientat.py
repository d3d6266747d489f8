"""Helpers of the MN / DyMN tests: the official state-dict manifests in ../shared, read in place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from tests.conftest import shared_path
from tympan.models import create


def official_variant(name: str) -> dict[str, Any]:
    """``{family, constructor_kwargs, num_params, keys}`` of an official variant (skips when the data is absent)."""
    path = shared_path("reference", "efficientat", "official_variants_shapes.json")
    return json.loads(path.read_text())["models"][name]


def keys_file(name: str) -> dict[str, list[int]]:
    """The ``<name>_keys.json`` manifest: state-dict key -> shape, in state-dict order."""
    return json.loads(shared_path("reference", "efficientat", f"{name}_keys.json").read_text())


def meta_layout(arch: str, **kwargs: Any) -> tuple[dict[str, list[int]], int]:
    """State-dict key -> shape (in order) and parameter count of a model built without allocating memory."""
    with torch.device("meta"):
        model = create(arch, **kwargs)
    return {k: list(v.shape) for k, v in model.state_dict().items()}, sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run a module single-threaded: its small inputs gain nothing from intra-op threads, and on a shared
    2-core machine two spinning threads per process slow these many small convolutions down tenfold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
