"""The fitted LUTs shipped in latency_luts/: present for every NB201 device, honest, usable offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from nas.cli import app
from nas.cost.lut import LUT, LUTProvider, find_lut
from nas.cost import latency_provider
from nas.spaces import get_space
from nas import tables
from nas.tables import NB201_DEVICES

NB201 = get_space("nb201")


@pytest.mark.parametrize("device", NB201_DEVICES)
def test_every_nb201_device_ships_a_fitted_lut_with_held_out_figures(device):
    path = find_lut(device, "nb201")
    assert path is not None and path.name == f"{device}.csv"
    v = LUT.load(path).validation("nb201")
    assert v["kind"] == "fitted" and v["device"] == device and v["k"] == 100 and v["seed"] == 0 and v["method"] == "transfer"
    assert device not in v["reference_devices"] and len(v["reference_devices"]) == len(NB201_DEVICES) - 1
    assert v["n"] == 15625 - 100 and 0.85 < v["spearman"] <= 1 and 0.6 < v["kendall"] <= 1
    assert len(v["source_sha256"]) == 64 and v["distillation"]["n"] == 15625


FBNET_DEVICES = [d.replace("_256", "_64") for d in NB201_DEVICES]  # HELP timed FBNet GPUs at batch 1/32/64


@pytest.mark.parametrize("device", FBNET_DEVICES)
def test_every_fbnet_device_ships_rows_that_price_a_network(device):
    fbnet = get_space("fbnet")
    lut = LUT.load(find_lut(device, "fbnet"))
    v = lut.validation("fbnet")
    assert v["kind"] == "fitted" and v["k"] == 100 and v["n"] == 5000 - 100 and 0.6 < v["spearman"] <= 1
    assert (lut.predict(fbnet, [fbnet.sample(np.random.default_rng(i)) for i in range(3)]) > 0).all()


@pytest.mark.parametrize("space", ["nb201", "fbnet"])
def test_fitted_luts_were_fitted_on_the_shipped_measured_table(space):
    sha = tables.file_sha256(tables.shipped_latency_table(space))
    devices = NB201_DEVICES if space == "nb201" else FBNET_DEVICES
    assert {LUT.load(find_lut(d, space)).validation(space)["source_sha256"] for d in devices} == {sha}


def test_a_fitted_lut_says_it_is_an_estimate_with_its_held_out_error(no_data_dir):
    fbnet = get_space("fbnet")
    provider = latency_provider("raspi4", fbnet, dataset="cifar100", data_dir=None)
    assert isinstance(provider, LUTProvider)
    info = provider.provenance()
    v = LUT.load(find_lut("raspi4", "fbnet")).validation("fbnet")
    assert info["estimate"] is True and info["kind"] == "fitted"
    assert info["note"].startswith("LUT raspi4.csv: fitted estimate") and f"MAPE {100 * v['mape']:.1f} %" in info["note"]
    assert f"from 100 networks of latency_ms.csv.gz; held-out on {v['n']} networks" in info["note"] and f"median error {100 * v['mdape']:.1f} %" in info["note"]


def test_search_on_a_shipped_lut_runs_end_to_end_without_the_data_dir(tmp_path, no_data_dir):
    out = tmp_path / "run"
    args = ["search", "--objectives", "accuracy:max,latency@epyc_zen5__torch:min", "--budget", "6", "--seed", "0", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    front = pd.read_csv(out / "pareto.csv", comment="#")
    lut = LUT.load(find_lut("epyc_zen5__torch", "nb201"))
    archs = [NB201.from_string(a) for a in front["arch"]]
    assert np.allclose(front["latency@epyc_zen5__torch"], lut.predict(NB201, archs))


def test_shipped_lut_ranks_the_measured_table_as_its_sidecar_says(shared_data):
    table = pd.read_csv(shared_data / "nb201" / "latency_ms.csv.gz").sample(1500, random_state=0)
    archs = [NB201.from_string(s) for s in table["arch_str"]]
    for device in ("pixel3", "titan_rtx_1"):
        lut = LUT.load(find_lut(device, "nb201"))
        rho = spearmanr(lut.predict(NB201, archs), table[device])[0]
        assert abs(rho - lut.validation("nb201")["spearman"]) < 0.02
