"""Measuring latency on this machine through a backend (PyTorch eager, ONNX Runtime, TVM).

A backend turns a `torch.nn.Module` plus example inputs into a zero-argument `runner` that performs one
inference; `_timing.time_runner` times it. Heavy backends import their libraries inside `compile`, so
`import nas` stays light. Backends register by name in `backends`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from nas.cost.measure._timing import Timing, time_runner
from nas.registry import Registry


class Backend(Protocol):
    """What a measurement backend provides."""

    name: str
    #: `space.layers` options that list what this backend's graph optimiser leaves to run (empty: all).
    layer_options: dict[str, bool]

    def compile(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> Callable[[], Any]:
        """A zero-argument callable running one inference of `module` on `example_inputs` with `threads` threads."""

    def versions(self) -> dict[str, str]:
        """Library versions and settings that make a measurement reproducible (recorded in LUT sidecars)."""


backends: Registry[Callable[[], Backend]] = Registry("backend")

__all__ = ["Backend", "Timing", "backends", "time_runner"]

# Backends register here; each imports its heavy library only when compiling, so this stays light.
from nas.cost.measure._onnxruntime import OnnxRuntimeBackend  # noqa: E402
from nas.cost.measure._torch import TorchBackend  # noqa: E402
from nas.cost.measure._tvm import TVMBackend  # noqa: E402

backends.add("torch", TorchBackend)
backends.add("onnxruntime", OnnxRuntimeBackend)
backends.add("tvm", TVMBackend)
