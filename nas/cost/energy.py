"""Energy per inference (mJ, batch 1): measured where a machine exposes energy counters, else estimated.

Why three sources: almost no machine a search runs on can measure the target device's energy, and many
cannot measure their own (no RAPL/powercap in VMs and containers). So `energy@DEVICE` is, in order:

* `energy@this` (or `energy@local`): measured on this machine with the Linux powercap counters
  (`RaplCounter`), the network run through the PyTorch eager backend. An error where no counters exist.
* `energy@eyeriss`, `energy@fpga`, `energy@edgegpu` on NB201: HW-NAS-Bench's simulated/measured
  energies (mJ), when its pickle lies in the data directory (`find_hw_nas_bench`).
* `energy@model`: an ESTIMATE from operation counts, E = (3.7 + 0.9) pJ x MACs + 640 pJ x 32-bit words
  moved from DRAM (every layer's input, weights and output once), Horowitz's 45 nm figures (ISSCC 2014).
* `energy@DEVICE` for the devices of `device_power.json`: an ESTIMATE, nominal active power x the
  device's latency (the run's latency provider: measured table or shipped LUT), E = P x latency / batch.

Every estimate says so in `provenance()` (`"estimate": True`, method, power and its source), and the
command line prints a note for it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas import tables
from nas.cost.counts import layer_macs, layer_params
from nas.objectives import MetricProvider, PerArchProvider, TableColumnProvider, Tier
from nas.spaces.base import Arch, LayerSignature, SearchSpace

POWERCAP_ROOT = Path("/sys/class/powercap")
#: Where the powercap tree is read from (containers may mount the host's elsewhere).
POWERCAP_ENV = "NAS_POWERCAP_ROOT"
POWER_FILE = Path(__file__).with_name("device_power.json")
LOCAL_DEVICES = ("this", "local")
MODEL_DEVICE = "model"
#: HW-NAS-Bench devices with an `<device>_energy` metric, and how the benchmark obtained it.
HW_NAS_BENCH_ENERGY = {"eyeriss": "simulated", "fpga": "simulated", "edgegpu": "measured"}
HW_NAS_BENCH_FILES = ("HW-NAS-Bench-v1_0.pickle", "hw_nas_bench*.pickle")

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, in pJ.
FP32_MULT_PJ = 3.7
FP32_ADD_PJ = 0.9
DRAM_32BIT_PJ = 640.0
HOROWITZ = "Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014 (45 nm: FP32 mult 3.7 pJ, add 0.9 pJ, 32-bit DRAM read 640 pJ)"


class EnergyError(ValueError):
    """Energy cannot be measured or estimated as asked (no counters, unreadable file, unknown device)."""


# --------------------------------------------------------------------------------------- counters


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: its folder, its `name` file's text, and the counter's wrap-around range (µJ)."""

    path: Path
    name: str
    max_range_uj: int | None


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise EnergyError(f"cannot read energy counter {path}: permission denied (run as root or `chmod a+r` it)") from None
    except (OSError, ValueError) as exc:
        raise EnergyError(f"cannot read energy counter {path}: {exc}") from None


class RaplCounter:
    """Energy counters of Linux powercap (Intel RAPL, and AMD zones exposed the same way).

    Zones are the folders under `root` holding `energy_uj`. Only top-level zones are summed (`intel-rapl:0`,
    not its sub-zones `intel-rapl:0:0`, which are parts of it), and a `psys` (platform) zone only when it
    is the only one, because it already contains the packages. A counter wraps to 0 after
    `max_energy_range_uj`; one wrap per measurement is corrected (minutes at CPU power levels).

    Example:
        >>> counter = RaplCounter("/nonexistent")
        >>> counter.available()
        False
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root if root is not None else os.environ.get(POWERCAP_ENV, POWERCAP_ROOT))

    def zones(self) -> list[RaplZone]:
        """The zones that are summed, sorted by folder name."""
        if not self.root.is_dir():
            return []
        found = []
        for energy in sorted(self.root.glob("*/energy_uj")):
            folder = energy.parent
            if folder.name.count(":") > 1:
                continue
            name_file, range_file = folder / "name", folder / "max_energy_range_uj"
            name = name_file.read_text().strip() if name_file.is_file() else folder.name
            found.append(RaplZone(folder, name, _read_int(range_file) if range_file.is_file() else None))
        if len(found) > 1:
            found = [z for z in found if z.name != "psys"] or found
        return found

    def available(self) -> bool:
        """Whether any energy counter exists under `root` (readability is checked when reading)."""
        return bool(self.zones())

    def read_uj(self) -> dict[Path, int]:
        """Current counter of every zone (µJ)."""
        return {z.path: _read_int(z.path / "energy_uj") for z in self.zones()}

    def joules_between(self, before: Mapping[Path, int], after: Mapping[Path, int]) -> float:
        """Energy (J) summed over zones between two readings, correcting one wrap-around per zone."""
        total = 0
        for zone in self.zones():
            delta = after[zone.path] - before[zone.path]
            if delta < 0:
                if zone.max_range_uj is None:
                    raise EnergyError(f"energy counter {zone.path / 'energy_uj'} went backwards and {zone.path / 'max_energy_range_uj'} is missing")
                delta += zone.max_range_uj
            total += delta
        return total / 1e6

    def measure(self, fn: Callable[[], Any], repeats: int) -> float:
        """Joules per call of `fn`, over `repeats` back-to-back calls (the whole measured zones' energy).

        Counters update about every millisecond, so choose `repeats` for at least ~0.1 s of calls.
        """
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if not self.available():
            raise EnergyError(no_counters_message(self.root))
        before = self.read_uj()
        for _ in range(repeats):
            fn()
        return self.joules_between(before, self.read_uj()) / repeats


def no_counters_message(root: Path, metric: str = "energy@this") -> str:
    return (
        f"{metric}: no energy counters found under {root} (no */energy_uj); energy cannot be measured on this machine, "
        f"use an estimate instead: energy@DEVICE (nominal power x latency, e.g. energy@raspi4) or energy@model (op counts)"
    )


class MeasuredEnergyProvider(PerArchProvider):
    """`energy@this`: energy per inference measured with powercap counters, network run by PyTorch eager.

    The counters see the whole package (idle power and other processes included): this is the energy the
    machine spent while running the network, not the network's share alone.
    """

    tier = Tier.MEASURED

    def __init__(self, space: SearchSpace, *, dataset: str | None, counter: RaplCounter, metric: str = "energy@this", target_s: float = 0.5) -> None:
        self.metric = metric
        self.space = space
        self.dataset = dataset
        self.counter = counter
        self.target_s = target_s

    def _value(self, arch: Arch) -> float:
        from nas.cost.measure import backends
        from nas.cost.memory import example_input

        module = self.space.build(arch, dataset=self.dataset) if self.dataset else self.space.build(arch)
        runner = backends.get("torch")().compile(module, (example_input(self.space, self.dataset),), threads=1)
        runner()
        start = time.perf_counter()
        runner()
        once = max(time.perf_counter() - start, 1e-6)
        repeats = max(10, math.ceil(self.target_s / once))
        return self.counter.measure(runner, repeats) * 1e3

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "table": f"powercap:{self.counter.root}",
            "estimate": False,
            "method": "powercap energy counters over repeated eager PyTorch calls, 1 thread, batch 1 (whole package)",
            "zones": [z.name for z in self.counter.zones()],
            "units": "mJ",
        }


# --------------------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class DevicePower:
    """Nominal active power of a device (`watts`), the batch its latency is timed at, and where it is from."""

    device: str
    watts: float
    batch: int
    source: str
    date: str


def device_powers(path: Path = POWER_FILE) -> dict[str, DevicePower]:
    """The shipped nominal power figures (`device_power.json`), validated."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        date = str(data.get("date", ""))
        out = {}
        for device, entry in data["devices"].items():
            watts, batch, source = float(entry["watts"]), int(entry["batch"]), str(entry["source"])
            if not (math.isfinite(watts) and watts > 0 and batch >= 1 and source):
                raise ValueError(f"device {device!r} needs watts > 0, batch >= 1 and a source")
            out[device] = DevicePower(device, watts, batch, source, date)
        return out
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnergyError(f"power figures {path} are unusable ({type(exc).__name__}: {exc}); expected {{'devices': {{NAME: {{'watts', 'batch', 'source'}}}}}}") from None


def _latency_label(provenance: Mapping[str, Any]) -> str:
    table = str(provenance.get("table", provenance.get("provider", "latency provider")))
    if table.startswith("lut:"):
        return f"LUT {Path(table.removeprefix('lut:')).name}"
    return f"table {table}"


class PowerLatencyEnergyProvider(MetricProvider):
    """`energy@DEVICE` ESTIMATE (mJ per inference): nominal power (W) x latency (ms) / batch.

    Why this model: with only a device's latency known, energy = average power x time is the one
    defensible first-order model; with one nominal power per device it ranks archs exactly as latency
    does, and gives the right order of magnitude across devices. It is not a measurement.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> a = space.enumerate()[0]
        >>> latency = TableColumnProvider("latency@toy", space, [space.to_string(a)], [2.0], source={"table": "toy"})
        >>> power = DevicePower("toy", 5.0, 1, "a made-up figure", "2026-11-23")
        >>> PowerLatencyEnergyProvider(latency, power).evaluate([a]).tolist()
        [10.0]
    """

    def __init__(self, latency: MetricProvider, power: DevicePower) -> None:
        self.metric = f"energy@{power.device}"
        self.latency = latency
        self.power = power
        self.tier = latency.tier

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.power.watts * np.asarray(self.latency.evaluate(archs), dtype=float) / self.power.batch

    def provenance(self) -> dict[str, Any]:
        latency = self.latency.provenance()
        per = f" / batch {self.power.batch}" if self.power.batch > 1 else ""
        return {
            **super().provenance(),
            "table": f"estimate: {self.power.watts:g} W x latency ({_latency_label(latency)}){per}",
            "estimate": True,
            "method": "nominal power x latency",
            "power_w": self.power.watts,
            "batch": self.power.batch,
            "source": self.power.source,
            "source_date": self.power.date,
            "latency": latency.get("table", latency.get("provider")),
            "units": "mJ",
            "note": f"nominal {self.power.watts:g} W x latency from {_latency_label(latency)}{per}",
        }


def _layer_words(sig: LayerSignature) -> int:
    """32-bit words one layer reads and writes: its input (both operands of an add), weights, output."""
    inputs = int(np.prod(sig.in_shape)) * (2 if sig.op == "add" else 1)
    if sig.op == "linear":
        outputs = sig.out_channels
    elif sig.op == "global_avgpool":
        outputs = sig.in_shape[1]
    elif len(sig.in_shape) == 4:
        height, width = (math.ceil(s / sig.stride) for s in sig.in_shape[2:])
        outputs = (sig.out_channels or sig.in_shape[1]) * height * width
    else:
        outputs = int(np.prod(sig.in_shape))
    return inputs + layer_params(sig) + outputs


class OpCountEnergyProvider(PerArchProvider):
    """`energy@model` ESTIMATE (mJ per inference): Horowitz's 45 nm energies per MAC and per DRAM word.

    E = (FP32 mult + add) x MACs + DRAM read x (inputs + weights + outputs of every layer, 32-bit words).
    Why: a device-free first-order model that, unlike latency x power, sees that moving data costs two
    orders of magnitude more than computing on it (no on-chip reuse is assumed, so it is pessimistic).
    Output sizes are ceil(size / stride) ("same" padding, as the spaces' convolutions and pools use).

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> arch = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        >>> 0 < float(OpCountEnergyProvider(space, dataset="cifar10").evaluate([arch])[0]) < 10
        True
    """

    def __init__(self, space: SearchSpace, *, dataset: str | None = None) -> None:
        self.metric = f"energy@{MODEL_DEVICE}"
        self.space = space
        self.dataset = dataset

    def _value(self, arch: Arch) -> float:
        layers = self.space.layers(arch, dataset=self.dataset) if self.dataset else self.space.layers(arch)
        macs = sum(layer_macs(sig) for sig in layers)
        words = sum(_layer_words(sig) for sig in layers)
        return ((FP32_MULT_PJ + FP32_ADD_PJ) * macs + DRAM_32BIT_PJ * words) * 1e-9

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "table": "estimate: op-count model (Horowitz 45 nm)",
            "estimate": True,
            "method": "op-count model: 4.6 pJ per MAC + 640 pJ per 32-bit DRAM word of each layer's inputs, weights, outputs",
            "source": HOROWITZ,
            "units": "mJ",
            "note": "op-count model, 4.6 pJ/MAC + 640 pJ per 32-bit DRAM word (Horowitz, ISSCC 2014, 45 nm)",
        }


# --------------------------------------------------------------------------------------- HW-NAS-Bench


def find_hw_nas_bench(data_dir: str | Path | None) -> Path | None:
    """The HW-NAS-Bench pickle in the data directory (`HW-NAS-Bench-v1_0.pickle` or `hw_nas_bench*.pickle`)."""
    folder = tables.find_data_dir(data_dir)
    if folder is None or not folder.is_dir():
        return None
    for pattern in HW_NAS_BENCH_FILES:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found[0]
    return None


def hw_nas_bench_energy(device: str, space: SearchSpace, path: Path, *, dataset: str, data_dir: str | Path | None) -> TableColumnProvider:
    """HW-NAS-Bench's `<device>_energy` (mJ) of every NB201 arch, keyed through the official arch index."""
    column = f"energy@{device}"
    hw = tables.load_hw_nas_bench(path, dataset)
    if column not in hw:
        raise EnergyError(f"{path} has no {device}_energy for {dataset}; it has {sorted(c for c in hw.columns if c != 'arch_idx')}")
    index = tables.nb201(dataset, devices=[], data_dir=data_dir)[["arch", "arch_idx"]]
    joined = index.merge(hw[["arch_idx", column]], on="arch_idx", how="inner")
    return TableColumnProvider(
        column,
        space,
        joined["arch"].tolist(),
        joined[column].to_numpy(dtype=float),
        source={
            "table": f"hw-nas-bench:{path.name}/{dataset}/{device}_energy",
            "estimate": False,
            "method": f"HW-NAS-Bench {HW_NAS_BENCH_ENERGY[device]} energy",
            "units": "mJ",
        },
        tier=Tier.KNOWN,
    )


# --------------------------------------------------------------------------------------- resolution


def energy_provider(
    device: str,
    space: SearchSpace,
    *,
    dataset: str | None,
    data_dir: str | Path | None,
    latency: Callable[[str], MetricProvider],
) -> MetricProvider:
    """The provider of `energy@device` (see the module docstring for the order); `latency(device)` gives
    the run's latency provider for a device, for the power x latency estimate."""
    if device in LOCAL_DEVICES:
        counter = RaplCounter()
        if not counter.available():
            raise EnergyError(no_counters_message(counter.root, f"energy@{device}"))
        return MeasuredEnergyProvider(space, dataset=dataset, counter=counter, metric=f"energy@{device}")
    if device == MODEL_DEVICE:
        return OpCountEnergyProvider(space, dataset=dataset)
    if device in HW_NAS_BENCH_ENERGY and space.name == "nb201":
        path = find_hw_nas_bench(data_dir)
        if path is not None:
            return hw_nas_bench_energy(device, space, path, dataset=dataset or "cifar10", data_dir=data_dir)
    powers = device_powers()
    if device not in powers:
        raise tables.UnknownDeviceError(
            f"unknown device {device!r} for energy; known: {', '.join(sorted(powers))} (nominal power x latency), "
            f"{MODEL_DEVICE} (op counts), {'/'.join(LOCAL_DEVICES)} (counters of this machine), "
            f"{', '.join(HW_NAS_BENCH_ENERGY)} (HW-NAS-Bench pickle in the data directory)"
        )
    return PowerLatencyEnergyProvider(latency(device), powers[device])


__all__ = [
    "DevicePower",
    "EnergyError",
    "MeasuredEnergyProvider",
    "OpCountEnergyProvider",
    "PowerLatencyEnergyProvider",
    "RaplCounter",
    "RaplZone",
    "device_powers",
    "energy_provider",
    "find_hw_nas_bench",
    "hw_nas_bench_energy",
]
