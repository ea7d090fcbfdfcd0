"""Cost providers, registered as evaluators by metric kind.

| metric | tier | what |
|---|---|---|
| `latency@DEVICE` | known | the measured table where it covers the device and space (shipped for NB201), else a LUT (see `latency_provider`) |
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
    """The provider of `latency@device` in `space`, resolved in one order on every machine:

    1. a measured table covering the device and space (NB201's 18 devices): the data directory's
       `nb201/latency_ms.csv.gz`, else the copy shipped with nas (`nas.cost.table`);
    2. a LUT (`nas.cost.lut.find_lut`): `DEVICE.csv`, or the one `DEVICE__BACKEND.csv` covering the
       space; several backends are refused, pick one as `latency@DEVICE__BACKEND`;
    3. else an error listing every device that resolves for the space (`latency_devices`).
    """
    from nas.cost.lut import LUT, LUTProvider, find_lut, latency_devices
    from nas.cost.table import table_devices

    if device in table_devices(space.name):
        return table_latency(space, device, data_dir)
    lut_path = find_lut(device, space.name)
    if lut_path is None:
        known = latency_devices(space, data_dir)
        raise tables.UnknownDeviceError(f"unknown device {device!r} for latency in space {space.name!r}; known devices: {', '.join(known) or 'none'}")
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


evaluators.add("latency", Evaluator(_latency, ("latency",), Tier.KNOWN, "latency@DEVICE", "measured latency table of DEVICE (shipped for NB201), else its LUT; latency@DEVICE__BACKEND picks a backend's LUT (ms)"))
evaluators.add("energy", Evaluator(_energy, ("energy",), Tier.KNOWN, "energy@DEVICE", "energy per inference (mJ): tables, estimates or this machine's counters"))
evaluators.add("params", Evaluator(_count, ("params",), Tier.KNOWN, "params", "parameters (millions), counted"))
evaluators.add("flops", Evaluator(_count, ("flops",), Tier.KNOWN, "flops", "multiply-accumulates (millions), counted"))
evaluators.add("macs", Evaluator(_count, ("macs",), Tier.KNOWN, "macs", "multiply-accumulates (millions), counted"))
evaluators.add("peak_memory", Evaluator(_count, ("peak_memory",), Tier.MEASURED, "peak_memory", "peak activation memory (MB), traced in the built network"))
