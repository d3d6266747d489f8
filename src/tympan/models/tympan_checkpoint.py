"""tympan's own checkpoints: ``(spec, state_dict, metrics, provenance)``, versioned. The only module that knows
their layout.

A file is a ``torch.save`` of::

    {"tympan": {"format_version": 3, "spec": ModelSpec.to_dict(), "metrics": {...}, "provenance": {...}},
     "state_dict": {"model.<key>": tensor, ...},
     "device_state_dicts": {device: {key: tensor}}}   # only for the per-device models of a DCASE25 run

The ``model.`` prefix is the layout of a Lightning checkpoint of the training systems, which carries the same
``"tympan"`` entry (``AudioSystem.on_save_checkpoint``); both read alike, and any loader of published layouts
(:func:`tympan.models.checkpoint.read_state_dict`) reads the weights. An int8 model (``tympan quantize``) is an
exported program with the same entry as a JSON sidecar beside it (:func:`save_int8`, :func:`read_int8`).

The spec's ``config`` is the family's typed config as plain values, in tympan's names
(:meth:`~tympan.models.spec.ArchConfig.to_dict`). :func:`read_checkpoint` still reads the older formats: version
2 had the same layout with ``config`` in the builders' keyword arguments (partly the reference's names:
``input_dim_f``, ``img_size``, ...), version 1 the spec's fields flat in the ``"tympan"`` entry (``arch``,
``model_kwargs`` in the reference's names, ``frontend``, ``labels``, ...); both are read through the family's
adapter.
Reading references' files and loading strictly stays in :mod:`tympan.models.checkpoint`.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.fx import GraphModule

from ..audio.frontend import MelFrontendConfig
from ..errors import CheckpointError, ConfigError
from ..files import atomic_path, write_atomically
from ..labels import is_multilabel
from .checkpoint import read_checkpoint_file
from .spec import ModelSpec, label_names, split_class_count

__all__ = [
    "FORMAT_VERSION",
    "INT8_FORMAT",
    "TympanCheckpoint",
    "attach_entry",
    "entry",
    "is_tympan_checkpoint",
    "plain_modes",
    "read_checkpoint",
    "read_int8",
    "read_int8_checkpoint",
    "save_checkpoint",
    "save_int8",
]

FORMAT_VERSION = 3
INT8_FORMAT = "tympan-int8-pt2e"  # the sidecar's "format"
_ENTRY = "tympan"
_PREFIX = "model."
_DEVICES = "device_state_dicts"
# Fields of a version-1 entry that became the spec; everything else but "metrics" is provenance.
_V1_SPEC_FIELDS = ("arch", "model_kwargs", "frontend", "labels", "multilabel", "clip_seconds", "preset", "label_set")


@dataclass(frozen=True)
class TympanCheckpoint:
    """A model as tympan stores it.

    Attributes:
        spec: what the model is (architecture, arguments, frontend, labels, clip length).
        state_dict: the model's weights, under its own keys.
        metrics: validation figures of these weights (``{"val/accuracy": 0.93}``).
        provenance: how they were made: ``complexity`` (params / MACs), ``task`` and ``frame_seconds`` of a
            detector, ``device_specific`` and ``quantized`` settings, the ``tympan_version`` that wrote them.
        device_state_dicts: further weights per recording device (DCASE25 device-specific models).
    """

    spec: ModelSpec
    state_dict: Mapping[str, Tensor] = field(default_factory=dict, repr=False)
    metrics: Mapping[str, float] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    device_state_dicts: Mapping[str, Mapping[str, Tensor]] = field(default_factory=dict, repr=False)


def entry(checkpoint: TympanCheckpoint) -> dict[str, Any]:
    """The ``"tympan"`` entry of ``checkpoint``: what a Lightning checkpoint of the training systems carries."""
    from .. import __version__

    return {
        "format_version": FORMAT_VERSION,
        "spec": checkpoint.spec.to_dict(),
        "metrics": {k: float(v) for k, v in checkpoint.metrics.items()},
        "provenance": {"tympan_version": __version__, **checkpoint.provenance},
    }


def attach_entry(content: dict[str, Any], checkpoint: TympanCheckpoint) -> None:
    """Make a Lightning checkpoint of a training system (its weights under ``model.``) a tympan checkpoint."""
    content[_ENTRY] = entry(checkpoint)


def save_checkpoint(checkpoint: TympanCheckpoint, path: str | Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (a reader never sees half a file)."""
    payload: dict[str, Any] = {
        _ENTRY: entry(checkpoint),
        "state_dict": {f"{_PREFIX}{k}": v.detach().cpu() for k, v in checkpoint.state_dict.items()},
    }
    if checkpoint.device_state_dicts:
        payload[_DEVICES] = {
            device: {k: v.detach().cpu() for k, v in state.items()}
            for device, state in checkpoint.device_state_dicts.items()
        }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def is_tympan_checkpoint(content: Any) -> bool:
    """``content`` (a loaded file) is a tympan checkpoint, of any version, rather than bare weights."""
    return isinstance(content, Mapping) and isinstance(content.get(_ENTRY), Mapping)


def read_checkpoint(source: str | Path | Mapping[str, Any]) -> TympanCheckpoint:
    """The checkpoint in a file (or already loaded): written by :func:`save_checkpoint`, by a training run
    (Lightning), or by an older tympan (version 1).

    Raises:
        CheckpointError: the file is missing or unreadable, is not a tympan checkpoint (a reference's weights:
            load those with ``tympan.load(NAME, checkpoint=FILE)``), is of a newer format, or holds no weights.
    """
    content = read_checkpoint_file(source) if isinstance(source, (str, Path)) else source
    if not is_tympan_checkpoint(content):
        raise CheckpointError(
            f"{_name(source)} is not a tympan checkpoint (it has no {_ENTRY!r} entry); weights in a reference "
            "repository's layout load with tympan.load(NAME, checkpoint=FILE) or tympan.models.create"
        )
    spec, metrics, provenance = _read_entry(content[_ENTRY], _name(source))
    weights = content.get("state_dict")
    state = (
        {k[len(_PREFIX) :]: v for k, v in weights.items() if k.startswith(_PREFIX)}
        if isinstance(weights, Mapping)
        else {}
    )
    if not state:
        raise CheckpointError(f"the tympan checkpoint {_name(source)} holds no {_PREFIX!r} weights under 'state_dict'")
    devices = content.get(_DEVICES)
    return TympanCheckpoint(spec, state, metrics, provenance, dict(devices) if isinstance(devices, Mapping) else {})


def save_int8(program: Any, path: str | Path, checkpoint: TympanCheckpoint) -> Path:
    """Write an int8 exported program (``torch.export``) to ``path`` (``.pt2``) and ``checkpoint``'s entry (its
    spec, metrics and provenance; the weights are in the program) as the JSON sidecar ``path`` with ``.json``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.export.save(program, temporary)
    sidecar = {"format": INT8_FORMAT, **entry(checkpoint)}
    write_atomically(path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    return path


def read_int8_checkpoint(path: str | Path) -> TympanCheckpoint:
    """The spec, metrics and provenance of the int8 model at ``path`` (its sidecar; no weights, nothing loaded).

    Raises:
        CheckpointError: the sidecar is missing, foreign or malformed.
    """
    path = Path(path)
    sidecar = path.with_suffix(".json")
    try:
        description = json.loads(sidecar.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {sidecar}, the description of {path}: {error}") from error
    if not isinstance(description, dict) or description.get("format") != INT8_FORMAT:
        raise CheckpointError(f"{sidecar} does not describe an int8 model written by tympan quantize")
    spec, metrics, provenance = _read_entry(description, str(sidecar))
    return TympanCheckpoint(spec, {}, metrics, {k: v for k, v in provenance.items() if k != "format"})


def read_int8(path: str | Path) -> tuple[nn.Module, TympanCheckpoint]:
    """The int8 module (CPU) written by :func:`save_int8`, owning its spec, and its checkpoint (no weights).

    Raises:
        CheckpointError: the sidecar is missing, foreign or malformed, or the program cannot be read.
    """
    stored = read_int8_checkpoint(path)
    try:
        program = torch.export.load(path)
    except Exception as error:  # torch raises many types for corrupt or foreign archives
        raise CheckpointError(f"cannot read quantised model {str(path)!r}: {error}") from error
    module = plain_modes(program.module())
    module.spec = stored.spec
    return module.eval(), stored


def plain_modes(graph: GraphModule) -> GraphModule:
    """``graph`` with ``train()`` / ``eval()`` that only set the flags.

    Exported graphs refuse both because mode-dependent ops are frozen into them; tympan's int8 and QAT graphs have
    none (BatchNorm folded, captured in eval mode), and Lightning and the evaluation switch modes like on any module.
    """

    def train(self: GraphModule, mode: bool = True) -> GraphModule:
        for module in self.modules():
            module.training = mode
        return self

    graph.train = types.MethodType(train, graph)  # type: ignore[method-assign]
    graph.eval = types.MethodType(lambda self: self.train(False), graph)  # type: ignore[method-assign]
    return graph


def _read_entry(description: Mapping[str, Any], name: str) -> tuple[ModelSpec, dict[str, float], dict[str, Any]]:
    version = description.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{name} is a tympan checkpoint of format {version!r}; this tympan reads formats up to "
                              f"{FORMAT_VERSION}: upgrade tympan")  # fmt: skip
    metrics = dict(description.get("metrics") or {})
    if version > 1:
        spec = description.get("spec") or {}
        spec = ModelSpec.from_dict(spec) if version == FORMAT_VERSION else _v2_spec(spec, name)
        return spec, metrics, dict(description.get("provenance") or {})
    provenance = {k: v for k, v in description.items() if k not in (*_V1_SPEC_FIELDS, "metrics")}
    return _v1_spec(description, name), metrics, provenance


def _v2_spec(spec: Mapping[str, Any], name: str) -> ModelSpec:
    """The spec of a version-2 entry: its ``config`` (the builder's keyword arguments) through the family's adapter."""
    from .registry import config_class

    try:
        config = config_class(str(spec.get("arch"))).from_reference(**(spec.get("config") or {}))
    except ConfigError as error:
        raise CheckpointError(f"the tympan entry of {name} is malformed: {error}") from error
    return ModelSpec.from_dict({**spec, "config": config.to_dict()})


def _v1_spec(description: Mapping[str, Any], name: str) -> ModelSpec:
    """The spec of a version-1 entry: reference-named ``model_kwargs`` through the family's adapter."""
    from .registry import get_architecture, get_preset

    arch_name = description.get("arch")
    if not arch_name or "frontend" not in description:
        raise CheckpointError(f"the tympan entry of {name} names no 'arch' or 'frontend'; it cannot be rebuilt")
    try:
        arch = get_architecture(arch_name)
        num_classes, model_kwargs = split_class_count(description.get("model_kwargs") or {})
        config = arch.from_reference_kwargs(model_kwargs)
        preset = get_preset(description["preset"]) if description.get("preset") else None
        labels = description.get("labels")
        label_set = description.get("label_set") or (preset.labels if preset is not None else arch.default_labels)
        if not labels:
            if num_classes is None:
                raise CheckpointError(f"the tympan entry of {name} gives neither labels nor a class count")
            labels = label_names(label_set, int(num_classes))
        clip_seconds = description.get("clip_seconds") or (
            preset.clip_seconds if preset is not None else arch.default_clip_seconds
        )
        return ModelSpec(
            arch=arch.name,
            config=config,
            frontend=MelFrontendConfig(**description["frontend"]),
            labels=tuple(labels),
            multilabel=bool(description.get("multilabel", label_set is not None and is_multilabel(label_set))),
            clip_seconds=float(clip_seconds),
            preset=description.get("preset"),
        )
    except (ConfigError, TypeError, ValueError) as error:
        raise CheckpointError(f"the tympan entry of {name} is malformed: {error}") from error


def _name(source: Any) -> str:
    return repr(str(source)) if isinstance(source, (str, Path)) else "the checkpoint"
