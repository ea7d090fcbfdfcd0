"""Contract tests every `nas` strategy must pass (as Optuna's samplers share theirs)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import optuna
import pytest

from nas.spaces import get_space
from nas.strategies import EvolutionSampler, make_strategy, space_distributions, strategies

OURS = ["random", "evolution", "aging", "rl", "local"]
SPACE = get_space("nb201")


def toy_objectives(arch) -> tuple[float, float]:
    """Two conflicting objectives over the integer encoding: cheap to compute, with a real front."""
    idx = SPACE.encode(arch, "integer").astype(float)
    return float(idx.sum() + 0.1 * idx[0]), float(((4 - idx) ** 2).sum())


def run_study(name: str, seed: int, n_trials: int, study: optuna.Study | None = None, **options) -> optuna.Study:
    sampler = make_strategy(name, SPACE, seed=seed, **options)
    if study is None:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    else:
        study.sampler = sampler
    dists = space_distributions(SPACE)
    for _ in range(n_trials):
        trial = study.ask(fixed_distributions=dists)
        study.tell(trial, toy_objectives(SPACE.validate(trial.params)))
    return study


def archs_of(study: optuna.Study) -> list[str]:
    return [SPACE.to_string(SPACE.validate(t.params)) for t in study.trials]


@pytest.mark.parametrize("name", OURS)
def test_strategy_proposes_valid_archs_and_never_repeats_one(name):
    study = run_study(name, seed=1, n_trials=60)
    archs = archs_of(study)
    assert len(set(archs)) == 60


@pytest.mark.parametrize("name", OURS)
def test_same_seed_gives_same_proposals_in_process(name):
    assert archs_of(run_study(name, 3, 40)) == archs_of(run_study(name, 3, 40))
    assert archs_of(run_study(name, 3, 40)) != archs_of(run_study(name, 4, 40))


@pytest.mark.parametrize("name", OURS)
def test_same_seed_gives_same_proposals_in_a_subprocess(name):
    code = (
        "import json, sys; sys.path.insert(0, 'tests/strategies');"
        "import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING);"
        f"from test_contract import run_study, archs_of; print(json.dumps(archs_of(run_study({name!r}, 5, 30))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == archs_of(run_study(name, 5, 30))


@pytest.mark.parametrize("name", OURS)
def test_strategy_rebuilds_its_state_from_the_study(name):
    """A fresh sampler on a study with history continues it (resume / another worker), without repeats."""
    study = run_study(name, seed=7, n_trials=30)
    study = run_study(name, seed=8, n_trials=30, study=study)
    assert len(set(archs_of(study))) == 60


def test_evolution_front_beats_random_on_the_toy_problem():
    def front_quality(study):
        return max(t.values[0] - 0.05 * t.values[1] for t in study.trials)

    evo = np.median([front_quality(run_study("evolution", s, 80, n_initial=10)) for s in range(5)])
    rnd = np.median([front_quality(run_study("random", s, 80)) for s in range(5)])
    assert evo > rnd


def test_evolution_ranks_feasible_trials_before_infeasible_ones():
    from nas.strategies._base import History

    sampler = EvolutionSampler(SPACE, seed=0)
    archs = SPACE.enumerate()[:4]
    hist = History(archs, np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.5, 3.0]]), np.array([5.0, 0.0, 0.0, 1.0]))
    order = sampler.fitness_order(hist).tolist()
    assert order[:2] == [1, 2] and order[2:] == [3, 0]


def test_unknown_strategy_and_unknown_option_raise_one_line():
    with pytest.raises(KeyError, match="evolution"):
        make_strategy("simulated-annealing", SPACE)
    with pytest.raises(ValueError, match="population_size"):
        make_strategy("evolution", SPACE, populaton_size=3)
    with pytest.raises(ValueError, match="crossover_prob"):
        make_strategy("evolution", SPACE, crossover_prob=2.0)


@pytest.mark.parametrize("name", ["optuna-nsga2", "optuna-tpe", "optuna-random"])
def test_optuna_baselines_run_through_the_same_interface(name):
    study = run_study(name, seed=0, n_trials=15)
    assert len(study.trials) == 15


def test_every_registered_strategy_has_a_summary():
    assert {"random", "evolution"} <= set(strategies.names())
    assert all(strategies.get(n).summary for n in strategies)


FBNET = get_space("fbnet")


@pytest.mark.parametrize("name", OURS)
def test_strategy_works_on_a_space_too_large_to_list(name):
    """FBNet (9**22 archs): no candidate pool exists, so strategies sample and mutate instead."""
    assert not FBNET.can_list()
    sampler = make_strategy(name, FBNET, seed=2)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    dists = space_distributions(FBNET)
    proposed = []
    for _ in range(25):
        trial = study.ask(fixed_distributions=dists)
        arch = FBNET.validate(trial.params)
        idx = FBNET.encode(arch, "integer").astype(float)
        study.tell(trial, (float(idx.sum()), float(((8 - idx) ** 2).sum())))
        proposed.append(FBNET.to_string(arch))
    assert len(set(proposed)) == 25


def test_constrained_evolution_keeps_the_bound_is_seeded_and_beats_random_sampling():
    from nas.strategies import constrained_evolution

    idx = lambda archs: SPACE.encode(list(archs), "integer").astype(float)  # noqa: E731
    score = lambda archs: idx(archs) @ np.array([3.0, -1.0, 2.0, 1.0, -2.0, 1.5])  # noqa: E731
    cost = lambda archs: idx(archs).sum(axis=1)  # noqa: E731
    a = constrained_evolution(SPACE, score, cost, bound=9, seed=1, population=30, generations=15)
    b = constrained_evolution(SPACE, score, cost, bound=9, seed=1, population=30, generations=15)
    assert a.arch == b.arch and a.cost <= 9
    every = SPACE.enumerate()
    feasible = cost(every) <= 9
    assert a.score >= np.quantile(score(every)[feasible], 0.99)
    with pytest.raises(ValueError, match="relax the bound"):
        constrained_evolution(SPACE, score, cost, bound=-1, seed=0)
