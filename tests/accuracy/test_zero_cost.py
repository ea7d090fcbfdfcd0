from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.accuracy.zero_cost import PROXIES, ZeroCostInputError, ZeroCostProvider, _jacob_cov_score, _nwot_score, arch_proxies, compute_proxies, digits_batch
from nas.cost.counts import CountProvider
from nas.spaces import get_space

torch.set_num_threads(1)
SPACE = get_space("nb201")
GOOD = SPACE.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
POOR = SPACE.from_string("|avg_pool_3x3~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|")


@pytest.fixture(scope="module")
def batch():
    return digits_batch(8, seed=0)


def test_digits_batch_is_a_standardised_three_channel_32px_batch():
    X, y = digits_batch(16, seed=1)
    assert X.shape == (16, 3, 32, 32) and y.shape == (16,) and y.dtype == torch.int64
    assert abs(float(X.mean())) < 1e-5 and abs(float(X.std()) - 1) < 1e-2
    assert torch.equal(digits_batch(16, seed=1)[0], X) and not torch.equal(digits_batch(16, seed=2)[0], X)


def test_every_proxy_is_finite_and_deterministic_for_a_connected_cell(batch):
    X, y = batch
    first = arch_proxies(SPACE, GOOD, X, y, seed=3)
    assert list(first) == list(PROXIES) and all(np.isfinite(v) for v in first.values())
    assert arch_proxies(SPACE, GOOD, X, y, seed=3) == first
    assert arch_proxies(SPACE, GOOD, X, y, proxies=("snip",), seed=4)["snip"] != first["snip"]


def test_building_for_proxies_leaves_torchs_global_rng_alone(batch):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    arch_proxies(SPACE, GOOD, *batch, proxies=("nwot",), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_params_and_flops_equal_the_analytic_counts(batch):
    scores = arch_proxies(SPACE, GOOD, *batch, proxies=("params", "flops"), num_classes=10)
    assert scores["params"] == pytest.approx(CountProvider("params", SPACE, dataset="cifar10").evaluate([GOOD])[0])
    assert scores["flops"] == pytest.approx(CountProvider("flops", SPACE, dataset="cifar10").evaluate([GOOD])[0])


def test_proxies_rank_a_deep_conv_cell_above_a_pooling_cell(batch):
    good = arch_proxies(SPACE, GOOD, *batch, proxies=("synflow", "snip", "grad_norm", "nwot"), seed=0)
    poor = arch_proxies(SPACE, POOR, *batch, proxies=("synflow", "snip", "grad_norm", "nwot"), seed=0)
    assert all(good[p] > poor[p] for p in good), (good, poor)


def test_nwot_is_the_log_determinant_of_the_hamming_kernel():
    codes = [torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=torch.bool), torch.tensor([[1], [0], [0]], dtype=torch.bool)]
    kernel = np.zeros((3, 3))
    for c in codes:
        c = c.numpy().astype(float)
        kernel += c @ c.T + (1 - c) @ (1 - c).T  # units where two samples agree
    assert _nwot_score(codes) == pytest.approx(np.linalg.slogdet(kernel)[1])


def test_jacob_cov_rewards_uncorrelated_jacobians():
    rng = np.random.default_rng(0)
    independent = torch.tensor(rng.normal(size=(6, 50)))
    correlated = independent[:1] + 0.05 * torch.tensor(rng.normal(size=(6, 50)))
    assert _jacob_cov_score(independent) > _jacob_cov_score(correlated)


def test_a_cell_without_any_input_output_path_has_no_jacob_cov(batch):
    dead = SPACE.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    scores = arch_proxies(SPACE, dead, *batch, proxies=("jacob_cov", "synflow"))
    assert np.isnan(scores["jacob_cov"]) and scores["synflow"] == 0.0


def test_unknown_proxies_and_bad_batches_are_refused(batch):
    net = SPACE.build(GOOD)
    with pytest.raises(ZeroCostInputError, match="unknown zero-cost proxies \\['grasp'\\]"):
        compute_proxies(net, *batch, proxies=("grasp",))
    with pytest.raises(ZeroCostInputError, match="n >= 2"):
        compute_proxies(net, batch[0][:1], batch[1][:1])


def test_zero_cost_provider_scores_and_caches_archs(batch):
    provider = ZeroCostProvider(SPACE, "synflow", *batch)
    scores = provider.evaluate([GOOD, POOR, GOOD])
    assert scores[0] == scores[2] > scores[1] and len(provider._cache) == 2
    assert provider.provenance()["proxy"] == "synflow"
