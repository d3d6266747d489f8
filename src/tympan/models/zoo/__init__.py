"""The one list of the zoo's modules: each registers its family's architectures and presets when imported."""

from __future__ import annotations

from . import (
    dcase23,  # noqa: F401
    efficientat,  # noqa: F401
    passt,  # noqa: F401
    sed,  # noqa: F401
)
