"""Every named configuration of the zoo, one module per family (imported for registration)."""

from __future__ import annotations

from . import (
    dcase23,  # noqa: F401
    efficientat,  # noqa: F401
    passt,  # noqa: F401
    sed,  # noqa: F401
)
