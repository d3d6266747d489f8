"""The contract every tympan network fulfils.

``forward(mel) -> logits`` equals ``forward_head(forward_features(mel))``. Unlike timm, where
``forward_features`` returns the unpooled map, here it returns the **pooled embedding** ``[batch, num_features]``
(what the reference implementations return as their second output), because that is what embedding
extraction, distillation and retrieval consume. Frame-level or per-stage outputs have their own named
methods (``forward_intermediates``). ``forward`` never returns a tuple.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from ..audio.frontend import MelFrontendConfig
    from .registry import ModelEntry

__all__ = ["AudioModel"]


class AudioModel(nn.Module):
    """Base class of the networks: mel ``[batch, 1, n_mels, frames]`` in, logits ``[batch, num_classes]`` out.

    Subclasses set ``num_features`` and ``num_classes`` and implement ``forward_features``,
    ``forward_head`` and ``reset_classifier``. :func:`tympan.models.create` attaches ``frontend_config``
    (the mel frontend the model expects) and ``preset`` (its zoo entry, or None).
    """

    num_features: int
    num_classes: int
    frontend_config: MelFrontendConfig
    preset: ModelEntry | None = None

    def forward_features(self, mel: Tensor) -> Tensor:
        """Pooled embedding ``[batch, num_features]`` of mel ``[batch, 1, n_mels, frames]``."""
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits ``[batch, num_classes]`` from the pooled embedding."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
        raise NotImplementedError

    def forward(self, mel: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(mel))
