"""Bayesian optimisation with costs known before evaluation (nas.strategies._bayesian)."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest

from nas.accuracy import table_accuracy
from nas.accuracy.predictors import PredictorFactory, make_predictor
from nas.cost import CountProvider
from nas.cost.lut import LUT, LUTProvider, find_lut
from nas.objectives import MetricProvider, ObjectiveSet, Tier
from nas.pareto import hypervolume, pareto_mask
from nas.spaces import get_space
from nas.strategies import SearchContext, make_strategy, space_distributions
from nas.strategies._base import PricedMetrics
from nas.strategies._bayesian import BayesianSampler, ehvi_2d, hvi_2d, non_domination_probability

SPACE = get_space("nb201")


def test_ehvi_with_vanishing_uncertainty_is_the_exact_improvement():
    front = np.array([[-90.0, 10.0], [-85.0, 5.0], [-80.0, 2.0]])  # (-accuracy, latency), minimised
    ref = np.array([-10.0, 50.0])
    cost = np.array([1.0, 4.0, 7.0, 60.0])
    value = np.array([-70.0, -88.0, -95.0, -99.0])
    exact = hvi_2d(cost, value, front, ref, uncertain=0, known=1)
    assert exact[3] == 0.0  # beyond the reference cost nothing improves
    np.testing.assert_allclose(ehvi_2d(cost, value, np.full(4, 1e-9), front, ref, 0, 1), exact, atol=1e-6)
    # hand check for the candidate at cost 4, value -88: it dominates the region between its value and
    # the staircase (-80 on [4, 5), -85 on [5, 10), -90 from 10 on: nothing there)
    assert exact[1] == pytest.approx(1 * 8 + 5 * 3)


def test_ehvi_equals_the_monte_carlo_mean_of_the_improvement():
    rng = np.random.default_rng(0)
    front = np.array([[-90.0, 10.0], [-85.0, 5.0], [-80.0, 2.0]])
    ref = np.array([-10.0, 50.0])
    cost, mean, std = np.array([3.0, 6.0]), np.array([-82.0, -86.0]), np.array([2.0, 4.0])
    draws = rng.normal(mean, std, size=(200_000, 2))
    mc = np.mean([hvi_2d(cost, d, front, ref, 0, 1) for d in draws[:20_000]], axis=0)
    np.testing.assert_allclose(ehvi_2d(cost, mean, std, front, ref, 0, 1), mc, rtol=0.03)


def test_power_warp_is_monotone_so_the_front_is_unchanged():
    sampler = BayesianSampler(SPACE)
    rng = np.random.default_rng(1)
    F = np.column_stack([-rng.uniform(10, 92, 60) ** 1.5, rng.uniform(1, 50, 60)])
    warped = sampler._warp(F, uncertain=[0])
    assert np.array_equal(np.argsort(warped[:, 0]), np.argsort(F[:, 0]))
    assert np.array_equal(warped[:, 1], F[:, 1])
    assert np.array_equal(pareto_mask(warped), pareto_mask(F))
    assert np.array_equal(BayesianSampler(SPACE, warp="none")._warp(F, [0]), F)


def test_bad_bayesian_options_are_one_line_errors():
    with pytest.raises(ValueError, match="warp must be 'power' or 'none', got 'log'"):
        BayesianSampler(SPACE, warp="log")
    with pytest.raises(ValueError, match="n_initial must be >= 2, got 1"):
        BayesianSampler(SPACE, n_initial=1)
    with pytest.raises(ValueError, match=r"hunt_below must be in \[0, 1\), got 1.5"):
        BayesianSampler(SPACE, hunt_below=1.5)


def test_non_domination_probability_compares_with_the_best_front_point_no_costlier():
    front = np.array([[-90.0, 10.0, 3.0], [-85.0, 5.0, 1.0], [-80.0, 2.0, 1.0]])  # (-accuracy, latency, params)
    ref = np.array([-10.0, 50.0, 5.0])
    cost = np.array([[1.0, 0.5], [6.0, 1.0], [12.0, 3.0], [12.0, 0.5], [12.0, 2.0]])
    mean = np.array([-50.0, -85.0, -88.0, -88.0, -86.0])
    std = np.array([1.0, 2.0, 1.0, 1.0, 1.0])
    p = non_domination_probability(cost, mean, std, front, ref, 0, [1, 2])
    # nothing is as cheap as the first; the second ties the -85 point's level; the third must beat -90
    # (2 sd away); the fourth is cheaper in params than every point; the fifth must beat -85 (its mean does, by 1 sd)
    np.testing.assert_allclose(p, [1.0, 0.5, 0.02275, 1.0, 0.84134], atol=1e-4)


def _cost_provider(cost: str):
    if cost == "params":
        return CountProvider("params", SPACE, dataset="cifar10")
    path = find_lut(cost.split("@")[1], "nb201")
    assert path is not None, f"no shipped LUT for {cost}"
    return LUTProvider(cost, LUT.load(path), SPACE, layer_kwargs={"dataset": "cifar10"})


def _table_study(
    strategy: str,
    budget: int,
    seed: int,
    constraints: tuple[str, ...] = (),
    cost: str = "params",
    second_cost: str | None = None,
    **options,
) -> tuple[list, np.ndarray, np.ndarray]:
    """A table-backed study: accuracy x `cost` (x `second_cost`), every cost known before evaluation."""
    accuracy = table_accuracy(SPACE, "cifar10")
    names = [cost] + ([second_cost] if second_cost else [])
    providers = {name: _cost_provider(name) for name in names}
    objset = ObjectiveSet.parse(["accuracy:max"] + [f"{name}:min" for name in names], list(constraints))
    context = SearchContext(
        objset, tuple(names), lambda archs: {n: p.evaluate(archs) for n, p in providers.items()}, None, lambda n, e, o: make_predictor(n, SPACE, e, **o)
    )
    sampler = make_strategy(strategy, SPACE, seed=seed, constrained=bool(constraints), context=context, **options)
    study = optuna.create_study(directions=["minimize"] * (1 + len(names)), sampler=sampler)
    archs = []
    for _ in range(budget):
        trial = study.ask(fixed_distributions=space_distributions(SPACE))
        arch = SPACE.validate(trial.params)
        archs.append(arch)
        study.tell(trial, [-float(accuracy.evaluate([arch])[0])] + [float(p.evaluate([arch])[0]) for p in providers.values()])
    F = np.array([t.values for t in study.trials])
    every = SPACE.enumerate()
    all_F = np.column_stack([-accuracy.evaluate(every)] + [p.evaluate(every) for p in providers.values()])
    return archs, F, all_F


def test_bo_never_repeats_an_arch_and_beats_random_search_at_equal_queries():
    """Median over seeds 0-2 of the HV reached after 40 accuracy queries (accuracy x raspi4 latency from
    the shipped LUT). With counted params as the cost (few distinct values) BO needs more queries."""
    hv_bo, hv_random = [], []
    for seed in range(3):
        archs, F_bo, all_F = _table_study("bo", 40, seed=seed, cost="latency@raspi4")
        assert len(set(archs)) == len(archs)
        _, F_random, _ = _table_study("random", 40, seed=seed, cost="latency@raspi4")
        ref = all_F.max(axis=0)
        hv_bo.append(hypervolume(F_bo[pareto_mask(F_bo)], ref))
        hv_random.append(hypervolume(F_random[pareto_mask(F_random)], ref))
    assert np.median(hv_bo) > np.median(hv_random)


def test_bo_never_proposes_an_arch_that_breaks_a_known_constraint():
    archs, F, _ = _table_study("bo", 15, seed=1, constraints=("params<=0.5",))
    assert (F[:, 1] <= 0.5).all()


def test_bo_with_two_known_costs_uses_the_exact_3d_ehvi_and_beats_random_search():
    """Accuracy x raspi4 latency x params: median over seeds 0-2 of the HV after 30 queries."""
    hv = {"bo": [], "random": []}
    for seed in range(3):
        for strategy in hv:
            archs, F, all_F = _table_study(strategy, 30, seed=seed, cost="latency@raspi4", second_cost="params")
            assert len(set(archs)) == len(archs)
            hv[strategy].append(hypervolume(F[pareto_mask(F)], all_F.max(axis=0)))
    assert np.median(hv["bo"]) > np.median(hv["random"])


class _RefittedPrices(MetricProvider):
    """An estimate that prices the whole space from a 'model' whose version the test sets: the raspi4
    LUT's prices, scaled by a factor that depends on the version (so a new version changes the ranking)."""

    metric = "latency@mine"
    tier = Tier.ESTIMATE
    repriced = True

    def __init__(self) -> None:
        self.base = _cost_provider("latency@raspi4")
        self.version: int | None = None
        self.whole_space_calls = 0

    def prices_version(self, trials) -> int | None:
        return self.version

    def evaluate(self, archs) -> np.ndarray:
        if len(archs) == SPACE.size:
            self.whole_space_calls += 1
        base = self.base.evaluate(archs)
        return base if not self.version else base * (1.0 + 0.5 * self.version * (base > np.median(base)))


def test_bo_prices_with_a_refitted_estimate_and_reprices_only_when_its_version_changes():
    accuracy = table_accuracy(SPACE, "cifar10")
    provider = _RefittedPrices()
    objset = ObjectiveSet.parse(["accuracy:max", "latency@mine:min"], [])
    context = SearchContext(
        objset, (), None, None, PredictorFactory(SPACE), priced_metrics=("latency@mine",), priced=PricedMetrics({"latency@mine": provider})
    )
    sampler = BayesianSampler(SPACE, seed=0, context=context, surrogate_options={"n_restarts": 0})
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    archs = []

    def ask_and_tell(n: int) -> None:
        for _ in range(n):
            trial = study.ask(fixed_distributions=space_distributions(SPACE))
            arch = SPACE.validate(trial.params)
            archs.append(arch)
            study.tell(trial, [-float(accuracy.evaluate([arch])[0]), float(provider.evaluate([arch])[0])])

    ask_and_tell(2)  # the model cannot price yet: bo never asks it for the space
    assert provider.whole_space_calls == 0 and sampler._pool_known is None
    provider.version = 1
    ask_and_tell(6)  # initial steps and EHVI steps: one pricing of the pool for version 1
    assert provider.whole_space_calls == 1
    pool = SPACE.enumerate()
    np.testing.assert_array_equal(sampler._pool_known[:, 0], provider.evaluate(pool))
    provider.version = 2
    ask_and_tell(4)
    assert provider.whole_space_calls == 3  # one re-pricing for version 2 (plus the check above)
    np.testing.assert_array_equal(sampler._pool_known[:, 0], provider.evaluate(pool))
    assert len(set(archs)) == len(archs) == 12
    # the sampler still pickles (Optuna's contract), its priced metrics with it
    assert pickle.loads(pickle.dumps(sampler)).context.priced_metrics == ("latency@mine",)
