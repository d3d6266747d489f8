"""Reading checkpoints in the layouts the reference repositories publish, and strict loading.

Accepted layouts: a plain state dict; a dict holding it under ``state_dict`` or ``model``; Lightning
checkpoints whose keys carry a ``model.`` / ``net.`` (or DDP ``module.``) prefix. A load is always strict:
a mismatch raises :class:`~tympan.errors.CheckpointError` naming the missing and unexpected keys and the
shape differences, never a silent non-strict retry.

Subnormal floats (below ~1.2e-38 in float32) are loaded as zeros. Weight decay leaves them in the channels it
drove to nothing (12,109 of the 131,153 values of the DCASE23 CP-Mobile checkpoint), every multiply with them takes
the CPU's slow path, and a CP-Mobile training step on those weights ran four times slower; their contribution to any
output is far below float rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["StateDictSource", "load_checkpoint", "prepare_state_dict", "read_checkpoint_file", "read_state_dict"]

logger = logging.getLogger(__name__)

StateDictSource = str | Path | Mapping[str, Any]
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net")
_PREFIXES = ("model.", "net.", "module.", "_orig_mod.")
_MAX_LISTED = 12


def read_checkpoint_file(path: str | Path, kind: str = "checkpoint") -> Any:
    """The object saved in a checkpoint file, on the CPU, read without executing code (``weights_only``).

    Raises:
        CheckpointError: the file is missing or unreadable (``kind`` names what was expected in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind} file {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read {kind} {str(path)!r}: {error}") from error


def read_state_dict(source: StateDictSource) -> dict[str, torch.Tensor]:
    """Return the tensors of a checkpoint file or mapping, unwrapped from any known container.

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no state dict.
    """
    obj = read_checkpoint_file(source) if isinstance(source, (str, Path)) else source
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise CheckpointError(
            "the checkpoint holds no state dict (expected a mapping of tensors, or one under "
            f"{', '.join(repr(k) for k in _CONTAINER_KEYS)})"
        )
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``model.``, ``net.``, ...) from the keys the model does not know."""
    while not set(state) <= expected:
        foreign = {k for k in state if k not in expected}
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in foreign)), None)
        if prefix is None:
            break
        state = {(k[len(prefix) :] if k in foreign else k): v for k, v in state.items()}
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def prepare_state_dict(
    model: nn.Module,
    source: StateDictSource,
    filter_fn: Callable[[dict[str, Any], nn.Module], dict[str, Any]] | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors of ``source`` under ``model``'s key names: unwrapped, prefixes stripped, the family's filter run."""
    state = _strip_prefixes(read_state_dict(source), set(model.state_dict()))
    return filter_fn(state, model) if filter_fn is not None else state


def load_checkpoint(
    model: nn.Module,
    source: StateDictSource,
    *,
    filter_fn: Callable[[dict[str, Any], nn.Module], dict[str, Any]] | None = None,
    reinitialise: Collection[str] = (),
) -> nn.Module:
    """Load ``source`` into ``model`` strictly, after prefix stripping and the family's ``filter_fn``.

    Args:
        reinitialise: keys the caller has re-initialised on purpose (a new classifier): they keep the model's
            values, whatever the checkpoint holds under them; every other key must match.

    Raises:
        CheckpointError: keys or shapes differ; the message lists them.
    """
    expected = model.state_dict()
    skipped = set(reinitialise)
    state = {k: v for k, v in prepare_state_dict(model, source, filter_fn).items() if k not in skipped}
    missing = [k for k in expected if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        parts = [f"the checkpoint does not fit {type(model).__name__}:"]
        if missing:
            parts.append(f"{len(missing)} missing keys [{_listing(missing)}]")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys [{_listing(unexpected)}]")
        if mismatched:
            parts.append(f"{len(mismatched)} shape differences [{_listing(mismatched)}]")
        parts.append("Check that the model name (width, head, number of classes) matches the checkpoint.")
        raise CheckpointError(" ".join(parts))
    state = {k: _without_subnormals(v) for k, v in state.items()}
    model.load_state_dict({**{k: expected[k] for k in skipped if k in expected}, **state}, strict=True)
    logger.debug("loaded %d tensors into %s", len(state), type(model).__name__)
    return model


def _without_subnormals(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with its subnormal values set to zero (a copy where there are any)."""
    if not tensor.is_floating_point():
        return tensor
    subnormal = (tensor != 0) & (tensor.abs() < torch.finfo(tensor.dtype).tiny)
    return tensor.masked_fill(subnormal, 0.0) if bool(subnormal.any()) else tensor
