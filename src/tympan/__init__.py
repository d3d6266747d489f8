"""tympan: efficient audio understanding — tagging, scene classification, embeddings and retrieval.

The public API is small: :func:`load` (a ready pipeline), :func:`list_models`, and the one-call :func:`tag` and
:func:`embed`. Importing ``tympan`` is light: torch and the models load on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

try:  # the installed distribution's version, so `tympan --version` matches the wheel
    __version__ = _metadata.version("tympan")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "embed", "list_models", "load", "tag"]

if TYPE_CHECKING:
    import numpy as np

    from .pipeline import AudioPipeline


def load(name_or_arch: str | None = None, checkpoint: Any = None, **kwargs: Any) -> AudioPipeline:
    """A ready pipeline (model, mel frontend, labels, sample rate); see :func:`tympan.pipeline.load`.

    Example:
        >>> pipeline = tympan.load("mn10_as")
        >>> pipeline.tag("dog.wav", top_k=3)
    """
    from .pipeline import load as _load

    return _load(name_or_arch, checkpoint, **kwargs)


def list_models(pattern: str = "*", *, exclude: str | None = None) -> list[str]:
    """Names of the zoo's models matching a wildcard ``pattern``."""
    from .models import list_models as _list_models

    return _list_models(pattern, exclude=exclude)


def tag(audio: Any, model: str = "mn10_as", *, sample_rate: int | None = None, top_k: int = 5, **kwargs: Any) -> Any:
    """The ``top_k`` (label, score) pairs of a file, waveform or batch with ``model`` (loaded for this call)."""
    return load(model, **kwargs).tag(audio, sample_rate, top_k=top_k)


def embed(audio: Any, model: str = "mn10_as", *, sample_rate: int | None = None, **kwargs: Any) -> np.ndarray:
    """Embeddings ``[num_features]`` (or ``[batch, num_features]``) of ``audio`` with ``model``: what
    ``tympan embed`` writes, one forward pass of a clip up to a minute and the mean over clip-length windows of a
    longer one (:func:`tympan.engine.embed`)."""
    from .engine import embed as _embed

    return _embed(load(model, **kwargs), audio, sample_rate)
