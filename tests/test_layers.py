"""The package's floors, read from the source: lower layers never import upper ones (DESIGN.md's layer rules).

Every ``import`` and ``from ... import`` of every module under ``src/tympan`` is resolved to the subpackage it
names, at module level and inside functions alike (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "tympan"

# subpackage -> what it must never import (tympan subpackages, or top-level distributions such as lightning)
FORBIDDEN: dict[str, set[str]] = {
    "models": {"lightning", "train", "analysis", "cli", "demo"},
    "audio": {"lightning", "train", "analysis", "cli", "demo", "models"},
    "train": {"analysis", "cli", "demo"},
    "data": {"analysis", "cli", "demo", "train"},
    "eval": {"analysis", "cli", "demo"},
}
TOP_FLOORS = {"analysis", "demo", "cli"}


def _subpackage(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imported_modules(path: Path) -> set[tuple[str, ...]]:
    """Dotted names (as tuples) of what ``path`` imports, relative imports resolved against its package."""
    package_parts = ("tympan", *path.relative_to(PACKAGE).parent.parts)
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package_parts[: len(package_parts) - node.level + 1] if node.level else ()
            target = (*base, *node.module.split(".")) if node.module else base
            found.update({target} if node.module else {(*target, alias.name) for alias in node.names})
    return found


def _imported(path: Path) -> set[str]:
    """``tympan.<x>`` subpackages and top-level distributions that ``path`` imports."""
    return {parts[1] if parts[0] == "tympan" and len(parts) > 1 else parts[0] for parts in _imported_modules(path)}


MODULES = sorted(PACKAGE.rglob("*.py"))
MODELS = ("tympan", "models")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_its_floor(path: Path) -> None:
    layer = _subpackage(path)
    imported = _imported(path) - {layer}
    assert not imported & FORBIDDEN.get(layer, set()), f"{layer}/ must not import {imported & FORBIDDEN[layer]}"
    if layer not in TOP_FLOORS:
        assert not imported & TOP_FLOORS, f"{layer} imports the top floors {imported & TOP_FLOORS}"


def test_resolution_sees_relative_and_lazy_imports() -> None:
    """The checker itself: relative imports two levels up, imports inside functions and distributions are seen."""
    assert "models" in _imported(PACKAGE / "models" / "zoo" / "passt.py")  # from ..registry import ...
    assert "hub" in _imported(PACKAGE / "models" / "registry.py")  # lazy: from .. import hub
    assert "lightning" in _imported(PACKAGE / "train" / "pruning.py")
    assert "train" in _imported(PACKAGE / "analysis" / "scaling.py")


def test_registration_has_no_import_circle() -> None:
    """Network files know no names and the registry imports no network: only the zoo modules join the two."""
    networks = ("mobilenet", "dymn", "passt", "cp_mobile", "cp_resnet")
    registry = {parts[2] for parts in _imported_modules(PACKAGE / "models" / "registry.py") if parts[:2] == MODELS}
    assert not registry & {*networks, "zoo"}
    for network in networks:
        imported = {
            parts[2] for parts in _imported_modules(PACKAGE / "models" / f"{network}.py") if parts[:2] == MODELS
        }
        assert "registry" not in imported and "zoo" not in imported, network


def test_moved_names_stay_importable() -> None:
    """Model wrappers and surgery moved to models/, the pruning callback to train/; the old paths still work."""
    from tympan.analysis import congater as old_congater
    from tympan.analysis import scaling as old_scaling
    from tympan.models import congater, surgery
    from tympan.train import pruning

    assert old_congater.GatedModel is congater.GatedModel
    assert old_scaling.decompose_convs is surgery.decompose_convs
    assert old_scaling.MagnitudePruner is pruning.MagnitudePruner
