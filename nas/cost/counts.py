"""Analytic costs: parameters and multiply-accumulates from operator signatures, peak activation memory
from the built network.

Why params/MACs from `layers(arch)` and not from the built module: the count needs no torch build (about
100x faster), and it is the same signature list that LUTs key on, so counts and LUT sums agree on what a
network contains. Tests check the counts against the built `torch.nn.Module` and the published tables.
Peak memory is the exception: which tensors are alive together depends on the graph (skip connections),
which only the built module shows (`nas.cost.memory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from nas.cost.features import signature_counts
from nas.cost.memory import peak_activation_bytes
from nas.objectives import PerArchProvider, Tier
from nas.spaces.base import Arch, InputSpec, LayerSignature, SearchSpace


_PARAMETER_FREE_OPS = frozenset({"relu", "hswish", "hsigmoid", "mul", "avgpool", "maxpool", "add", "global_avgpool", "channel_shuffle"})


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
PEAK_MEMORY = "peak_memory"
CountKind = Literal["params", "flops", "macs", "peak_memory"]


class CountProvider(PerArchProvider):
    """`params` (millions), `flops`/`macs` (millions of multiply-accumulates, NAS-Bench-201's "FLOPs"), or
    `peak_memory` (MB, 1e6 bytes: the most float32 activation bytes alive at once while the built network
    runs one image, batch 1, input included, parameters excluded; see `nas.cost.memory`).

    Why `peak_memory` is tier `measured`, not `known`: it builds, traces and runs the network (about
    0.1-0.3 s per NB201 arch here, ~1 s per FBNet arch), too slow for strategies to price whole candidate
    pools or the whole space before evaluating; values are cached per arch.

    Counts describe the network built for `input_spec` (the data a run trains on) when given, else for
    the space's `dataset` setting.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> arch = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        >>> round(float(CountProvider("params", space, dataset="cifar10").evaluate([arch])[0]), 6)
        0.073306
        >>> float(CountProvider("peak_memory", space, dataset="cifar10").evaluate([arch])[0])
        0.16384
    """

    def __init__(self, kind: CountKind, space: SearchSpace, *, dataset: str | None = None, input_spec: InputSpec | None = None) -> None:
        if kind not in _COUNTERS and kind != PEAK_MEMORY:
            raise ValueError(f"unknown count {kind!r}; expected one of {sorted([*_COUNTERS, PEAK_MEMORY])}")
        self.metric = kind
        self.space = space
        self.dataset = dataset
        self.input_spec = input_spec
        self.tier = Tier.MEASURED if kind == PEAK_MEMORY else Tier.KNOWN
        self._counter = _COUNTERS.get(kind)
        self._per_signature: dict[LayerSignature, int] = {}

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Counts of many archs at once: one sparse product of their signature counts (`signature_counts`,
        from the space's per-choice parts where it has them) with each signature's count; a whole space
        takes a fraction of a second instead of listing every arch's layers. Exact: integer sums well
        below 2**53, divided by 1e6 as `_value` does."""
        if self._counter is None:
            return super().evaluate(archs)
        if "_cache" not in self.__dict__:
            self._cache = {}
        todo = [a for a in dict.fromkeys(archs) if a not in self._cache]
        if todo:
            counts, sigs = signature_counts(self.space, todo, **self._input())
            totals = counts @ np.array([self._of(sig) for sig in sigs], dtype=np.float64)
            self._cache.update(zip(todo, (totals / 1e6).tolist()))
        return np.array([self._cache[a] for a in archs], dtype=float)

    def _of(self, sig: LayerSignature) -> int:
        value = self._per_signature.get(sig)
        if value is None:
            value = self._per_signature[sig] = self._counter(sig)  # type: ignore[misc]
        return value

    def _value(self, arch: Arch) -> float:
        """The count of one arch, summed over its listed layers (`evaluate` gives the same, batched)."""
        if self._counter is None:
            return self._peak_memory(arch)
        return sum(self._of(sig) for sig in self.space.layers(arch, **self._input())) / 1e6

    def _peak_memory(self, arch: Arch) -> float:
        import torch

        spec = self.input_spec or self.space.input_spec(self.dataset)
        return peak_activation_bytes(self.space.build(arch, spec), torch.zeros(spec.shape)) / 1e6

    def _input(self) -> dict[str, Any]:
        if self.input_spec is not None:
            return {"input_spec": self.input_spec}
        return {"dataset": self.dataset} if self.dataset else {}

    def provenance(self) -> dict[str, Any]:
        if self._counter is None:
            method = "liveness of float32 activations in the built network (torch.fx, else forward hooks), batch 1, MB = 1e6 bytes"
        else:
            method = "analytic count over space.layers(arch)"
        spec = self.input_spec.describe() if self.input_spec is not None else {"dataset": self.dataset}
        return {**super().provenance(), "method": method, "input": spec}

