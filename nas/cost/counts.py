"""Analytic costs from a space's operator signatures: parameters and multiply-accumulates.

Why from `layers(arch)` and not from the built module: the count needs no torch build (about 100x
faster), and it is the same signature list that LUTs key on, so counts and LUT sums agree on what a
network contains. Tests check the counts against the built `torch.nn.Module` and the published tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from nas.objectives import MetricProvider
from nas.spaces.base import Arch, LayerSignature, SearchSpace


_PARAMETER_FREE_OPS = frozenset({"relu", "avgpool", "add", "global_avgpool", "channel_shuffle"})


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def layer_params(sig: LayerSignature) -> int:
    """Trainable parameters of one operator (BN counts its affine weight and bias, not running stats)."""
    if sig.op == "conv":
        c_in = sig.in_shape[1]
        return sig.out_channels * (c_in // sig.groups) * sig.kernel * sig.kernel + (sig.out_channels if sig.bias else 0)
    if sig.op == "bn":
        return 2 * sig.in_shape[1]
    if sig.op == "linear":
        return sig.in_shape[-1] * sig.out_channels + (sig.out_channels if sig.bias else 0)
    if sig.op in _PARAMETER_FREE_OPS:
        return 0
    raise ValueError(f"layer_params does not know op {sig.op!r} ({sig.key()})")


def layer_macs(sig: LayerSignature) -> int:
    """Multiply-accumulates of one operator; only convs and linears count, as is usual for FLOP budgets.

    Conv output size assumes padding `kernel // 2`, the convention of the spaces' `layers()`.
    """
    if sig.op == "conv":
        _, c_in, height, width = sig.in_shape
        out_h, out_w = _conv_out(height, sig.kernel, sig.stride), _conv_out(width, sig.kernel, sig.stride)
        return out_h * out_w * sig.out_channels * (c_in // sig.groups) * sig.kernel * sig.kernel
    if sig.op == "linear":
        return sig.in_shape[-1] * sig.out_channels
    if sig.op in _PARAMETER_FREE_OPS or sig.op == "bn":
        return 0
    raise ValueError(f"layer_macs does not know op {sig.op!r} ({sig.key()})")


_COUNTERS = {"params": layer_params, "flops": layer_macs, "macs": layer_macs}


class CountProvider(MetricProvider):
    """`params` (millions) or `flops`/`macs` (millions of multiply-accumulates, NAS-Bench-201's "FLOPs").

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> arch = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        >>> round(float(CountProvider("params", space, dataset="cifar10").evaluate([arch])[0]), 6)
        0.073306
    """

    def __init__(self, kind: Literal["params", "flops", "macs"], space: SearchSpace, *, dataset: str | None = None) -> None:
        if kind not in _COUNTERS:
            raise ValueError(f"unknown count {kind!r}; expected one of {sorted(_COUNTERS)}")
        self.metric = kind
        self.space = space
        self.dataset = dataset
        self._counter = _COUNTERS[kind]
        self._per_signature: dict[LayerSignature, int] = {}
        self._per_arch: dict[Arch, float] = {}

    def _count(self, arch: Arch) -> float:
        total = 0
        for sig in self.space.layers(arch, dataset=self.dataset) if self.dataset else self.space.layers(arch):
            value = self._per_signature.get(sig)
            if value is None:
                value = self._per_signature[sig] = self._counter(sig)
            total += value
        return total / 1e6

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            value = self._per_arch.get(arch)
            if value is None:
                value = self._per_arch[arch] = self._count(arch)
            out[i] = value
        return out

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "method": "analytic count over space.layers(arch)", "dataset": self.dataset}
