"""The contract every tympan network fulfils.

``forward(mel) -> logits`` equals ``forward_head(forward_features(mel))``. Unlike timm, where
``forward_features`` returns the unpooled map, here it returns the **pooled embedding** ``[batch, num_features]``
(what the reference implementations return as their second output), because that is what embedding
extraction, distillation and retrieval consume. Frame-level or per-stage outputs have their own named
methods (``forward_intermediates``). ``forward`` never returns a tuple.
"""

from __future__ import annotations

from torch import Tensor, nn

from .spec import SpecProperties

__all__ = ["AudioModel"]


class AudioModel(SpecProperties, nn.Module):
    """Base class of the networks: mel ``[batch, 1, n_mels, frames]`` in, logits ``[batch, num_classes]`` out.

    Subclasses set ``num_features`` and ``num_classes`` and implement ``forward_features``,
    ``forward_head`` and ``reset_classifier``. :func:`tympan.models.create` sets ``spec`` (the model's
    :class:`~tympan.models.spec.ModelSpec`); ``frontend_config`` and ``preset`` are views of it.
    """

    num_features: int
    num_classes: int

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
