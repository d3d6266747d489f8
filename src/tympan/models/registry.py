"""The model registry: architectures by name, and named presets (zoo entries) as data.

In the manner of timm's ``create_model``: an architecture is a builder registered under a short name (``"mn"``,
``"dymn"``, ``"cp_mobile"``, ``"cp_resnet"``, ``"passt"``) with the family's typed config class (an
:class:`~tympan.models.spec.ArchConfig`, whose ``from_reference`` adapts the reference constructor's argument
names to ours); a preset is a frozen :class:`ModelEntry`: a :class:`~tympan.models.spec.ModelSpec`
(:attr:`ModelEntry.spec`) plus where its weights are and its published figures. :func:`resolve_spec` turns a name
and keyword arguments into a spec, :func:`build` a spec (and weights) into a model that owns it, and :func:`create`
is the two in one.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..audio.frontend import MelFrontendConfig
from ..errors import ConfigError, UnknownModelError
from ..labels import get_labels, is_multilabel
from .checkpoint import StateDictSource, load_checkpoint
from .spec import DEFAULT_CLIP_SECONDS, ArchConfig, KeywordConfig, ModelSpec, label_names, split_class_count

__all__ = [
    "Architecture",
    "ModelEntry",
    "build",
    "config_class",
    "create",
    "get_architecture",
    "get_preset",
    "is_registered",
    "list_aliases",
    "list_architectures",
    "list_models",
    "official_checkpoint",
    "register_alias",
    "register_architecture",
    "register_preset",
    "resolve_spec",
]

Builder = Callable[..., nn.Module]
CheckpointFilter = Callable[[dict[str, Any], nn.Module], dict[str, Any]]


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its builder, its config class and what a model of it needs outside the weights.

    Attributes:
        builder: ``builder(config, num_classes) -> nn.Module`` (``num_classes`` left out: the builder's default).
        config: the family's typed config class (:class:`~tympan.models.spec.ArchConfig`).
        default_frontend, default_labels, default_clip_seconds: what a model of the architecture without a preset
            expects and predicts.
    """

    name: str
    builder: Builder
    default_frontend: MelFrontendConfig
    default_labels: str | None = None
    checkpoint_filter: CheckpointFilter | None = None
    default_clip_seconds: float = DEFAULT_CLIP_SECONDS
    config: type[ArchConfig] = KeywordConfig

    def from_reference_kwargs(self, kwargs: Mapping[str, Any]) -> ArchConfig:
        """The typed config of the reference constructor's keyword arguments (or tympan's), without the class
        count: the family's adapter, ``config.from_reference``, so that ``create(arch, **reference_kwargs)``
        builds what the reference builds."""
        return self.config.from_reference(**kwargs)


@dataclass(frozen=True)
class ModelEntry:
    """A named configuration of the zoo: everything needed to run a checkpoint correctly.

    Attributes:
        name: the zoo name users know from the reference repositories (``"mn10_as"``).
        arch: the registered architecture name.
        model_kwargs: the reference constructor's keyword arguments.
        frontend: the mel frontend the weights were trained with.
        labels: name of the label set in :mod:`tympan.labels` (``"audioset"``, ``"tau22"``, ...).
        description: one paragraph: data set, recipe, where the weights come from.
        family: the model family as papers name it (``"EfficientAT MN"``, ``"PaSST"``, ``"CP-Mobile"``).
        paper: the paper that introduced the weights or the family (authors, title, venue, link).
        training_data: what the weights were trained on (data set, split, size).
        clip_seconds: length of the training clips: the default tagging window and the input of ``macs``.
        checkpoint_url: public release URL of the official weights (None when there is none).
        checkpoint_sha256: SHA-256 of that file where published, or a prefix of it of at least 8 hex digits (the
            ``name-<prefix>.pth`` convention of torch hub files); checked on download. Files without one are hashed
            when first loaded strictly and checked against that record afterwards (:mod:`tympan.hub`).
        checkpoint_mirrors: other URLs of the same file, tried in order when the first fails (releases that the
            reference repositories publish under two tags).
        initial_weights: the checkpoint is a start for training (an ImageNet backbone with an untrained head),
            not a model to run: :func:`tympan.load` refuses it, ``create(name, pretrained=True)`` and the training
            systems take it.
        num_params: published (or reference-code) parameter count.
        macs: published multiply-accumulates for one clip of ``clip_seconds``, counted under ``macs_rule``.
        macs_rule: the :mod:`tympan.eval.complexity` rule the published ``macs`` follow (``"full"``, ``"dcase"``).
        score: published metrics, e.g. ``{"mAP": 0.471}``.
        license: licence of the weights.
        source: reference repository and commit.
    """

    name: str
    arch: str
    model_kwargs: Mapping[str, Any]
    frontend: MelFrontendConfig
    labels: str
    description: str = ""
    checkpoint_url: str | None = None
    checkpoint_sha256: str | None = None
    checkpoint_mirrors: tuple[str, ...] = ()
    initial_weights: bool = False
    num_params: int | None = None
    macs: int | None = None
    score: Mapping[str, float] = field(default_factory=dict)
    license: str | None = None
    source: str | None = None
    family: str = ""
    paper: str | None = None
    training_data: str | None = None
    clip_seconds: float = 10.0
    macs_rule: str = "full"

    @property
    def multilabel(self) -> bool:
        """The classes are not mutually exclusive (sigmoid scores): a property of the label set."""
        return is_multilabel(self.labels)

    @property
    def spec(self) -> ModelSpec:
        """What a model of this preset is: its architecture, arguments, frontend, labels and clip length."""
        return resolve_spec(self.name)

    @property
    def checkpoint_filename(self) -> str | None:
        """File name of the official checkpoint, as the release publishes it."""
        return None if self.checkpoint_url is None else self.checkpoint_url.rsplit("/", 1)[-1]


_ARCHITECTURES: dict[str, Architecture] = {}
_PRESETS: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_architecture(
    name: str,
    builder: Builder,
    *,
    default_frontend: MelFrontendConfig,
    config: type[ArchConfig] | None = None,
    default_labels: str | None = None,
    checkpoint_filter: CheckpointFilter | None = None,
    default_clip_seconds: float = DEFAULT_CLIP_SECONDS,
) -> None:
    """Register an architecture under ``name`` (the zoo modules call this).

    Args:
        builder: ``builder(config, num_classes) -> nn.Module`` with ``config`` an instance of ``config``; for an
            architecture of one's own registered without a config class, ``builder(**kwargs, num_classes=n)``
            with the keyword arguments kept as given (a :class:`~tympan.models.spec.KeywordConfig`).
        config: the family's typed config class.
    """
    if name in _ARCHITECTURES or name in _PRESETS:
        raise ConfigError(f"model name {name!r} is registered twice")
    if config is None:
        config, builder = KeywordConfig, _keyword_builder(builder)
    _ARCHITECTURES[name] = Architecture(
        name, builder, default_frontend, default_labels, checkpoint_filter, default_clip_seconds, config
    )


def _keyword_builder(builder: Builder) -> Builder:
    """A builder of keyword arguments as one of a :class:`~tympan.models.spec.KeywordConfig`."""

    def build(config: KeywordConfig, num_classes: int | None = None) -> nn.Module:
        return builder(**config.kwargs, **({} if num_classes is None else {"num_classes": num_classes}))

    return build


def register_preset(entry: ModelEntry) -> ModelEntry:
    """Add a zoo entry; its architecture must already be registered."""
    if entry.name in _PRESETS or entry.name in _ARCHITECTURES or entry.name in _ALIASES:
        raise ConfigError(f"model name {entry.name!r} is registered twice")
    get_architecture(entry.arch)
    _PRESETS[entry.name] = entry
    return entry


def register_alias(alias: str, name: str) -> None:
    """Make ``alias`` (a name the reference repositories use) resolve to the preset ``name``.

    Aliases are not listed by :func:`list_models` (each checkpoint once); :func:`list_aliases` gives them.
    """
    if alias in _PRESETS or alias in _ARCHITECTURES or alias in _ALIASES:
        raise ConfigError(f"model name {alias!r} is registered twice")
    if name not in _PRESETS:
        raise ConfigError(f"alias {alias!r} names an unknown preset {name!r}")
    _ALIASES[alias] = name


def list_aliases() -> dict[str, str]:
    """Reference names that resolve to presets: ``{alias: preset name}``."""
    return dict(sorted(_ALIASES.items()))


def _unknown(name: str, kind: str, known: list[str]) -> UnknownModelError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(f"unknown {kind} {name!r}.{hint} `tympan.models.list_models()` lists them all.")


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``."""
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise _unknown(name, "architecture", sorted(_ARCHITECTURES)) from None


def config_class(arch: str) -> type[ArchConfig]:
    """The config class of the registered architecture ``arch``; a :class:`~tympan.models.spec.KeywordConfig` for
    a network the registry does not know (its spec keeps the arguments it was described with)."""
    return _ARCHITECTURES[arch].config if arch in _ARCHITECTURES else KeywordConfig


def get_preset(name: str) -> ModelEntry:
    """The zoo entry ``name``."""
    try:
        return _PRESETS[_ALIASES.get(name, name)]
    except KeyError:
        raise _unknown(name, "model", sorted(_PRESETS) + sorted(_ALIASES) + sorted(_ARCHITECTURES)) from None


def is_registered(name: str) -> bool:
    """``name`` is a preset, an alias of one, or an architecture."""
    return name in _PRESETS or name in _ALIASES or name in _ARCHITECTURES


def list_models(pattern: str = "*", *, exclude: str | None = None) -> list[str]:
    """Names of the zoo presets matching a wildcard ``pattern`` (and not ``exclude``), sorted."""
    names = [n for n in sorted(_PRESETS) if fnmatch.fnmatch(n, pattern)]
    return [n for n in names if exclude is None or not fnmatch.fnmatch(n, exclude)]


def list_architectures() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_ARCHITECTURES)


def resolve_spec(name: str, **kwargs: Any) -> ModelSpec:
    """The spec of a preset or an architecture (with ``kwargs``, in the reference's or tympan's names).

    The class count is ``num_classes`` (``n_classes``) where given, else the preset's, else the size of the
    architecture's default label set; the labels are that set where it fits, else ``class_0`` ... A preset's
    config may change only in its :attr:`~tympan.models.spec.ArchConfig.training_settings` (drop rates,
    patchout, ...): every other field shapes its weights.

    Raises:
        UnknownModelError: the name is not registered.
        ConfigError: a keyword argument contradicts the preset or is not one of the architecture's.
    """
    num_classes, kwargs = split_class_count(kwargs)
    name = _ALIASES.get(name, name)
    if name in _PRESETS:
        entry = _PRESETS[name]
        arch = get_architecture(entry.arch)
        preset_classes, preset_kwargs = split_class_count(entry.model_kwargs)
        defined = arch.from_reference_kwargs(preset_kwargs)
        config = arch.from_reference_kwargs({**preset_kwargs, **kwargs})
        conflicts = {
            f.name: getattr(config, f.name)
            for f in dataclasses.fields(config)
            if f.name not in config.training_settings and getattr(config, f.name) != getattr(defined, f.name)
        }
        if preset_classes is not None and num_classes not in (None, preset_classes):
            conflicts["num_classes"] = num_classes
        if conflicts:
            hint = (
                " To train on other labels, build the preset and call model.reset_classifier(num_classes)."
                if "num_classes" in conflicts
                else f" Use the architecture {entry.arch!r} to build another configuration."
            )
            raise ConfigError(f"{name!r} is defined with {dict(entry.model_kwargs)}; got {conflicts}.{hint}")
        num_classes = preset_classes if num_classes is None else num_classes
        label_set, frontend, clip_seconds = entry.labels, entry.frontend, entry.clip_seconds
    elif name in _ARCHITECTURES:
        entry, arch = None, _ARCHITECTURES[name]
        config, label_set = arch.from_reference_kwargs(kwargs), arch.default_labels
        frontend, clip_seconds = arch.default_frontend, arch.default_clip_seconds
    else:
        raise _unknown(name, "model", sorted(_PRESETS) + sorted(_ALIASES) + sorted(_ARCHITECTURES))
    if num_classes is None:  # the label set sizes the head; without one, the builder's default does
        num_classes = len(get_labels(label_set)) if label_set else arch.builder(config).num_classes
    return ModelSpec(
        arch=arch.name,
        config=config,
        frontend=frontend,
        labels=tuple(label_names(label_set, int(num_classes))),
        multilabel=label_set is not None and is_multilabel(label_set),
        clip_seconds=clip_seconds,
        preset=None if entry is None else entry.name,
    )


def build(spec: ModelSpec, checkpoint: StateDictSource | Path | None = None) -> nn.Module:
    """The model of ``spec`` in eval mode, owning it as ``model.spec``, with ``checkpoint`` loaded strictly.

    Raises:
        UnknownModelError: the spec's architecture is not registered.
        CheckpointError: the checkpoint does not fit the model, cannot be read, or changed in the cache.
    """
    arch = get_architecture(spec.arch)
    if not isinstance(spec.config, arch.config):
        raise ConfigError(f"the {spec.arch!r} architecture is configured by a {arch.config.__name__}, the spec holds a "
                          f"{type(spec.config).__name__}")  # fmt: skip
    model = arch.builder(spec.config, spec.num_classes)
    model.spec = spec
    if checkpoint is not None:
        _load_verified(model, checkpoint, arch.checkpoint_filter)
    return model.eval()


def create(
    name: str,
    *,
    checkpoint: StateDictSource | Path | None = None,
    pretrained: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a model by preset name or architecture name: :func:`build` of :func:`resolve_spec`.

    Args:
        name: a zoo preset (``"mn10_as"``, or a reference name of one: :func:`list_aliases`) or an architecture
            (``"mn"``).
        checkpoint: weights to load strictly: a path or an in-memory state dict (any of the layouts
            :func:`tympan.models.checkpoint.read_state_dict` accepts). A file of the checkpoint cache is checked
            against the SHA-256 recorded at its first strict load, and recorded then (:mod:`tympan.hub`).
        pretrained: load a preset's official weights (from the cache, downloaded when online), as timm's
            ``create_model(pretrained=True)``.
        **kwargs: for an architecture, the reference constructor's keyword arguments (or the fields of its typed
            config); for a preset, only its config's ``training_settings`` (drop rates, patchout, ...) may differ
            from the entry. ``num_classes`` of a preset changes through ``model.reset_classifier`` instead.

    Returns:
        the model in eval mode, owning its :class:`~tympan.models.spec.ModelSpec` as ``model.spec``
        (``model.frontend_config`` and ``model.preset`` are views of it).

    Raises:
        UnknownModelError: the name is not registered.
        ConfigError: a keyword argument contradicts the preset, or ``pretrained`` is asked of an architecture or
            together with ``checkpoint``.
        CheckpointError: the checkpoint does not fit the model, cannot be fetched, or changed in the cache.
    """
    spec = resolve_spec(name, **kwargs)
    if pretrained:
        if spec.preset is None or checkpoint is not None:
            raise ConfigError(
                f"pretrained=True loads a preset's official weights; {name!r} is an architecture: pass checkpoint=FILE"
                if spec.preset is None
                else "pass either checkpoint=... or pretrained=True, not both"
            )
        checkpoint = official_checkpoint(spec.preset)
    return build(spec, checkpoint)


def official_checkpoint(name: str) -> Path:
    """The file of preset ``name``'s published weights: from the cache, downloaded (and verified) when online.

    Raises:
        UnknownModelError: no such preset.
        CheckpointError: the preset publishes no weights, or they cannot be fetched.
    """
    from ..hub import preset_checkpoint

    return preset_checkpoint(get_preset(name))


def _load_verified(model: nn.Module, checkpoint: StateDictSource | Path, filter_fn: CheckpointFilter | None) -> None:
    """Strict load; a file of the cache is checked against its recorded SHA-256 first and recorded after."""
    from .. import hub

    cached = isinstance(checkpoint, (str, Path)) and hub.in_cache(checkpoint)
    if cached:
        hub.verify_checksum(checkpoint)
    load_checkpoint(model, checkpoint, filter_fn=filter_fn)
    if cached:
        hub.record_checksum(checkpoint)
