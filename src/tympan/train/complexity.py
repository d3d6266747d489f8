"""Complexity limits of the low-complexity track: measure the model, refuse one over the limits.

DCASE23 Task 1 allows at most 128,000 parameters and 30 M multiply-accumulates for one 1 s clip. The measurement
itself is :func:`tympan.eval.complexity.measure` (the reference's counting rule); this module only applies limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..audio.frontend import MelFrontendConfig
from ..errors import ConfigError
from ..eval.complexity import measure

__all__ = ["ComplexityLimits", "enforce_limits"]


@dataclass(frozen=True)
class ComplexityLimits:
    """The limits a recipe trains under, checked when fitting starts (``limits:`` of a recipe's model).

    Attributes:
        max_params: most parameters (DCASE23: 128,000; DCASE24 / 25: 64,000, i.e. 128 kB at 16 bit).
        max_macs: most multiply-accumulates for one clip of ``seconds`` (DCASE: 30e6 per 1 s).
        seconds: the clip length the MACs are counted for.
    """

    max_params: int | None = None
    max_macs: float | None = None
    seconds: float = 1.0

    def enforce(self, model: nn.Module, frontend: MelFrontendConfig) -> dict[str, Any]:
        """Measure ``model`` (see :func:`enforce_limits`); raise ConfigError over a limit."""
        return enforce_limits(model, frontend, self.seconds, self.max_params, self.max_macs)


def enforce_limits(
    model: nn.Module,
    frontend: MelFrontendConfig,
    seconds: float = 1.0,
    max_params: int | None = None,
    max_macs: float | None = None,
) -> dict[str, Any]:
    """Measure ``model`` on one clip of ``seconds`` (DCASE counting rule); raise ConfigError over a limit.

    Returns:
        ``{"params": int, "macs": int, "input_seconds": float, "max_params": ..., "max_macs": ...}``.
    """
    frames = frontend.num_frames(round(seconds * frontend.sample_rate))
    result = measure(model, (1, 1, frontend.n_mels, frames))
    params, macs = int(result.params), int(result.macs)
    problems = []
    if max_params is not None and params > max_params:
        problems.append(f"{params:,} parameters > {max_params:,}")
    if max_macs is not None and macs > max_macs:
        problems.append(f"{macs:,} MACs per {seconds:g} s > {int(max_macs):,}")
    if problems:
        raise ConfigError(
            f"the model is over the recipe's complexity limits ({'; '.join(problems)}); choose a smaller "
            "configuration (fewer channels / blocks) or remove the limits from the recipe"
        )
    return {"params": params, "macs": macs, "input_seconds": seconds, "max_params": max_params, "max_macs": max_macs}
