"""Cost providers, registered as evaluators by metric kind.

| metric | tier | what |
|---|---|---|
| `latency@DEVICE` | known | the measured table where it covers the device and space, else a shipped LUT |
| `energy@DEVICE` | known / measured | see `nas.cost.energy` (power x latency, op counts, HW-NAS-Bench, RAPL) |
| `params`, `flops`, `macs` | known | analytic counts over `space.layers(arch)` |
| `peak_memory` | measured | liveness of activations in the built network |

Latency and energy price the network at the space's reference input (the run's `dataset` setting, the
input the device tables and LUTs were measured with); counts and peak memory describe the network built
for the data a run trains on, when it trains.
"""

from __future__ import annotations

from nas import tables
from nas.cost.counts import CountProvider, layer_macs, layer_params
from nas.cost.table import table_latency
from nas.objectives import Evaluator, EvaluatorError, MetricProvider, ProviderRequest, Tier, evaluators
from nas.spaces.base import SearchSpace

__all__ = ["CountProvider", "latency_provider", "layer_macs", "layer_params", "table_latency"]


def latency_provider(device: str, space: SearchSpace, *, dataset: str, data_dir: str | None) -> MetricProvider:
    """Measured table when it covers the device and space (exact), else a shipped LUT for them."""
    from nas.cost.lut import LUT, LUTProvider, find_lut, shipped_devices

    if space.name == "nb201" and device in tables.NB201_DEVICES:
        has_table = tables.find_data_dir(data_dir) is not None
        lut_path = None if has_table else find_lut(device, space.name)
        if lut_path is None:
            return table_latency(space, device, data_dir)
    else:
        lut_path = find_lut(device, space.name)
    if lut_path is None:
        known = sorted(set(shipped_devices()) | (set(tables.NB201_DEVICES) if space.name == "nb201" else set()))
        raise tables.UnknownDeviceError(f"unknown device {device!r} for latency in space {space.name!r}; known devices: {', '.join(known)}")
    return LUTProvider(f"latency@{device}", LUT.load(lut_path), space, layer_kwargs={"dataset": dataset})


def _no_options(request: ProviderRequest) -> None:
    if request.options:
        raise EvaluatorError(f"{request.metric} takes no options, got {sorted(request.options)}")


def _latency(request: ProviderRequest) -> MetricProvider:
    _no_options(request)
    return latency_provider(request.argument, request.space, dataset=request.dataset, data_dir=request.data_dir)


def _energy(request: ProviderRequest) -> MetricProvider:
    from nas.cost.energy import energy_provider

    _no_options(request)

    def latency(device: str) -> MetricProvider:
        return latency_provider(device, request.space, dataset=request.dataset, data_dir=request.data_dir)

    return energy_provider(request.argument, request.space, dataset=request.dataset, data_dir=request.data_dir, latency=latency)


def _count(request: ProviderRequest) -> MetricProvider:
    _no_options(request)
    kind = request.spec.partition(":")[0]
    return CountProvider(kind, request.space, dataset=request.dataset, input_spec=request.input_spec)  # type: ignore[arg-type]


evaluators.add("latency", Evaluator(_latency, ("latency",), Tier.KNOWN, "latency@DEVICE", "measured latency table of DEVICE, else its shipped LUT (ms)"))
evaluators.add("energy", Evaluator(_energy, ("energy",), Tier.KNOWN, "energy@DEVICE", "energy per inference (mJ): tables, estimates or this machine's counters"))
evaluators.add("params", Evaluator(_count, ("params",), Tier.KNOWN, "params", "parameters (millions), counted"))
evaluators.add("flops", Evaluator(_count, ("flops",), Tier.KNOWN, "flops", "multiply-accumulates (millions), counted"))
evaluators.add("macs", Evaluator(_count, ("macs",), Tier.KNOWN, "macs", "multiply-accumulates (millions), counted"))
evaluators.add("peak_memory", Evaluator(_count, ("peak_memory",), Tier.MEASURED, "peak_memory", "peak activation memory (MB), traced in the built network"))
