"""ConGater's modules moved to :mod:`tympan.models.congater` (they are model wrappers); kept importable from here."""

from ..models.congater import (
    AdversaryHeads,
    ConGater,
    ControlGate,
    GatedModel,
    GradientReversal,
    gradient_reversal,
    recorded_gates,
)

__all__ = [
    "AdversaryHeads",
    "ConGater",
    "ControlGate",
    "GatedModel",
    "GradientReversal",
    "gradient_reversal",
    "recorded_gates",
]
