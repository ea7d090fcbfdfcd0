from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.accuracy import zero_cost
from nas.accuracy.predictors import ArchEncoder, effective_features, make_predictor
from nas.accuracy.predictors._zero_cost_features import (
    FEATURE_PROXIES,
    ProxySettings,
    ZeroCostFeatureError,
    _proxy_space,
    effective_archs,
    to_features,
    zero_cost_features,
)
from nas.spaces import get_space

torch.set_num_threads(1)
SPACE = get_space("nb201")
LIVE = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
# the same network as LIVE: node 2's only input edge is cut, so its outgoing conv is dead
DEAD_A = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEAD_B = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_cells_with_the_same_effective_cell_get_the_same_features_and_the_cache_is_reused(tmp_path, monkeypatch):
    archs = [SPACE.from_string(s) for s in (DEAD_A, DEAD_B, LIVE)]
    first = zero_cost_features(SPACE, archs, cache_dir=tmp_path)
    assert first.shape == (3, len(FEATURE_PROXIES)) and np.isfinite(first).all()
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])
    (cache_file,) = tmp_path.glob("*.csv")
    assert len(cache_file.read_text().splitlines()) == 1 + 2  # header + two distinct effective cells

    def refuse(*args, **kwargs):
        raise AssertionError("a cached cell was scored again")

    monkeypatch.setattr(zero_cost, "arch_proxies", refuse)
    np.testing.assert_array_equal(zero_cost_features(SPACE, archs, cache_dir=tmp_path), first)


def test_features_are_the_transformed_proxies_of_the_short_network_on_digits(tmp_path):
    settings = ProxySettings()
    arch = SPACE.from_string(LIVE)
    inputs, targets = zero_cost.digits_batch(settings.batch, size=settings.size, seed=settings.seed)
    raw = zero_cost.arch_proxies(_proxy_space(SPACE, settings), arch, inputs, targets, FEATURE_PROXIES, seed=settings.seed, num_classes=10)
    expected = [raw["nwot"], -np.log(-raw["jacob_cov"]), np.log1p(raw["synflow"])]
    np.testing.assert_allclose(zero_cost_features(SPACE, [arch], cache_dir=tmp_path)[0], expected, rtol=1e-9)


def test_a_cell_without_a_route_gets_finite_features_below_every_live_cell(tmp_path):
    features = zero_cost_features(SPACE, [SPACE.from_string(EMPTY), SPACE.from_string(LIVE)], cache_dir=tmp_path)
    assert np.isfinite(features).all()
    assert (features[0] < features[1]).all()


def test_to_features_turns_degenerate_raw_scores_into_fixed_floors():
    raw = np.array([[-np.inf, np.nan, 0.0], [250.0, -40.0, 1e12]])
    out = to_features(raw)
    assert np.isfinite(out).all() and (out[0] < out[1]).all()


def test_a_cache_file_with_other_columns_is_refused_in_one_line(tmp_path):
    key = ProxySettings().key()
    (tmp_path / f"{SPACE.name}__{key}.csv").write_text("arch,snip\nx,1.0\n")
    with pytest.raises(ZeroCostFeatureError, match="delete it to rebuild") as info:
        zero_cost_features(SPACE, [SPACE.from_string(LIVE)], cache_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_effective_zc_encoding_appends_the_features_to_the_effective_encoding():
    archs = [SPACE.from_string(s) for s in (LIVE, DEAD_A)]
    encoded = ArchEncoder(SPACE, "effective_zc").fit(archs).transform(archs)
    base = effective_features(SPACE, archs)
    np.testing.assert_array_equal(encoded[:, : base.shape[1]], base)
    np.testing.assert_array_equal(encoded[:, base.shape[1] :], zero_cost_features(SPACE, archs))


def test_effective_archs_sets_dead_ops_to_none():
    (cleaned,) = effective_archs(SPACE, [SPACE.from_string(DEAD_A)])
    assert cleaned["edge_2_3"] == "none" and cleaned["edge_0_1"] == "nor_conv_3x3"


def test_trees_default_to_the_zero_cost_encoding_on_nb201_and_to_onehot_where_it_is_missing():
    assert make_predictor("trees", SPACE).named_steps["encode"].kind == "effective_zc"
    assert make_predictor("trees", get_space("fbnet")).named_steps["encode"].kind == "onehot"


def test_a_space_without_a_short_network_is_refused_in_one_line():
    with pytest.raises(ZeroCostFeatureError, match="NB201-family") as info:
        _proxy_space(get_space("fbnet"), ProxySettings())
    assert "\n" not in str(info.value)
