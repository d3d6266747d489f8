"""What a model is, apart from its weights: one frozen :class:`ModelSpec` per model.

:func:`tympan.models.create` builds a model from a spec and sets it once as ``model.spec``; checkpoints store it
(:mod:`tympan.models.tympan_checkpoint`); bundles hand it out with the model and its frontend
(:mod:`tympan.models.bundle`). Everything that pairs a network with its mel frontend, its labels, its clip length or
its sample rate reads them here, so nothing copies them by hand or patches them onto the module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..audio.frontend import MelFrontendConfig
from ..errors import CheckpointError, ConfigError

__all__ = ["DEFAULT_CLIP_SECONDS", "ModelSpec", "SpecProperties", "label_names", "spec_of"]

DEFAULT_CLIP_SECONDS = 10.0


@dataclass(frozen=True)
class ModelSpec:
    """A model's description: how to build it and how to feed and read it.

    Attributes:
        arch: the registered architecture (``"mn"``, ``"cp_mobile"``, ...).
        config: the architecture's constructor arguments in tympan's names (the family's
            ``from_reference_kwargs`` adapter maps the reference names), without the class count, which is
            ``len(labels)``.
        frontend: the mel frontend the model expects (for a trained model: the one it was trained with).
        labels: class names, index = logit column (none for a network without a head, e.g. a retrieval encoder).
        multilabel: the classes are not mutually exclusive (sigmoid scores) rather than a softmax.
        clip_seconds: length of the training clips, the default tagging window.
        preset: the zoo entry the model comes from, or None (an architecture).
    """

    arch: str
    config: Mapping[str, Any]
    frontend: MelFrontendConfig
    labels: tuple[str, ...]
    multilabel: bool
    clip_seconds: float = DEFAULT_CLIP_SECONDS
    preset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "config", dict(self.config))
        if self.clip_seconds <= 0:
            raise ConfigError(f"clip_seconds must be positive, got {self.clip_seconds}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def sample_rate(self) -> int:
        """Rate in Hz the model's frontend reads audio at."""
        return self.frontend.sample_rate

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def with_labels(self, labels: Sequence[str], multilabel: bool | None = None) -> ModelSpec:
        """The spec of the same model with a new head for ``labels`` (see ``reset_classifier``)."""
        return self.replace(labels=tuple(labels), multilabel=self.multilabel if multilabel is None else multilabel)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only (for ``torch.load(weights_only=True)`` and JSON)."""
        return {
            "arch": self.arch,
            "config": dict(self.config),
            "frontend": self.frontend.to_dict(),
            "labels": list(self.labels),
            "multilabel": self.multilabel,
            "clip_seconds": float(self.clip_seconds),
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The spec :meth:`to_dict` wrote.

        Raises:
            CheckpointError: a field is missing or malformed.
        """
        try:
            return cls(
                arch=str(data["arch"]),
                config=dict(data.get("config") or {}),
                frontend=MelFrontendConfig(**data["frontend"]),
                labels=tuple(data["labels"]),
                multilabel=bool(data["multilabel"]),
                clip_seconds=float(data.get("clip_seconds") or DEFAULT_CLIP_SECONDS),
                preset=data.get("preset"),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as error:
            raise CheckpointError(f"malformed model spec {dict(data)!r}: {error}") from error


def label_names(label_set: str | None, num_classes: int) -> list[str]:
    """Names of the classes: the label set where it fits the head, else ``class_0``, ``class_1``, ..."""
    from ..labels import get_labels

    if label_set is not None:
        names = list(get_labels(label_set))
        if len(names) == num_classes:
            return names
    return [f"class_{i}" for i in range(num_classes)]


def spec_of(model: nn.Module) -> ModelSpec:
    """``model.spec``, or a clear error for a network that was not built by :func:`tympan.models.create`.

    A network of its own that declares only ``frontend_config`` (as networks did before specs) gets a spec with that
    frontend, numbered labels and its class name as architecture: it trains and tags, but a checkpoint of it names
    no registered architecture to rebuild it from.

    Raises:
        ConfigError: the model carries no spec and no ``frontend_config``.
    """
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    frontend = getattr(model, "frontend_config", None)
    if isinstance(frontend, MelFrontendConfig) and isinstance(getattr(model, "num_classes", None), int):
        labels = tuple(f"class_{i}" for i in range(model.num_classes))
        return ModelSpec(type(model).__name__, {}, frontend, labels, multilabel=False)
    raise ConfigError(
        f"the {type(model).__name__} has no `spec` (the description of its frontend, labels and architecture); "
        "build it with tympan.models.create or tympan.models.bundle(...).get_model()"
    )


class SpecProperties:
    """The names older code reads from a model, derived from its :class:`ModelSpec` (mixed into the networks).

    ``frontend_config`` and ``preset`` were attributes patched onto the module; they are views of ``spec`` now.
    Setting ``frontend_config`` replaces the spec's frontend, so code that changed it keeps working; a network
    without a spec keeps the value it sets (see :func:`spec_of`).
    """

    spec: ModelSpec

    @property
    def frontend_config(self) -> MelFrontendConfig:
        """The mel frontend the model expects: ``spec.frontend``."""
        spec = getattr(self, "spec", None)
        if spec is None:
            try:
                return self.__dict__["_frontend_config"]
            except KeyError:
                raise AttributeError(f"the {type(self).__name__} has no spec and no frontend_config") from None
        return spec.frontend

    @frontend_config.setter
    def frontend_config(self, config: MelFrontendConfig) -> None:
        spec = getattr(self, "spec", None)
        if spec is None:
            self.__dict__["_frontend_config"] = config
        else:
            self.spec = spec.replace(frontend=config)

    @property
    def preset(self) -> Any:
        """The zoo entry (:class:`~tympan.models.ModelEntry`) the model was built from, or None."""
        from .registry import get_preset

        name = getattr(getattr(self, "spec", None), "preset", None)
        return None if name is None else get_preset(name)
