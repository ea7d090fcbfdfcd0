"""Peak activation memory of a built network: a liveness analysis of its tensors in execution order.

Why from the built module and not from `layers(arch)`: how long a tensor stays alive depends on the
graph (a skip connection keeps its input alive across a whole block), which an operator list does not
show. The module is traced with `torch.fx` and run once through `ShapeProp` on the example input, so every
node's real output is seen; where symbolic tracing fails (data-dependent control flow), forward hooks on
the leaf modules record the same information at module granularity.

The model (batch as given, float32 when the module is):
    * A tensor is alive from the node that produces it until the last node that reads it has run; the
      network input counts from the start, the network output until the end. Parameters and buffers
      never count.
    * A node allocates exactly those output storages that are not already alive. So views and aliases
      (`view`, `reshape`/`flatten` of a contiguous tensor, `squeeze`, `unsqueeze`, `transpose`,
      `getitem` of a tuple, `contiguous` of a contiguous tensor, `nn.Identity`) and in-place ops
      (`ReLU(inplace=True)`, `x += y`) allocate nothing, while a `reshape` that must copy does.
      Why storage identity instead of a list of op names: only the run knows whether a `reshape`
      copied, and the rule then covers every alias-returning op without a list to keep up to date.
    * Peak = the maximum over nodes of the bytes alive while that node runs: every tensor still needed
      (its inputs included) plus its outputs. Temporaries inside one leaf op (a conv's workspace) and
      allocator slack are not modelled.

The hooks fallback sees module calls only: a tensor made by functional code between modules counts from
the first module that reads it.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(2, 1, 3, padding=1))
    >>> peak_activation_bytes(net, torch.zeros(1, 1, 4, 4))  # relu's input and output: 2 x 2x4x4 floats
    256
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

FX = "torch.fx"
HOOKS = "forward hooks"


class PeakMemoryError(ValueError):
    """The module cannot be run on the example input, so its activations cannot be measured."""


@dataclass(frozen=True)
class PeakMemory:
    """Result of the liveness analysis: `bytes` at the peak, the `method` used, and the node `at` the peak."""

    bytes: int
    method: str
    at: str


@dataclass
class _Step:
    """One executed node: its name, the storages it creates (key -> bytes), and every storage it touches."""

    name: str
    new: dict[tuple[str, int], int]
    touches: set[tuple[str, int]]


def _tensors(value: Any) -> list[Any]:
    import torch
    from torch.utils._pytree import tree_leaves

    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


def _key(tensor: Any) -> tuple[str, int]:
    return str(tensor.device), tensor.untyped_storage().data_ptr()


class _Ledger:
    """Collects steps and keeps every tensor referenced, so no freed address is reused during the run."""

    def __init__(self, excluded: Iterable[Any]) -> None:
        self.known: set[tuple[str, int]] = {_key(t) for t in excluded}
        self.steps: list[_Step] = []
        self._keep: list[Any] = []

    def step(self, name: str, reads: Iterable[Any], writes: Iterable[Any]) -> None:
        new: dict[tuple[str, int], int] = {}
        touches: set[tuple[str, int]] = set()
        for tensor in [*reads, *writes]:
            self._keep.append(tensor)
            key = _key(tensor)
            touches.add(key)
            if key not in self.known:
                self.known.add(key)
                new[key] = tensor.untyped_storage().nbytes()
        self.steps.append(_Step(name, new, touches))

    def exclude(self, tensors: Iterable[Any]) -> None:
        for tensor in tensors:
            self._keep.append(tensor)
            self.known.add(_key(tensor))

    def peak(self, method: str) -> PeakMemory:
        """Bytes alive at each step (born at or before it, last touched at or after it); the largest wins."""
        n = len(self.steps)
        births: dict[tuple[str, int], int] = {}
        deaths: dict[tuple[str, int], int] = {}
        sizes: dict[tuple[str, int], int] = {}
        for i, step in enumerate(self.steps):
            for key, size in step.new.items():
                births[key], sizes[key] = i, size
            for key in step.touches:
                if key in births:
                    deaths[key] = i
        alive = np.zeros(n + 1, dtype=np.int64)
        for key, birth in births.items():
            alive[birth] += sizes[key]
            alive[deaths[key] + 1] -= sizes[key]
        profile = np.cumsum(alive[:n])
        at = int(np.argmax(profile))
        return PeakMemory(int(profile[at]), method, self.steps[at].name)


def _fx_peak(module: Any, inputs: tuple[Any, ...], excluded: list[Any]) -> PeakMemory:
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    graph = torch.fx.symbolic_trace(module)
    ledger = _Ledger(excluded)
    results: dict[torch.fx.Node, list[Any]] = {}

    class _Recorder(ShapeProp):
        def run_node(self, n: torch.fx.Node) -> Any:
            result = super().run_node(n)
            results[n] = _tensors(result)
            if n.op == "get_attr":  # constants of the module, like its parameters
                ledger.exclude(results[n])
            else:
                reads = [t for source in n.all_input_nodes for t in results.get(source, [])]
                ledger.step(n.name, reads, results[n])
            return result

    with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints a traceback before raising
        _Recorder(graph).propagate(*inputs)
    return ledger.peak(FX)


def _hooks_peak(module: Any, inputs: tuple[Any, ...], excluded: list[Any]) -> PeakMemory:
    ledger = _Ledger(excluded)
    ledger.step("input", [], [t for x in inputs for t in _tensors(x)])
    names = {m: name or type(m).__name__ for name, m in module.named_modules()}

    def record(m: Any, args: tuple[Any, ...], output: Any) -> None:
        ledger.step(names[m], _tensors(args), _tensors(output))

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        output = module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    ledger.step("output", _tensors(output), [])
    return ledger.peak(HOOKS)


def _describe(inputs: tuple[Any, ...]) -> str:
    shapes = [tuple(t.shape) for x in inputs for t in _tensors(x)]
    return f"an input of shape {shapes[0]}" if len(shapes) == 1 else f"inputs of shapes {shapes}"


def peak_activation(module: Any, example_input: Any) -> PeakMemory:
    """Peak bytes of activations alive while `module` runs on `example_input` (see the module docstring).

    Args:
        module: any built `torch.nn.Module`; run once in eval mode, without gradients, on one thread (its
            training flag and the thread count are restored afterwards).
        example_input: a tensor, or a tuple of tensors passed as positional arguments; never modified
            (in-place ops see a copy).

    Returns:
        `PeakMemory(bytes, method, at)`: `method` is "torch.fx", or "forward hooks" where symbolic tracing
        failed; `at` names the node (or module) running at the peak.

    Raises:
        PeakMemoryError: the module cannot run on the input (one line: module, input shape, cause).
    """
    import torch

    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    inputs = tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs)
    excluded = [*module.parameters(), *module.buffers()]
    training, threads = module.training, torch.get_num_threads()
    module.eval()
    torch.set_num_threads(1)  # only shapes and aliasing matter; one thread is the fastest for such small runs
    try:
        with torch.no_grad():
            try:
                return _fx_peak(module, inputs, excluded)
            except Exception:  # untraceable or not runnable as traced: the eager run decides which
                pass
            try:
                return _hooks_peak(module, inputs, excluded)
            except Exception as exc:
                cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise PeakMemoryError(f"cannot run {type(module).__name__} on {_describe(inputs)}: {cause}") from None
    finally:
        module.train(training)
        torch.set_num_threads(threads)


def peak_activation_bytes(module: Any, example_input: Any) -> int:
    """Peak bytes of activations alive while `module` runs on `example_input` (`peak_activation(...).bytes`)."""
    return peak_activation(module, example_input).bytes


def example_input(space: Any, dataset: str | None = None) -> Any:
    """A batch-1 zero image for `space` on its `dataset` setting (`space.input_spec(dataset).shape`).

    Why zeros: the analysis needs shapes and aliasing only, never values.
    """
    import torch

    if not getattr(space, "datasets", None):
        raise PeakMemoryError(f"space {space.name!r} does not say its input size (no datasets); cannot build an example input")
    return torch.zeros(space.input_spec(dataset).shape)


__all__ = ["PeakMemory", "PeakMemoryError", "example_input", "peak_activation", "peak_activation_bytes"]
