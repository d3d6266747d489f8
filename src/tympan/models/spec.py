"""What a model is, apart from its weights: one frozen :class:`ModelSpec` per model.

:func:`tympan.models.create` builds a model from a spec and sets it once as ``model.spec``; checkpoints store it
(:mod:`tympan.models.tympan_checkpoint`); bundles hand it out with the model and its frontend
(:mod:`tympan.models.bundle`). Everything that pairs a network with its mel frontend, its labels, its clip length or
its sample rate reads them here, so nothing copies them by hand or patches them onto the module.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from torch import nn

from ..audio.frontend import MelFrontendConfig
from ..errors import CheckpointError, ConfigError

__all__ = [
    "DEFAULT_CLIP_SECONDS",
    "ArchConfig",
    "KeywordConfig",
    "ModelSpec",
    "SpecProperties",
    "label_names",
    "renamed",
    "spec_of",
    "split_class_count",
]

DEFAULT_CLIP_SECONDS = 10.0
_CLASS_COUNT_NAMES = ("num_classes", "n_classes")
_Config = TypeVar("_Config", bound="ArchConfig")


class ArchConfig:
    """Base of the architectures' typed configs: a frozen dataclass per family, in tympan's names.

    A family's config (:class:`~tympan.models.mobilenet.MNConfig`, ...) holds everything that shapes its network
    except the class count, which is the spec's ``len(labels)``. Its fields are scalars, tuples, mappings, None or
    nested frozen dataclasses (:class:`~tympan.models.mobilenet.SEConfig`); :meth:`to_dict` writes plain Python
    values (for ``torch.load(weights_only=True)`` and JSON) and :meth:`from_dict` reads them back through the field
    types, once for every family. :meth:`from_reference` is the family's one adapter from the reference
    constructor's argument names.

    Attributes:
        training_settings: fields that do not shape the weights (drop rates, patchout, the DyMN temperature): on a
            preset, the only ones a caller may change.
    """

    training_settings: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only: nested dataclasses as dicts, tuples as lists."""
        return _plain(self)

    @classmethod
    def from_dict(cls: type[_Config], data: Mapping[str, Any]) -> _Config:
        """The config of ``data``, in tympan's names: plain values as :meth:`to_dict` writes them, or typed ones.

        Raises:
            ConfigError: a name is not a field of the family (the message lists them) or a value is invalid.
        """
        return _from_fields(cls, data)

    @classmethod
    def from_reference(cls: type[_Config], **kwargs: Any) -> _Config:
        """The config of the reference constructor's keyword arguments (without the class count); families whose
        reference names differ from tympan's override it, and tympan's names are accepted too."""
        return cls.from_dict(kwargs)

    def replace(self: _Config, **changes: Any) -> _Config:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class KeywordConfig(ArchConfig):
    """The config of an architecture registered without a typed one: its builder's keyword arguments as given."""

    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dict(self.kwargs))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeywordConfig:
        return cls(dict(data))


def renamed(kwargs: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``kwargs`` with the reference names of ``names`` (reference -> tympan) replaced by tympan's.

    Raises:
        ConfigError: an argument is given under both names.
    """
    both = sorted(ours for reference, ours in names.items() if reference in kwargs and ours in kwargs)
    if both:
        raise ConfigError(f"{both} given twice, in the reference's and in tympan's names; give one of each")
    return {names.get(key, key): value for key, value in kwargs.items()}


def _plain(value: Any) -> Any:
    """``value`` in plain Python values: dataclasses as dicts of their fields, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _from_fields(cls: type, data: Mapping[str, Any]) -> Any:
    """``cls(**data)`` for a dataclass ``cls``, with nested dataclasses built from dicts and lists made tuples."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        family = cls.__name__.removesuffix("Config")
        hint = "; the class count is not part of the config but len(spec.labels): pass num_classes to create or to "
        hint = hint + "the network" if set(unknown) & set(_CLASS_COUNT_NAMES) else ""
        raise ConfigError(f"unknown {family} argument(s) {unknown}; the fields of {cls.__name__} are "
                          f"{', '.join(names)}{hint}")  # fmt: skip
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{name: _typed(hints[name], value) for name, value in data.items()})
    except TypeError as error:
        raise ConfigError(f"invalid {cls.__name__}: {error}") from None


def _typed(hint: Any, value: Any) -> Any:
    """``value`` as a field of type ``hint`` holds it: a dict for a dataclass field built, sequences as tuples."""
    if isinstance(value, Mapping):
        nested = next((t for t in typing.get_args(hint) or (hint,) if dataclasses.is_dataclass(t)), None)
        if nested is not None:
            return nested.from_dict(value) if issubclass(nested, ArchConfig) else _from_fields(nested, value)
        return {key: _typed(None, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_typed(None, item) for item in value)
    return value


def split_class_count(kwargs: Mapping[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """The class count of keyword arguments (``num_classes``, or the DCASE references' ``n_classes``) and the rest.

    Raises:
        ConfigError: both names are given.
    """
    rest = dict(kwargs)
    counts = [rest.pop(name) for name in _CLASS_COUNT_NAMES if name in rest]
    if len(counts) > 1:
        raise ConfigError("give the class count once, as num_classes or as n_classes")
    return (int(counts[0]) if counts and counts[0] is not None else None), rest


@dataclass(frozen=True)
class ModelSpec:
    """A model's description: how to build it and how to feed and read it.

    Attributes:
        arch: the registered architecture (``"mn"``, ``"cp_mobile"``, ...).
        config: the family's typed config in tympan's names (:class:`ArchConfig`: ``MNConfig``, ...), without the
            class count, which is ``len(labels)``.
        frontend: the mel frontend the model expects (for a trained model: the one it was trained with).
        labels: class names, index = logit column (none for a network without a head, e.g. a retrieval encoder).
        multilabel: the classes are not mutually exclusive (sigmoid scores) rather than a softmax.
        clip_seconds: length of the training clips, the default tagging window.
        preset: the zoo entry the model comes from, or None (an architecture).
    """

    arch: str
    config: ArchConfig
    frontend: MelFrontendConfig
    labels: tuple[str, ...]
    multilabel: bool
    clip_seconds: float = DEFAULT_CLIP_SECONDS
    preset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not isinstance(self.config, ArchConfig):
            raise ConfigError(f"a ModelSpec's config is its family's typed config (an ArchConfig such as MNConfig), "
                              f"got {type(self.config).__name__}; tympan.models.resolve_spec makes one from "
                              "keyword arguments")  # fmt: skip
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
            "config": self.config.to_dict(),
            "frontend": self.frontend.to_dict(),
            "labels": list(self.labels),
            "multilabel": self.multilabel,
            "clip_seconds": float(self.clip_seconds),
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The spec :meth:`to_dict` wrote; its config is read into the class of its registered architecture (a
        :class:`KeywordConfig` for a network the registry does not know).

        Raises:
            CheckpointError: a field is missing or malformed.
        """
        from .registry import config_class

        try:
            arch = str(data["arch"])
            return cls(
                arch=arch,
                config=config_class(arch).from_dict(data.get("config") or {}),
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
        return ModelSpec(type(model).__name__, KeywordConfig(), frontend, labels, multilabel=False)
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
