"""Receptive fields of convolutional audio models, per layer (receptive-field regularisation, arXiv 2105.12395).

The field is traced through the real forward pass rather than read off a hand-written table: a
``TorchFunctionMode`` follows every tensor derived from the input and updates, for the frequency and time axes,
its receptive-field size and its jump (the input distance between neighbouring outputs). Convolutions and
pooling grow the field (``size += (k − 1)·dilation·jump``, ``jump *= stride``); element-wise operations (residual
additions, activations, normalisation) take the largest local field of their inputs; reductions over an axis (global
or adaptive pooling, the mean of a transformer) make that axis global. Global context that only rescales local
features (squeeze-excitation, GRN, coordinate attention) is not counted, by the usual definition of the field.
This covers residual branches, DyMN's dynamic convolutions (grouped ``conv2d`` calls) and any other architecture
without special cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

if TYPE_CHECKING:
    from ..models.cp_resnet import CPResNetConfig

__all__ = ["AxisField", "LayerField", "receptive_field", "reference_max_rf"]

_FREQ, _TIME = -2, -1
_POOLS = {"max_pool2d", "avg_pool2d"}
_ADAPTIVE = {"adaptive_avg_pool2d", "adaptive_max_pool2d"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "prod"}


@dataclass(frozen=True)
class AxisField:
    """Receptive field along one axis: ``size`` input bins (``inf`` = the whole input) and the output ``jump``."""

    size: float = 1.0
    jump: int = 1

    def grow(self, kernel: int, stride: int, dilation: int) -> AxisField:
        return AxisField(self.size + (kernel - 1) * dilation * self.jump, self.jump * stride)

    @property
    def is_global(self) -> bool:
        return math.isinf(self.size)


_GLOBAL = AxisField(math.inf, 1)


@dataclass(frozen=True)
class LayerField:
    """Receptive field of one module's output: ``freq`` (mel bins) and ``time`` (frames)."""

    name: str
    module: str
    freq: AxisField
    time: AxisField


def _combine(fields: list[AxisField]) -> AxisField:
    """Field of an element-wise result: the largest *local* input field.

    Globally pooled context that rescales local features (squeeze-excitation, GRN, coordinate attention) does not
    widen the convolutional receptive field, by the usual definition; only a result made of global inputs alone
    (the pooled embedding) is global.
    """
    local = [f for f in fields if not f.is_global]
    return max(local, key=lambda a: (a.size, a.jump)) if local else _GLOBAL


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[-1]))


def _argument(args: tuple, kwargs: dict, index: int, name: str, default):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


class _FieldTracer(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.fields: WeakTensorKeyDictionary = WeakTensorKeyDictionary()

    def _input_fields(self, args: tuple, kwargs: dict) -> list[tuple[AxisField, AxisField]]:
        leaves, _ = tree_flatten((args, kwargs))
        return [self.fields[t] for t in leaves if isinstance(t, Tensor) and t in self.fields]

    def _output_field(self, func, args, kwargs, inputs, output):
        freq = _combine([f for f, _ in inputs])
        time = _combine([t for _, t in inputs])
        name = getattr(func, "__name__", "")
        if name == "conv2d":
            kernel = _pair(_argument(args, kwargs, 1, "weight", None).shape[-2:])
            stride = _pair(_argument(args, kwargs, 3, "stride", 1))
            dilation = _pair(_argument(args, kwargs, 5, "dilation", 1))
        elif name in _POOLS:
            kernel = _pair(_argument(args, kwargs, 1, "kernel_size", None))
            stride = _pair(_argument(args, kwargs, 2, "stride", None) or kernel)
            dilation = _pair(_argument(args, kwargs, 4, "dilation", 1)) if name == "max_pool2d" else (1, 1)
        elif name in _ADAPTIVE:
            return _GLOBAL, _GLOBAL
        elif name in _REDUCTIONS:
            dims = _argument(args, kwargs, 1, "dim", None)
            if isinstance(dims, Tensor):  # torch.max(a, b) is element-wise
                return freq, time
            if dims is None:
                return _GLOBAL, _GLOBAL
            source = args[0]
            axes = {d % source.dim() for d in ((dims,) if isinstance(dims, int) else dims)}
            freq = _GLOBAL if source.dim() + _FREQ in axes else freq
            time = _GLOBAL if source.dim() + _TIME in axes else time
            return freq, time
        else:
            return freq, time
        return freq.grow(kernel[0], stride[0], dilation[0]), time.grow(kernel[1], stride[1], dilation[1])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        inputs = self._input_fields(args, kwargs)
        if inputs:
            field = self._output_field(func, args, kwargs, inputs, output)
            for tensor in tree_flatten(output)[0]:
                if isinstance(tensor, Tensor) and tensor.is_floating_point():
                    self.fields[tensor] = field
        return output


@torch.no_grad()
def receptive_field(model: nn.Module, input_shape: Sequence[int] = (1, 1, 128, 100)) -> list[LayerField]:
    """Receptive field of every leaf module's output, in execution order.

    Args:
        model: any tympan CNN (or other network) taking mel ``[batch, 1, n_mels, frames]``.
        input_shape: the input the field is traced on; sizes only matter where the network adapts to them.

    Returns:
        one :class:`LayerField` per leaf-module call; a field larger than the input means units see it whole
        (the maximal receptive field in the sense of the CP-ResNet papers).
    """
    tracer = _FieldTracer()
    records: list[LayerField] = []

    def record(module: nn.Module, _inputs, output) -> None:
        tensor = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(tensor, Tensor) and tensor in tracer.fields:
            freq, time = tracer.fields[tensor]
            records.append(LayerField(names[module], type(module).__name__, freq, time))

    names = {module: name for name, module in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        mel = torch.zeros(tuple(input_shape))
        tracer.fields[mel] = (AxisField(), AxisField())
        with tracer:
            model(mel)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return records


def reference_max_rf(config: CPResNetConfig) -> int:
    """CP-ResNet's "max RF" as the CP-JKU papers tabulate it (``utils_funcs.get_maxrf`` of ``cpjku_dcase20``).

    Why a second number: the papers' ρ tables use this estimate, not the true field. It starts at RF 5 with
    stride 2 (the stem) and adds ``(k − 1)·stride`` per conv in order; a max-pool doubles the stride *before the
    second conv of the block it follows* and adds nothing itself. :func:`receptive_field` traces the true field
    (pools included), which is larger.
    """
    stride, field = 2, 5
    if 0 in config.pool_positions[0]:
        stride *= 2  # a pool before the first block (the DCASE23 variants; the estimate never had one)
    for stage, blocks in enumerate(config.n_blocks, start=1):
        for block in range(blocks):
            k1, k2 = config.kernel_sizes(stage, block)
            field += (k1 - 1) * stride
            stride *= 2 ** sum(position == block + 1 for position in config.pool_positions[stage - 1])
            field += (k2 - 1) * stride
    return field
