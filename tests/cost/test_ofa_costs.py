"""Costs of the OFA space: MBConv operators (squeeze-excite, hard swish) measured, counted and fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from nas.cost.build import build_lut
from nas.cost.counts import layer_macs, layer_params
from nas.cost.measure.ops import module_for_signature
from nas.cost.measurements import fit_from_measurements, read_measurements
from nas.spaces import get_space
from nas.spaces.base import LayerSignature

TINY_OFA = {
    "name": "tiny_ofa",
    "family": "ofa_mbv3",
    "kernels": [3, 5],
    "expands": [3, 6],
    "depths": [1, 2],
    "resolutions": [8],
    "stem": {"channels": 4, "stride": 1},
    "first_block": {"channels": 4},
    "stages": [{"channels": 8, "stride": 2, "act": "relu", "se": True}, {"channels": 8, "stride": 1, "act": "h_swish", "se": False}],
    "head": {"final_expand": 16, "feature_mix": 24},
    "datasets": {"tiny": {"num_classes": 5, "input_size": 8, "channels": 3}},
}


@pytest.fixture(scope="module")
def tiny_ofa(tmp_path_factory):
    path = tmp_path_factory.mktemp("ofa") / "tiny_ofa.yaml"
    path.write_text(yaml.safe_dump(TINY_OFA))
    return get_space(str(path))


@pytest.mark.parametrize(
    "sig",
    [
        LayerSignature("hswish", (1, 6, 5, 5), out_channels=6),
        LayerSignature("hsigmoid", (1, 6, 1, 1), out_channels=6),
        LayerSignature("mul", (1, 6, 5, 5), out_channels=6),
        LayerSignature("conv", (1, 6, 1, 1), out_channels=3, bias=True),
    ],
)
def test_mbconv_operators_build_run_and_count(sig):
    module, inputs = module_for_signature(sig)
    out = module(*inputs)
    assert tuple(out.shape)[:2] == (1, sig.out_channels)
    assert layer_params(sig) == sum(p.numel() for p in module.parameters())
    assert layer_macs(sig) >= 0


def test_a_lut_built_for_the_ofa_space_prices_its_subnets(tiny_ofa, fast_timing):
    lut = build_lut(tiny_ofa, "torch", processes=1, timing=fast_timing, device="test-cpu")
    rng = np.random.default_rng(0)
    archs = [tiny_ofa.sample(rng) for _ in range(5)]
    predicted = lut.predict(tiny_ofa, archs)
    assert (predicted > 0).all()
    kinds = {key.split(":")[0] for key in lut.table["key"]}
    assert {"conv", "bn", "relu", "hswish", "hsigmoid", "mul", "add", "global_avgpool", "linear"} <= kinds


def test_a_measurement_table_keyed_by_ks_e_d_r_fits_a_lut(tmp_path):
    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(40)]
    flops = np.array([sum(layer_macs(s) for s in space.layers(a)) for a in archs]) / 1e6
    rows = [space.table_row(a) for a in archs]
    frame = pd.DataFrame(rows).assign(idx=range(40), dev_a=0.5 + flops / 100, dev_b=1.0 + flops / 80)
    path = tmp_path / "ofa.csv"
    frame.to_csv(path, index=False)
    table = read_measurements(path, space)
    assert table.devices == ["dev_a", "dev_b"] and table.archs == archs
    report = fit_from_measurements(table, "dev_b", samples=10, seed=0, references=["dev_a"])
    assert report.validation["spearman"] > 0.9 and report.validation["n"] == 30
    assert np.allclose(report.lut.predict(space, archs[:3]), frame.dev_b[:3], rtol=0.2)
