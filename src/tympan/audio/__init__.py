"""Audio input, the mel frontend and augmentations."""

from __future__ import annotations

from .frontend import MelFrontendConfig

__all__ = ["MelFrontendConfig"]
