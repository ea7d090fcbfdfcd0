"""How `latency@DEVICE` resolves: measured table first (shipped for NB201), then one LUT; the device lists
that `nas devices` and the errors show resolve, and a device with several backends' LUTs is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nas import tables
from nas.cli import app
from nas.cost import latency_provider
from nas.cost.lut import INTERCEPT, LUT, AmbiguousLUTError, LUTProvider, find_lut, latency_devices, lut_names
from nas.objectives import TableColumnProvider
from nas.spaces import get_space, space_names

NB201 = get_space("nb201")


def test_nb201_latency_without_a_data_dir_is_the_shipped_measured_value(no_data_dir):
    provider = latency_provider("raspi4", NB201, dataset="cifar10", data_dir=None)
    assert isinstance(provider, TableColumnProvider)
    info = provider.provenance()
    shipped = tables.shipped_latency_table("nb201")
    assert info["source"] == str(shipped) and info["origin"].startswith("shipped with nas") and info["estimate"] is False
    assert info["sha256"] == tables.file_sha256(shipped)
    raw = pd.read_csv(shipped).set_index("arch_str")
    archs = NB201.enumerate()[:: 1000]
    values = provider.evaluate(archs)
    np.testing.assert_array_equal(values, raw.loc[[NB201.to_string(a) for a in archs], "raspi4"].to_numpy(dtype=float))


def test_nb201_latency_is_the_same_number_with_or_without_the_data_dir(shared_data, monkeypatch):
    archs = NB201.enumerate()[:: 500]
    with_dir = latency_provider("pixel3", NB201, dataset="cifar10", data_dir=str(shared_data))
    assert with_dir.provenance()["origin"] == "data directory"
    monkeypatch.setenv(tables.DATA_DIR_ENV, tables.NO_DATA_DIR)
    without = latency_provider("pixel3", NB201, dataset="cifar10", data_dir=None)
    np.testing.assert_array_equal(with_dir.evaluate(archs), without.evaluate(archs))
    assert with_dir.provenance()["sha256"] == without.provenance()["sha256"]


@pytest.mark.parametrize("space_name", space_names())
def test_every_listed_device_resolves_for_its_space(space_name, no_data_dir):
    space = get_space(space_name)
    arch = space.sample(np.random.default_rng(0))
    for device in latency_devices(space):
        provider = latency_provider(device, space, dataset=next(iter(space.datasets)), data_dir=None)
        assert provider.metric == f"latency@{device}"
        assert provider.evaluate([arch])[0] > 0, device


def test_unknown_device_error_lists_exactly_the_devices_that_resolve(no_data_dir):
    with pytest.raises(tables.UnknownDeviceError) as info:
        latency_provider("1080ti_64", NB201, dataset="cifar10", data_dir=None)  # an FBNet-only LUT
    message = str(info.value).strip("'\"")
    listed = message.split("known devices: ", 1)[1].split(", ")
    assert message.startswith("unknown device '1080ti_64' for latency in space 'nb201'") and "\n" not in message
    assert listed == latency_devices(NB201) and "1080ti_64" not in listed and "epyc_zen5" not in listed
    assert "epyc_zen5__torch" in listed and "raspi4" in listed


def test_nas_devices_prints_the_list_that_resolves(no_data_dir, monkeypatch):
    monkeypatch.setattr("nas.cli.console.width", 1000)
    for space in ("nb201", "fbnet"):
        result = CliRunner().invoke(app, ["devices", "--space", space])
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines()[-1] == ", ".join(latency_devices(get_space(space)))


def test_a_device_with_several_backends_luts_is_refused_naming_each_choice(no_data_dir):
    with pytest.raises(AmbiguousLUTError) as info:
        latency_provider("epyc_zen5", NB201, dataset="cifar10", data_dir=None)
    message = str(info.value)
    assert message == (
        "latency@epyc_zen5 is ambiguous in space 'nb201': LUTs of 3 backends (onnxruntime, torch, tvm); "
        "name one: latency@epyc_zen5__onnxruntime, latency@epyc_zen5__torch or latency@epyc_zen5__tvm"
    )
    provider = latency_provider("epyc_zen5__tvm", NB201, dataset="cifar10", data_dir=None)
    assert isinstance(provider, LUTProvider) and provider.provenance()["backend"] == "tvm"
    assert provider.provenance()["table"].endswith("epyc_zen5__tvm.csv")


def test_the_only_backend_covering_a_space_answers_to_the_bare_device_name(no_data_dir):
    from nas.spaces import get_space

    # epyc_zen4 has LUTs of two backends for nb201 (onnxruntime, torch) but of one for ofa_mbv3_small.
    provider = latency_provider("epyc_zen4", get_space("ofa_mbv3_small"), dataset="digits", data_dir=None)
    info = provider.provenance()
    assert info["backend"] == "onnxruntime" and info["table"].endswith("epyc_zen4__onnxruntime.csv") and info["estimate"] is True


def _toy(path, space="nb201"):
    LUT.from_costs(space, {INTERCEPT: 1.0}, device=path.stem.split("__")[0]).save(path)


def test_find_lut_rule_on_a_folder_of_luts(tmp_path):
    _toy(tmp_path / "dev__a.csv")
    _toy(tmp_path / "dev__b.csv")
    _toy(tmp_path / "dev__c.csv", space="fbnet")
    _toy(tmp_path / "solo__a.csv")
    pd.DataFrame({"space": ["nb201"], "arch": ["x"]}).to_csv(tmp_path / "solo__a.validation.csv", index=False)
    with pytest.raises(AmbiguousLUTError, match=r"name one: latency@dev__a or latency@dev__b$"):
        find_lut("dev", "nb201", directory=tmp_path)
    assert find_lut("dev", "fbnet", directory=tmp_path) == tmp_path / "dev__c.csv"
    assert find_lut("dev", "nb201", backend="b", directory=tmp_path) == tmp_path / "dev__b.csv"
    assert find_lut("solo", "nb201", directory=tmp_path) == tmp_path / "solo__a.csv"  # the validation table is no LUT
    assert find_lut("dev__c", "nb201", directory=tmp_path) is None
    _toy(tmp_path / "dev.csv")
    assert find_lut("dev", "nb201", directory=tmp_path) == tmp_path / "dev.csv"  # the plain device file wins
    assert lut_names("nb201", tmp_path) == ["dev", "dev__a", "dev__b", "solo", "solo__a"]
    assert lut_names("fbnet", tmp_path) == ["dev", "dev__c"]
