"""The measurement jobs that run inside a fresh process: time operators, time whole networks.

Why top-level functions: `run_fresh` spawns a new interpreter that imports its target by module path.
Both jobs shuffle their work with a per-process seed, so a slow phase of a process (a neighbour's burst,
thermal state) spreads over all items instead of always hitting the same ones.

What the operator job measures, per process (each the `statistic` of batched samples, in ms: "min"
by default, see `nas.cost.build.DEFAULT_TIMING`):
- `null`: the cheapest real operator; a backend's fixed cost of one call (dispatch, session run).
- `per_op`: the marginal cost of one more tiny operator in a chain (`CHAIN` null ops vs one), i.e. the
  overhead a network pays per operator beyond the kernel itself.
- per signature, `delta`: its cost above `null` (the kernel's work). Operators that compilers fold into
  their producer (`FOLDED` in `ops`, BatchNorm after a conv) are priced as the marginal cost of
  appending them to that producer, which is what a network pays for them.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from nas.cost.measure import Timing, backends, time_runner
from nas.cost.measure.ops import Chain, module_for_signature, null_module, producer_for
from nas.spaces.base import LayerSignature, SearchSpace

#: Length of the null-operator chain that measures the per-operator overhead.
CHAIN = 9


#: Per-process summaries of a timing's samples.
STATISTICS = ("min", "median")
#: Clocks: CPU time of the calling thread (not counting time preempted; single-threaded runs only) or wall time.
CLOCKS = {"thread": time.thread_time, "wall": time.perf_counter}


def _timing(backend: Any, module: nn.Module, inputs: tuple[Any, ...], threads: int, timing: dict[str, Any]) -> Timing:
    settings = {k: v for k, v in timing.items() if k not in ("statistic", "across")}
    clock = CLOCKS[settings.pop("clock", "wall")]
    return time_runner(backend.compile(module, inputs, threads=threads), clock=clock, **settings)


def _time(backend: Any, module: nn.Module, inputs: tuple[Any, ...], threads: int, timing: dict[str, Any]) -> float:
    result = _timing(backend, module, inputs, threads, timing)
    return result.min_ms if timing.get("statistic", "median") == "min" else result.median_ms


def time_signatures(
    backend_name: str,
    signatures: Sequence[LayerSignature],
    threads: int,
    timing: dict[str, Any],
    seed: int,
    *,
    tick: Callable[[int], None],
) -> dict[str, Any]:
    """Per-process operator timings: `{"null": ms, "per_op": ms, "delta": {key: ms}}`."""
    backend = backends.get(backend_name)()
    module, inputs = null_module()
    null_start = _time(backend, module, inputs, threads, timing)
    chain = _time(backend, Chain(*(null_module()[0] for _ in range(CHAIN))), inputs, threads, timing)
    delta: dict[str, float] = {}
    order = list(range(len(signatures)))
    random.Random(seed).shuffle(order)
    for i in order:
        sig = signatures[i]
        module, inputs = module_for_signature(sig)
        producer = producer_for(sig)
        if producer is None:
            delta[sig.key()] = _time(backend, module, inputs, threads, timing)
        else:
            first, first_inputs = module_for_signature(producer)
            alone = _time(backend, Chain(first), first_inputs, threads, timing)
            both = _time(backend, Chain(first, module), first_inputs, threads, timing)
            delta[sig.key()] = both - alone
        tick(1)
    null_end = _time(backend, *null_module(), threads, timing)
    null = statistics.fmean([null_start, null_end])
    for sig in signatures:
        if producer_for(sig) is None:
            delta[sig.key()] -= null
    return {"null": null, "null_start": null_start, "null_end": null_end, "per_op": (chain - null_start) / (CHAIN - 1), "delta": delta}


def time_archs(
    space: SearchSpace,
    arch_strings: Sequence[str],
    backend_name: str,
    threads: int,
    timing: dict[str, Any],
    seed: int,
    layer_kwargs: dict[str, Any],
    *,
    tick: Callable[[int], None],
) -> list[float]:
    """Per-process latency (ms, the timing's `statistic`) of each whole network, in `arch_strings` order.

    The input shape is the first layer's `in_shape`: the network's input as the space itself states it.
    """
    timings = time_archs_spread(space, arch_strings, backend_name, threads, timing, seed, layer_kwargs, tick=tick)
    key = "min_ms" if timing.get("statistic", "median") == "min" else "median_ms"
    return [t[key] for t in timings]


def time_archs_spread(
    space: SearchSpace,
    arch_strings: Sequence[str],
    backend_name: str,
    threads: int,
    timing: dict[str, Any],
    seed: int,
    layer_kwargs: dict[str, Any],
    *,
    tick: Callable[[int], None],
) -> list[dict[str, float]]:
    """`min_ms`, `median_ms` and `max_ms` of each whole network's timed samples, in `arch_strings` order."""
    import torch

    backend = backends.get(backend_name)()
    out: list[dict[str, float]] = [{}] * len(arch_strings)
    order = list(range(len(arch_strings)))
    random.Random(seed).shuffle(order)
    generator = torch.Generator().manual_seed(seed)
    for i in order:
        arch = space.from_string(arch_strings[i])
        shape = space.layers(arch, **layer_kwargs)[0].in_shape
        module = space.build(arch, **layer_kwargs).eval()
        x = torch.randn(*shape, generator=generator)
        result = _timing(backend, module, (x,), threads, timing)
        out[i] = {"min_ms": result.min_ms, "median_ms": result.median_ms, "max_ms": result.max_ms}
        tick(1)
    return out
