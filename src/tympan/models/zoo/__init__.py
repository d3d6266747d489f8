"""Every named configuration of the zoo, one module per family (imported for registration)."""

from __future__ import annotations

from . import passt  # noqa: F401
