from __future__ import annotations

import numpy as np
import pytest

from nas.accuracy.multifidelity import Fidelity, MultiFidelityError, SuccessiveHalving, nb201_fidelities, promote
from nas.cost.counts import CountProvider
from nas.objectives import ObjectiveSet, TableColumnProvider
from nas.pareto import pareto_mask
from nas.spaces import get_space

SPACE = get_space("nb201")


def test_promotion_prefers_pareto_rank_over_the_first_objective_alone():
    # minimised: rows 0 and 3 are non-dominated; row 1 is better than row 3 on objective 0 only
    F = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 6.0], [3.0, 0.0]])
    assert promote(F, 2).tolist() == [0, 3]


def test_promotion_breaks_rank_ties_by_crowding_and_puts_infeasible_last():
    F = np.array([[0.0, 4.0], [1.0, 3.0], [1.1, 2.9], [4.0, 0.0]])
    assert promote(F, 3).tolist() == [0, 1, 3] or promote(F, 3).tolist() == [0, 2, 3]
    assert 0 not in promote(F, 3, feasible=np.array([False, True, True, True])).tolist()


def _toy(values_low, values_high):
    archs = SPACE.enumerate()[: len(values_low)]
    strings = [SPACE.to_string(a) for a in archs]
    low = TableColumnProvider("accuracy", SPACE, strings, values_low, source={})
    high = TableColumnProvider("accuracy", SPACE, strings, values_high, source={})
    return archs, [Fidelity("low", low, 1.0), Fidelity("high", high, 10.0)]


def test_rungs_shrink_by_eta_and_the_cost_counts_each_evaluation():
    archs, fidelities = _toy(np.arange(10.0), np.arange(10.0))
    result = SuccessiveHalving(fidelities, ObjectiveSet.parse("accuracy:max"), {}, eta=3).run(archs)
    assert [len(r) for r in result.rungs] == [10, 4]
    assert result.rungs[0]["promoted"].sum() == 4 and set(result.rungs[1]["arch"]) == set(archs[6:])
    assert result.cost == 10 * 1.0 + 4 * 10.0
    assert result.front["arch"].tolist() == [archs[9]] and result.front["fidelity"].tolist() == ["high"]


def test_a_schedule_without_a_provider_for_an_objective_is_refused():
    _, fidelities = _toy(np.arange(3.0), np.arange(3.0))
    with pytest.raises(MultiFidelityError, match=r"no provider for metric\(s\) \['params'\]"):
        SuccessiveHalving(fidelities, ObjectiveSet.parse("accuracy:max,params:min"), {})
    with pytest.raises(MultiFidelityError, match="eta must be > 1"):
        SuccessiveHalving(fidelities, ObjectiveSet.parse("accuracy:max"), {}, eta=1)


def test_nb201_12_epoch_rung_keeps_the_200_epoch_pareto_set_at_a_third_of_the_cost(shared_data):
    objectives = ObjectiveSet.parse("accuracy:max,params:min")
    cheap = {"params": CountProvider("params", SPACE, dataset="cifar10")}
    fidelities = nb201_fidelities(SPACE, "cifar10", shared_data)
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(SPACE.sample(rng) for _ in range(243)))
    result = SuccessiveHalving(fidelities, objectives, cheap, eta=3).run(archs)
    full = objectives.to_minimisation(np.c_[fidelities[1].provider.evaluate(archs), cheap["params"].evaluate(archs)])
    true_front = {archs[i] for i in np.flatnonzero(pareto_mask(full))}
    assert set(result.front["arch"]) == true_front
    assert result.cost < 0.4 * 200 * len(archs)
