"""A model and what it needs to run, in the manner of torchaudio's pipeline bundles.

``tympan.models.bundle("mn10_as")`` (or a tympan checkpoint file, or an int8 ``.pt2``) looks the name up once and
gives a :class:`ModelBundle`: its :class:`~tympan.models.spec.ModelSpec`, the labels, the sample rate, and
``get_model()`` / ``get_frontend()``, which build the network with its weights and the mel frontend it expects.
The pipeline, HEAR, distillation, quantisation and fine-tuning all start from a bundle, so none of them pairs a
network with its frontend or resolves a name to weights on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..audio.frontend import MelFrontend
from ..errors import ConfigError
from .checkpoint import StateDictSource, read_checkpoint_file
from .registry import ModelEntry, build, get_preset, is_registered, official_checkpoint, resolve_spec
from .spec import ModelSpec, spec_of
from .tympan_checkpoint import TympanCheckpoint, is_tympan_checkpoint, read_checkpoint, read_int8, read_int8_checkpoint

__all__ = ["ModelBundle", "bundle", "frontend_of"]

INT8_SUFFIX = ".pt2"


def frontend_of(model: nn.Module) -> MelFrontend:
    """The mel frontend ``model`` expects (eval mode), from its spec."""
    return MelFrontend(spec_of(model).frontend).eval()


@dataclass(frozen=True)
class ModelBundle:
    """A model's spec and where its weights come from.

    Attributes:
        spec: what the model is.
        weights: the weights :meth:`get_model` loads strictly (a file or a state dict in any published layout);
            None for the preset's official weights (``official``) or random ones.
        official: fetch the preset's published weights (the cache, downloaded when online) in :meth:`get_model`.
        int8: the exported int8 program the model is (``tympan quantize``), instead of weights.
        checkpoint: the tympan checkpoint the bundle was read from (its metrics and provenance), if any.
    """

    spec: ModelSpec
    weights: StateDictSource | Path | None = field(default=None, repr=False)
    official: bool = False
    int8: Path | None = None
    checkpoint: TympanCheckpoint | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The preset's name, else the architecture's."""
        return self.spec.preset or self.spec.arch

    @property
    def entry(self) -> ModelEntry | None:
        """The zoo entry of the preset, or None."""
        return None if self.spec.preset is None else get_preset(self.spec.preset)

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def multilabel(self) -> bool:
        return self.spec.multilabel

    @property
    def clip_seconds(self) -> float:
        return self.spec.clip_seconds

    def weights_source(self) -> StateDictSource | Path | None:
        """What :meth:`get_model` loads: the official file (fetched now), the given weights, or None (random)."""
        return official_checkpoint(self.name) if self.official else self.weights

    def get_model(self) -> nn.Module:
        """The network in eval mode (CPU) with its weights, owning :attr:`spec`.

        Raises:
            CheckpointError: the weights do not fit, cannot be fetched, or changed in the cache.
        """
        if self.int8 is not None:
            return read_int8(self.int8)[0]
        return build(self.spec, self.weights_source())

    def get_frontend(self) -> MelFrontend:
        """The mel frontend the model expects (eval mode)."""
        return MelFrontend(self.spec.frontend).eval()


def bundle(
    name_or_checkpoint: str | Path | Mapping[str, Any],
    *,
    checkpoint: StateDictSource | Path | None = None,
    pretrained: bool = True,
    **model_kwargs: Any,
) -> ModelBundle:
    """The bundle of a zoo preset, an architecture, a tympan checkpoint or an int8 model.

    Args:
        name_or_checkpoint: a preset (``"mn10_as"``; official weights), an architecture (``"mn"``; random weights
            unless ``checkpoint``), a tympan checkpoint (a file, or its loaded content) or an int8 ``.pt2`` file.
        checkpoint: weights for a named model, in any published layout, or a tympan checkpoint of that model.
        pretrained: with False, a preset keeps random weights (tests, benchmarks).
        **model_kwargs: model arguments (see :func:`tympan.models.create`); not with a tympan checkpoint, which
            describes its model.

    Raises:
        UnknownModelError: neither a registered name nor a file.
        ConfigError: model arguments for a tympan checkpoint, or a checkpoint of another model than the name.
        CheckpointError: the file is unreadable or not a tympan checkpoint.
    """
    if isinstance(name_or_checkpoint, str) and is_registered(name_or_checkpoint):
        return _named(name_or_checkpoint, checkpoint, pretrained, model_kwargs)
    if checkpoint is not None:
        raise ConfigError("pass a model name with checkpoint=..., or the checkpoint alone")
    if isinstance(name_or_checkpoint, (str, Path)) and Path(name_or_checkpoint).suffix == INT8_SUFFIX:
        _no_arguments(model_kwargs)
        stored = read_int8_checkpoint(name_or_checkpoint)
        return ModelBundle(stored.spec, int8=Path(name_or_checkpoint), checkpoint=stored)
    if isinstance(name_or_checkpoint, str) and not _looks_like_file(name_or_checkpoint):
        resolve_spec(name_or_checkpoint)  # raises UnknownModelError with the closest names
    _no_arguments(model_kwargs)
    stored = read_checkpoint(name_or_checkpoint)
    return ModelBundle(stored.spec, weights=stored.state_dict, checkpoint=stored)


def _named(
    name: str, checkpoint: StateDictSource | Path | None, pretrained: bool, model_kwargs: dict[str, Any]
) -> ModelBundle:
    spec = resolve_spec(name, **model_kwargs)
    if checkpoint is None:
        return ModelBundle(spec, official=pretrained and spec.preset is not None)
    content = read_checkpoint_file(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    if not is_tympan_checkpoint(content):  # the path of a cache file stays one: it is checked against its hash
        return ModelBundle(spec, weights=checkpoint if _cached(checkpoint) else content)
    _no_arguments(model_kwargs)
    stored = read_checkpoint(content)
    if name not in (stored.spec.arch, stored.spec.preset):
        raise ConfigError(f"the checkpoint describes a {stored.spec.preset or stored.spec.arch!r} model, not {name!r};"
                          " pass the checkpoint alone")  # fmt: skip
    return ModelBundle(stored.spec, weights=stored.state_dict, checkpoint=stored)


def _cached(checkpoint: StateDictSource | Path) -> bool:
    from ..hub import in_cache

    return isinstance(checkpoint, (str, Path)) and in_cache(checkpoint)


def _no_arguments(model_kwargs: dict[str, Any]) -> None:
    if model_kwargs:
        raise ConfigError(f"a tympan checkpoint describes its model; drop the model arguments {sorted(model_kwargs)}")


def _looks_like_file(name: str) -> bool:
    path = Path(name)
    return path.exists() or bool(path.suffix) or len(path.parts) > 1
