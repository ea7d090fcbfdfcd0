from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nas import tables
from nas.cli import app
from nas.cost.energy import (
    POWERCAP_ENV,
    EnergyError,
    MeasuredEnergyProvider,
    OpCountEnergyProvider,
    PowerLatencyEnergyProvider,
    RaplCounter,
    _layer_words,
    device_powers,
)
from nas.objectives import MetricName
from nas.run import RunConfig, resolve_provider
from nas.spaces import get_space
from nas.spaces.base import LayerSignature

RANGE_UJ = 262_143_328_850  # a real package's max_energy_range_uj


def write_zone(root: Path, folder: str, name: str, energy_uj: int, max_range: int = RANGE_UJ) -> Path:
    zone = root / folder
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{name}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone / "energy_uj"


def advance(counter_file: Path, uj: int, max_range: int = RANGE_UJ) -> None:
    counter_file.write_text(f"{(int(counter_file.read_text()) + uj) % max_range}\n")


@pytest.fixture
def space():
    return get_space("nb201")


@pytest.fixture
def some_archs(space):
    return [space.enumerate()[i] for i in (0, 777, 5000, 15_624)]


def test_rapl_counter_sums_package_zones_and_corrects_wrap_around(tmp_path):
    package = write_zone(tmp_path, "intel-rapl:0", "package-0", RANGE_UJ - 1_500)
    core = write_zone(tmp_path, "intel-rapl:0:0", "core", 0)  # part of the package: not added again
    psys = write_zone(tmp_path, "intel-rapl:1", "psys", 0)  # the platform contains the package
    (tmp_path / "intel-rapl").mkdir()  # the control-type folder has no counter

    def one_inference() -> None:
        advance(package, 1_000)
        advance(core, 700)
        advance(psys, 5_000)

    counter = RaplCounter(tmp_path)
    assert counter.available() and [z.name for z in counter.zones()] == ["package-0"]
    joules = counter.measure(one_inference, repeats=3)  # 3,000 µJ across the wrap: 1,500 before it, 1,500 after
    assert int(package.read_text()) == 1_500
    assert joules == pytest.approx(1e-3)


def test_counter_going_backwards_without_a_range_file_names_the_file(tmp_path):
    package = write_zone(tmp_path, "intel-rapl:0", "package-0", 100)
    (package.parent / "max_energy_range_uj").unlink()
    with pytest.raises(EnergyError, match=r"intel-rapl:0/energy_uj went backwards and .*max_energy_range_uj is missing"):
        RaplCounter(tmp_path).measure(lambda: package.write_text("50\n"), repeats=1)


def test_unreadable_counter_is_one_line_naming_the_file(tmp_path, monkeypatch):
    package = write_zone(tmp_path, "intel-rapl:0", "package-0", 100)
    read_text = Path.read_text

    def guarded(self: Path, *args, **kwargs) -> str:
        if self == package:
            raise PermissionError(13, "Permission denied")
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", guarded)
    with pytest.raises(EnergyError) as info:
        RaplCounter(tmp_path).read_uj()
    assert str(info.value) == f"cannot read energy counter {package}: permission denied (run as root or `chmod a+r` it)"


def test_energy_at_this_without_counters_is_one_line_naming_the_path_and_the_estimates(tmp_path, monkeypatch, space):
    monkeypatch.setenv(POWERCAP_ENV, str(tmp_path / "powercap"))
    assert not RaplCounter().available()
    with pytest.raises(EnergyError) as info:
        resolve_provider("energy@this", space, RunConfig(objectives=["accuracy:max", "energy@this:min"]))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"energy@this: no energy counters found under {tmp_path / 'powercap'}")
    assert "energy@raspi4" in message


def test_energy_at_local_measures_with_the_counters_in_millijoules(tmp_path, monkeypatch, space):
    write_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    monkeypatch.setenv(POWERCAP_ENV, str(tmp_path))
    provider = resolve_provider("energy@local", space, RunConfig(objectives=["accuracy:max", "energy@local:min"]))
    assert isinstance(provider, MeasuredEnergyProvider) and provider.provenance()["estimate"] is False

    class Counter(RaplCounter):
        """The fake zone cannot see the CPU work, so each run of the network is charged 2 mJ here."""

        def measure(self, fn, repeats):
            outputs = [fn() for _ in range(repeats)]
            assert all(tuple(o.shape) == (1, 10) for o in outputs)
            return 2e-3

    provider = MeasuredEnergyProvider(space, dataset="cifar10", counter=Counter(tmp_path), target_s=0.001)
    arch = space.enumerate()[0]
    assert provider.evaluate([arch, arch]).tolist() == [2.0, 2.0]


def test_estimate_equals_nominal_power_times_lut_latency(space, some_archs, no_data_dir):
    config = RunConfig(objectives=["accuracy:max", "energy@raspi4:min"])
    energy = resolve_provider("energy@raspi4", space, config)
    latency = resolve_provider("latency@raspi4", space, config)
    assert device_powers()["raspi4"].watts == 6.4
    np.testing.assert_allclose(energy.evaluate(some_archs), 6.4 * latency.evaluate(some_archs))
    assert energy.known


def test_batched_devices_divide_the_batch_latency_by_the_batch(space, some_archs, no_data_dir):
    config = RunConfig(objectives=["accuracy:max", "energy@1080ti_256:min"])
    energy = resolve_provider("energy@1080ti_256", space, config).evaluate(some_archs)
    latency = resolve_provider("latency@1080ti_256", space, config).evaluate(some_archs)
    np.testing.assert_allclose(energy, 250.0 * latency / 256)


def test_estimate_is_labelled_in_provenance(space, no_data_dir):
    prov = resolve_provider("energy@raspi4", space, RunConfig(objectives=["accuracy:max", "energy@raspi4:min"])).provenance()
    assert prov["estimate"] is True and prov["method"] == "nominal power x latency" and prov["power_w"] == 6.4
    assert "Raspberry Pi 4" in prov["source"] and prov["units"] == "mJ"
    assert prov["note"] == "nominal 6.4 W x latency from table nb201/latency_ms/raspi4"  # the shipped measured table


def test_power_figures_cover_every_nb201_device_with_a_source():
    powers = device_powers()
    assert set(tables.NB201_DEVICES) <= set(powers)
    assert powers["eyeriss"].watts == 0.278 and powers["titan_rtx_1"].watts == 280.0 and powers["gold_6226"].watts == 125.0
    assert all(p.source and p.watts > 0 for p in powers.values())


def test_broken_power_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "power.json"
    path.write_text('{"devices": {"raspi4": {"watts": -1, "batch": 1, "source": "x"}}}')
    with pytest.raises(EnergyError, match=r"power figures .*power.json are unusable .*device 'raspi4' needs watts > 0"):
        device_powers(path)


def test_unknown_device_is_one_line_listing_the_known_ones(space):
    with pytest.raises(tables.UnknownDeviceError) as info:
        resolve_provider("energy@toaster", space, RunConfig(objectives=["accuracy:max", "energy@toaster:min"]))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown device 'toaster' for energy; known: 1080ti_1, 1080ti_256")
    assert "raspi4" in message and "model (op counts)" in message and "this/local" in message


def test_energy_needs_a_device():
    with pytest.raises(ValueError, match="needs a device, e.g. energy@raspi4"):
        MetricName.parse("energy")


@pytest.mark.parametrize("filename", ["HW-NAS-Bench-v1_0.pickle", "hw_nas_bench_small.pickle"])
def test_hw_nas_bench_energy_is_read_from_a_pickle_in_the_data_directory(tmp_path, space, filename):
    n = 4
    metrics = {
        "eyeriss_energy": [1.5 + i for i in range(n)],
        "fpga_energy": [20.0 + i for i in range(n)],
        "edgegpu_energy": [300.0 + i for i in range(n)],
        "edgegpu_latency": [1.0] * n,
    }
    data = {"nasbench201": {"cifar10": metrics, "cifar100": metrics, "ImageNet16-120": metrics}}
    (tmp_path / filename).write_bytes(pickle.dumps(data))
    archs = [space.from_string(s) for s in tables.nb201_embedded_accuracy("cifar10")["arch"][:n]]
    config = RunConfig(objectives=["accuracy:max", "energy@fpga:min"], data_dir=str(tmp_path))
    for device, first in (("eyeriss", 1.5), ("fpga", 20.0), ("edgegpu", 300.0)):
        provider = resolve_provider(f"energy@{device}", space, config)
        assert provider.evaluate(archs).tolist() == [first + i for i in range(n)]
        prov = provider.provenance()
        assert prov["estimate"] is False and prov["table"] == f"hw-nas-bench:{filename}/cifar10/{device}_energy"


def test_without_the_pickle_eyeriss_energy_is_the_power_times_latency_estimate(space, no_data_dir):
    provider = resolve_provider("energy@eyeriss", space, RunConfig(objectives=["accuracy:max", "energy@eyeriss:min"]))
    assert isinstance(provider, PowerLatencyEnergyProvider) and provider.provenance()["power_w"] == 0.278


def test_layer_words_count_inputs_weights_and_outputs_by_hand():
    conv = LayerSignature("conv", (1, 16, 32, 32), out_channels=32, kernel=3, stride=2)
    assert _layer_words(conv) == 16 * 32 * 32 + 32 * 16 * 9 + 32 * 16 * 16
    assert _layer_words(LayerSignature("add", (1, 8, 4, 4), out_channels=8)) == 3 * 8 * 4 * 4
    assert _layer_words(LayerSignature("global_avgpool", (1, 64, 8, 8), out_channels=64)) == 64 * 8 * 8 + 64
    assert _layer_words(LayerSignature("linear", (1, 64), out_channels=10, bias=True)) == 64 + 64 * 10 + 10 + 10


def test_op_count_model_prices_macs_and_dram_words_and_is_labelled(space):
    none = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    conv = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    provider = OpCountEnergyProvider(space, dataset="cifar10")
    stem = LayerSignature("conv", (1, 3, 32, 32), out_channels=16, kernel=3)
    assert space.layers(none, dataset="cifar10")[0] == stem
    e_none, e_conv = provider.evaluate([none, conv])
    stem_mj = (4.6 * (32 * 32 * 16 * 27) + 640 * (3 * 32 * 32 + 16 * 27 + 16 * 32 * 32)) * 1e-9
    assert stem_mj < e_none < e_conv
    prov = provider.provenance()
    assert prov["estimate"] is True and "Horowitz" in prov["source"]


def test_search_with_an_energy_estimate_prints_the_estimate_note(tmp_path, no_data_dir):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["search", "--objectives", "accuracy:max,energy@raspi4:min", "--budget", "5", "--seed", "0", "--out", str(out), "--no-progress"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    note = "note: energy@raspi4 is an estimate (nominal 6.4 W x latency from table nb201/latency_ms/raspi4)"
    assert note in result.output
    shown = runner.invoke(app, ["pareto", str(out)], catch_exceptions=False)
    assert shown.exit_code == 0 and note in shown.output
