from __future__ import annotations

import numpy as np
import pytest

from nas.cost.features import term_matrix
from nas.cost.lut import LUT, LUTError, MissingSignatureError
from nas.spaces import get_space

NB201 = get_space("nb201")
ARCHS = NB201.enumerate()[::211]


def _layer_costs() -> dict[str, float]:
    keys = sorted({sig.key() for a in NB201.enumerate()[::50] for sig in NB201.layers(a)})
    return {k: 0.001 * (i + 1) for i, k in enumerate(keys)}


def test_a_lut_without_term_rows_sums_its_layers_as_before():
    costs = _layer_costs()
    lut = LUT.from_costs("nb201", costs | {"intercept": 0.25}, device="toy")
    expected = [0.25 + sum(costs[sig.key()] for sig in NB201.layers(a)) for a in ARCHS]
    assert np.allclose(lut.predict(NB201, ARCHS), expected)


def test_term_rows_add_their_cost_times_the_term_value(tmp_path):
    costs = _layer_costs()
    plain = LUT.from_costs("nb201", costs, device="toy")
    with_terms = LUT.from_costs("nb201", costs | {"term:live_paths": 0.5, "term:choices:none": -0.125}, device="toy")
    path = with_terms.save(tmp_path / "toy.csv")
    loaded = LUT.load(path)
    values = term_matrix(NB201, ARCHS, ["term:live_paths", "term:choices:none"])
    expected = plain.predict(NB201, ARCHS) + values @ np.array([0.5, -0.125])
    assert np.allclose(loaded.predict(NB201, ARCHS), expected)
    assert not np.allclose(expected, plain.predict(NB201, ARCHS))


def test_an_unknown_term_row_is_a_one_line_lut_error(tmp_path):
    path = LUT.from_costs("nb201", _layer_costs() | {"term:wormholes": 1.0}, device="toy").save(tmp_path / "toy.csv")
    with pytest.raises(LUTError) as info:
        LUT.load(path).predict(NB201, ARCHS[:2])
    assert "unknown LUT term 'term:wormholes'" in str(info.value) and "\n" not in str(info.value)


def test_a_missing_operator_still_names_the_operator_and_the_arch():
    costs = _layer_costs()
    conv = next(k for k in costs if k.startswith("conv:in=1x16x32x32:out=16:k=3"))
    lut = LUT.from_costs("nb201", {k: v for k, v in costs.items() if k != conv}, device="toy")
    arch = NB201.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(MissingSignatureError) as info:
        lut.predict(NB201, [NB201.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), arch])
    assert f"no entry for operator {conv} needed by {NB201.to_string(arch)}" in str(info.value)
