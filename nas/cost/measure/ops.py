"""One operator as a runnable `torch.nn.Module`, rebuilt from its `LayerSignature`.

Why: a LUT prices a network by the sum of its operators, so each operator must be measured exactly as the
network runs it: same module class, padding, pooling mode and tensor shapes. This module is the single
place that turns a signature back into that operator, following the op conventions documented in
`nas.spaces.nb201_network` (conv padding `kernel // 2`; odd-kernel average pools pad `kernel // 2` and
exclude the padding from the mean; even-kernel pools, the 2x2 reduction shortcut, pad nothing and use
`ceil_mode=True`; max pools pad the same way). A conv signature with `dilation` > 1 (DARTS's
`dil_conv_*`) is a dilated conv, padded `dilation * (kernel // 2)`.

Example:
    >>> from nas.spaces.base import LayerSignature
    >>> module, inputs = module_for_signature(LayerSignature("conv", (1, 4, 8, 8), out_channels=6, kernel=3))
    >>> tuple(module(*inputs).shape)
    (1, 6, 8, 8)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nas.spaces.base import LayerSignature


class UnknownOperatorError(ValueError):
    """A signature whose `op` no measurement module knows how to build."""


class Add(nn.Module):
    """The binary sum a cell node computes; a module so backends can export and time it alone."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class AddConstant(nn.Module):
    """A constant tensor added to the input (`add` with `bias=True`): what is left of a folded edge."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("constant", torch.randn(*shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.constant


class GlobalAvgPool(nn.Module):
    """Global average pooling followed by the flatten the classifier needs, as NB201's head runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).flatten(1)


def _image(sig: LayerSignature) -> torch.Tensor:
    if len(sig.in_shape) != 4:
        raise ValueError(f"operator {sig.key()} needs a 4-D NCHW in_shape, got {sig.in_shape}")
    return torch.randn(*sig.in_shape)


def _conv(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    x = _image(sig)
    dilation = int(sig.dilation)
    module = nn.Conv2d(
        sig.in_shape[1],
        sig.out_channels,
        sig.kernel,
        stride=sig.stride,
        padding=dilation * (sig.kernel // 2),
        dilation=dilation,
        groups=sig.groups,
        bias=sig.bias,
    )
    return module, (x,)


def _bn(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    x = _image(sig)
    module = nn.BatchNorm2d(sig.in_shape[1], affine=True, track_running_stats=True)
    with torch.no_grad():  # non-trivial statistics, so no backend can treat the op as an identity
        module.running_mean.uniform_(-0.5, 0.5)
        module.running_var.uniform_(0.5, 1.5)
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.5, 0.5)
    return module, (x,)


def _relu(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return nn.ReLU(inplace=False), (_image(sig),)


def _avgpool(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    x = _image(sig)
    if sig.kernel % 2:
        module = nn.AvgPool2d(sig.kernel, stride=sig.stride, padding=sig.kernel // 2, count_include_pad=False)
    else:
        module = nn.AvgPool2d(sig.kernel, stride=sig.stride, padding=0, ceil_mode=True)
    return module, (x,)


def _maxpool(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    x = _image(sig)
    if sig.kernel % 2:
        module = nn.MaxPool2d(sig.kernel, stride=sig.stride, padding=sig.kernel // 2)
    else:
        module = nn.MaxPool2d(sig.kernel, stride=sig.stride, padding=0, ceil_mode=True)
    return module, (x,)


def _add(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    if sig.bias:
        return AddConstant(tuple(sig.in_shape)), (_image(sig),)
    return Add(), (_image(sig), _image(sig))


def _global_avgpool(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return GlobalAvgPool(), (_image(sig),)


def _linear(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    if len(sig.in_shape) != 2:
        raise ValueError(f"operator {sig.key()} needs a 2-D (batch, features) in_shape, got {sig.in_shape}")
    return nn.Linear(sig.in_shape[1], sig.out_channels, bias=sig.bias), (torch.randn(*sig.in_shape),)


def _hswish(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return nn.Hardswish(inplace=False), (_image(sig),)


def _hsigmoid(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return nn.Hardsigmoid(inplace=False), (_image(sig),)


class ChannelScale(nn.Module):
    """A feature map times one value per channel (squeeze-excite's scale: `mul`, `in_shape` the map)."""

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return x * scale


def _mul(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    x = _image(sig)
    return ChannelScale(), (x, torch.rand(sig.in_shape[0], sig.in_shape[1], 1, 1))


_BUILDERS: dict[str, Callable[[LayerSignature], tuple[nn.Module, tuple[torch.Tensor, ...]]]] = {
    "conv": _conv,
    "bn": _bn,
    "relu": _relu,
    "hswish": _hswish,
    "hsigmoid": _hsigmoid,
    "mul": _mul,
    "avgpool": _avgpool,
    "maxpool": _maxpool,
    "add": _add,
    "global_avgpool": _global_avgpool,
    "linear": _linear,
}

#: Operator types `module_for_signature` can build.
KNOWN_OPS: tuple[str, ...] = tuple(sorted(_BUILDERS))


def module_for_signature(sig: LayerSignature) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The operator `sig` describes, in eval mode, with random example inputs of its input shape.

    Raises:
        UnknownOperatorError: `sig.op` is not one of `KNOWN_OPS`.
        ValueError: a quantised signature (`bits != 32`) or a shape the operator cannot take.
    """
    builder = _BUILDERS.get(sig.op)
    if builder is None:
        raise UnknownOperatorError(f"cannot measure operator {sig.key()}: unknown op {sig.op!r}; expected one of {list(KNOWN_OPS)}")
    if sig.bits != 32:
        raise ValueError(f"cannot measure operator {sig.key()}: only 32-bit float operators are supported, got bits={sig.bits}")
    module, inputs = builder(sig)
    return module.eval(), inputs


class Chain(nn.Sequential):
    """Operators run one after the other, each a module call, as a network's `nn.Sequential` runs them."""


#: Operators that inference compilers fold into the operator producing their input (ONNX Runtime and TVM
#: fold BatchNorm into the preceding convolution), so a network pays only their marginal cost there.
FOLDED: frozenset[str] = frozenset({"bn"})


def producer_for(sig: LayerSignature) -> LayerSignature | None:
    """The operator `sig` is measured after when it is `FOLDED` (a 1x1 conv making its input), else None.

    Why a 1x1 conv: it is the cheapest conv that produces `sig`'s input shape, and a BatchNorm after any
    conv folds the same way; for backends that do not fold, the marginal cost is the BatchNorm's own.
    """
    if sig.op not in FOLDED:
        return None
    channels = sig.in_shape[1]
    return LayerSignature("conv", sig.in_shape, out_channels=channels, kernel=1)


def null_module() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The cheapest real operator (a ReLU on one number): its latency is a backend's fixed per-call cost.

    Why: every per-operator measurement includes the backend's call overhead (Python dispatch, session
    run, input binding) that a whole network pays only once; timing this module isolates that overhead.
    """
    return nn.ReLU(inplace=False).eval(), (torch.randn(1, 1),)
