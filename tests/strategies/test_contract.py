"""Contract tests every `nas` strategy must pass (as Optuna's samplers share theirs).

Every registered multi-trial strategy (bo and bananas included, on small budgets) runs through the same
toy problem on NB201 (listable) and FBNet (9**22 archs, sampled), with the search context a run gives:
`params` known before evaluation, accuracy learnt, a picklable surrogate factory.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.accuracy.predictors import PredictorFactory
from nas.objectives import ObjectiveSet
from nas.spaces import get_space
from nas.spaces.base import SearchSpace
from nas.strategies import (
    ERROR_ATTR,
    ArchSampler,
    EvolutionSampler,
    OneShotStrategy,
    SearchContext,
    counted_before,
    make_strategy,
    space_distributions,
    strategies,
)

torch.set_num_threads(1)  # bananas' MLP ensemble: tiny matrices, where extra threads only contend
SPACE = get_space("nb201")
FBNET = get_space("fbnet")
SPACES = {"nb201": SPACE, "fbnet": FBNET}

#: Every registered multi-trial strategy of ours (Optuna's own samplers and one-shot ones excluded).
MULTI = [
    n
    for n in strategies.names()
    if issubclass(strategies.get(n).factory.__wrapped__, ArchSampler) and not issubclass(strategies.get(n).factory.__wrapped__, OneShotStrategy)
]
OURS = MULTI
SURROGATE = ("bo", "bananas")
#: Small settings so the surrogate strategies fit their model several times within a short study.
FAST = {
    "bo": {"n_initial": 4, "n_candidates": 300},
    "bananas": {"n_initial": 4, "n_candidates": 300, "surrogate_options": {"epochs": 40, "n_members": 3, "hidden": (32, 32)}},
}


def budget(name: str, cheap: int) -> int:
    """Trials per study: fewer for the surrogate strategies, each of whose steps fits a model."""
    return 12 if name in SURROGATE else cheap


def encoded(space: SearchSpace, arch) -> np.ndarray:
    return space.encode(arch, "integer").astype(float)


def toy_objectives(arch, space: SearchSpace = SPACE) -> tuple[float, float]:
    """Two conflicting objectives over the integer encoding: cheap to compute, with a real front."""
    idx = encoded(space, arch)
    top = max(len(d.choices) for d in space.decisions) - 1
    return float(idx.sum() + 0.1 * idx[0]), float(((top - idx) ** 2).sum())


@dataclass(frozen=True)
class ToyKnown:
    """The second toy objective as a metric known before evaluation (picklable, as the run's is)."""

    space_name: str

    def __call__(self, archs) -> dict[str, np.ndarray]:
        space = SPACES[self.space_name]
        return {"params": np.array([toy_objectives(a, space)[1] for a in archs])}


def toy_context(space: SearchSpace) -> SearchContext:
    objectives = ObjectiveSet.parse("accuracy:max,params:min")
    return SearchContext(objectives, ("params",), ToyKnown(space.name), None, PredictorFactory(space.name))


def make_sampler(name: str, seed: int | None, space: SearchSpace = SPACE, **options) -> optuna.samplers.BaseSampler:
    return make_strategy(name, space, seed=seed, context=toy_context(space), **{**FAST.get(name, {}), **options})


def tell_toy(study: optuna.Study, trial: optuna.Trial, space: SearchSpace = SPACE) -> None:
    study.tell(trial, toy_objectives(space.validate({d.name: trial.params[d.name] for d in space.decisions}), space))


def run_study(
    name: str, seed: int, n_trials: int, study: optuna.Study | None = None, space: SearchSpace = SPACE, sampler=None, **options
) -> optuna.Study:
    sampler = sampler or make_sampler(name, seed, space, **options)
    if study is None:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    else:
        study.sampler = sampler
    dists = space_distributions(space)
    for _ in range(n_trials):
        tell_toy(study, study.ask(fixed_distributions=dists), space)
    return study


def archs_of(study: optuna.Study, space: SearchSpace = SPACE) -> list[str]:
    return [space.to_string(space.validate({d.name: t.params[d.name] for d in space.decisions})) for t in study.trials]


def test_the_contract_covers_every_registered_multi_trial_strategy():
    assert {"random", "evolution", "aging", "rl", "local", "bo", "bananas"} <= set(MULTI)
    assert "darts" not in MULTI and not any(n.startswith("optuna-") for n in MULTI)


@pytest.mark.parametrize("name", OURS)
def test_strategy_proposes_valid_archs_and_never_repeats_one(name):
    n = budget(name, 60)
    study = run_study(name, seed=1, n_trials=n)
    archs = archs_of(study)
    assert len(set(archs)) == n


@pytest.mark.parametrize("name", OURS)
def test_same_seed_gives_same_proposals_in_process(name):
    n = budget(name, 40)
    assert archs_of(run_study(name, 3, n)) == archs_of(run_study(name, 3, n))
    assert archs_of(run_study(name, 3, n)) != archs_of(run_study(name, 4, n))


@pytest.mark.parametrize("name", OURS)
def test_same_seed_gives_same_proposals_in_a_subprocess(name):
    code = (
        "import json, sys; sys.path.insert(0, 'tests/strategies');"
        "import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING);"
        f"from test_contract import run_study, archs_of, budget; print(json.dumps(archs_of(run_study({name!r}, 5, budget({name!r}, 30)))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == archs_of(run_study(name, 5, budget(name, 30)))


@pytest.mark.parametrize("name", OURS)
def test_strategy_rebuilds_its_state_from_the_study(name):
    """A fresh sampler on a study with history continues it (resume / another worker), without repeats."""
    n = budget(name, 30)
    study = run_study(name, seed=7, n_trials=n)
    study = run_study(name, seed=8, n_trials=n, study=study)
    assert len(set(archs_of(study))) == 2 * n


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
    study = run_study(name, seed=0, n_trials=15, sampler=make_strategy(name, SPACE, seed=0))
    assert len(study.trials) == 15


def test_every_registered_strategy_has_a_summary():
    assert {"random", "evolution"} <= set(strategies.names())
    assert all(strategies.get(n).summary for n in strategies)


@pytest.mark.parametrize("name", OURS)
def test_strategy_works_on_a_space_too_large_to_list(name):
    """FBNet (9**22 archs): no candidate pool exists, so strategies sample and mutate instead."""
    assert not FBNET.can_list()
    n = budget(name, 25)
    study = run_study(name, seed=2, n_trials=n, space=FBNET)
    assert len(set(archs_of(study, FBNET))) == n
    assert archs_of(run_study(name, seed=2, n_trials=n, space=FBNET), FBNET) == archs_of(study, FBNET)


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


# --- Optuna's sampler contract ------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["nb201", "fbnet"])
@pytest.mark.parametrize("name", MULTI)
def test_sampler_survives_a_pickle_round_trip_mid_study_and_proposes_the_same(name, space_name):
    space = SPACES[space_name]
    n = budget(name, 20)
    whole = archs_of(run_study(name, 11, n, space=space), space)
    sampler = make_sampler(name, 11, space)
    study = run_study(name, 11, n // 2, space=space, sampler=sampler)
    study = run_study(name, 11, n - n // 2, study=study, space=space, sampler=pickle.loads(pickle.dumps(sampler)))
    assert archs_of(study, space) == whole


@pytest.mark.parametrize("name", MULTI)
def test_sampler_as_the_run_builds_it_pickles_and_still_proposes(name, tmp_path):
    from nas.run import Run, RunConfig

    config = RunConfig(space="nb201", objectives=["accuracy:max", "latency@raspi4:min"], strategy=name, budget=6, seed=0, strategy_options=FAST.get(name, {}))
    sampler = pickle.loads(pickle.dumps(Run.open(tmp_path / "run", config).make_sampler()))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    dists = space_distributions(SPACE)
    for _ in range(6):
        tell_toy(study, study.ask(fixed_distributions=dists))
    assert len(set(archs_of(study))) == 6


@pytest.mark.parametrize("name", MULTI)
def test_params_the_space_does_not_own_are_left_to_sample_independent(name):
    """A user's own `trial.suggest_float("lr", ...)` beside the arch: Optuna samples it independently."""
    sampler = make_sampler(name, 0)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = {d.name: trial.suggest_categorical(d.name, list(d.choices)) for d in SPACE.decisions}
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        assert 1e-4 <= lr <= 1e-1
        return toy_objectives(SPACE.validate(arch))

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=budget(name, 10))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(set(archs_of(study))) == len(study.trials)
    assert len({t.params["lr"] for t in study.trials}) == len(study.trials)
    # asked directly with a search space holding a foreign param, it returns only its own
    search_space = {**space_distributions(SPACE), "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    trial = study.ask()
    relative = sampler.sample_relative(study, study._storage.get_trial(trial._trial_id), search_space)
    assert set(relative) == {d.name for d in SPACE.decisions}
    only_foreign = {"lr": search_space["lr"]}
    assert sampler.sample_relative(study, study._storage.get_trial(trial._trial_id), only_foreign) == {}


def first_edge_is_none(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna-style constraints: infeasible (+1) when the first edge is `none`, feasible (-1) otherwise."""
    return [1.0 if trial.params[SPACE.decisions[0].name] == "none" else -1.0]


@pytest.mark.parametrize("name", MULTI)
def test_constraints_func_is_stored_after_each_trial_and_decides_the_historys_feasibility(name):
    sampler = make_sampler(name, 4, constraints_func=first_edge_is_none)
    study = run_study(name, 4, budget(name, 25), sampler=sampler)
    assert all(tuple(first_edge_is_none(t)) == tuple(t.system_attrs["constraints"]) for t in study.trials)
    expected = np.array([max(first_edge_is_none(t)[0], 0.0) for t in study.trials])
    np.testing.assert_array_equal(sampler.history(study).violation, expected)
    # a trial finished where no such sampler ran is judged by calling the function
    study.sampler = make_sampler("random", 5)
    seen = set(archs_of(study))
    arch = next(a for a in SPACE.enumerate() if a[SPACE.decisions[0].name] == "none" and SPACE.to_string(a) not in seen)
    study.enqueue_trial(dict(arch))
    tell_toy(study, study.ask(fixed_distributions=space_distributions(SPACE)))
    assert "constraints" not in study.trials[-1].system_attrs
    assert sampler.history(study).violation[-1] == 1.0


@pytest.mark.skipif(not hasattr(optuna.Trial, "set_constraint"), reason="trial.set_constraint is Optuna >= 5")
def test_constraints_set_on_the_trial_decide_the_historys_feasibility():
    sampler = make_sampler("evolution", 0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    dists = space_distributions(SPACE)
    for bound in (2.0, -1.0, 0.5):
        trial = study.ask(fixed_distributions=dists)
        trial.set_constraint("latency", bound)
        trial.set_constraint("memory", -3.0)
        tell_toy(study, trial)
    np.testing.assert_array_equal(sampler.history(study).violation, [2.0, 0.0, 0.5])


def test_constraints_func_reaches_optunas_samplers_and_one_shot_strategies_refuse_it():
    assert make_strategy("optuna-nsga2", SPACE, seed=0, constraints_func=first_edge_is_none)._constraints_func is first_edge_is_none
    with pytest.raises(ValueError, match="takes no constraints_func"):
        make_strategy("darts", SPACE, seed=0, constraints_func=first_edge_is_none)
    with pytest.raises(TypeError, match="constraints_func must be a callable"):
        make_strategy("evolution", SPACE, seed=0, constraints_func=[1.0])


@pytest.mark.parametrize("space_name", ["nb201", "fbnet"])
@pytest.mark.parametrize("name", MULTI)
def test_a_fresh_sampler_on_a_reloaded_study_continues_as_one_uninterrupted(name, space_name, tmp_path):
    """The state lives in the study: a new process (fresh sampler, study loaded from storage) goes on
    exactly where the first stopped."""
    space = SPACES[space_name]
    n = budget(name, 20)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"], sampler=make_sampler(name, 6, space))
    run_study(name, 6, n // 2, study=first, space=space, sampler=first.sampler)
    reloaded = optuna.load_study(storage=storage, study_name="s", sampler=make_sampler(name, 6, space))
    run_study(name, 6, n - n // 2, study=reloaded, space=space, sampler=reloaded.sampler)
    assert archs_of(reloaded, space) == archs_of(run_study(name, 6, n, space=space), space)


# --- resume determinism -----------------------------------------------------------------------------
def test_interrupted_trials_do_not_count_and_failed_evaluations_do():
    study = optuna.create_study(directions=["maximize", "minimize"])
    dists = space_distributions(SPACE)
    interrupted = study.ask(fixed_distributions=dists)
    study.tell(interrupted, state=TrialState.FAIL)
    failed = study.ask(fixed_distributions=dists)
    failed.set_user_attr(ERROR_ATTR, "out of memory")
    study.tell(failed, state=TrialState.FAIL)
    tell_toy(study, study.ask(fixed_distributions=dists))
    trials = study.get_trials(deepcopy=False)
    assert [counted_before(trials, k) for k in range(4)] == [0, 0, 1, 2]


@pytest.mark.parametrize("name", ["evolution", "bo", "random", "aging", "rl", "local", "bananas"])
def test_an_interrupted_trial_requeued_on_resume_leaves_the_proposals_of_an_uninterrupted_run(name):
    """Trial k is killed (FAIL, no nas:error); the resumed loop re-queues its arch as trial k+1; from
    k+2 on the study proposes exactly what an uninterrupted study proposes from k+1 on."""
    k, n = (7, 12) if name in SURROGATE else (12, 30)
    if name == "aging":
        k, n = 55, 65  # past the population, so proposals come from evolution and not just random draws
    uninterrupted = archs_of(run_study(name, 9, n))
    sampler = make_sampler(name, 9)
    calls: list[int] = []
    propose = sampler.propose
    sampler.propose = lambda study, trial, rng: calls.append(trial.number) or propose(study, trial, rng)  # type: ignore[method-assign]
    study = run_study(name, 9, k, sampler=sampler)
    dists = space_distributions(SPACE)
    killed = study.ask(fixed_distributions=dists)
    study.tell(killed, state=TrialState.FAIL)
    study.enqueue_trial(dict(killed.params))
    tell_toy(study, study.ask(fixed_distributions=dists))
    run_study(name, 9, n - k - 1, study=study, sampler=sampler)
    resumed = archs_of(study)
    assert resumed[k] == resumed[k + 1] == uninterrupted[k]
    assert resumed[k + 2 :] == uninterrupted[k + 1 :]
    assert k + 1 not in calls  # the re-queued trial has every param fixed: no proposal was made for it


@pytest.mark.parametrize("name", MULTI)
def test_study_optimize_with_four_threads_never_evaluates_an_arch_twice(name):
    """`study.optimize(n_jobs=4)`: threads share the sampler; each proposal is marked on its trial before
    the next thread reads the history, so no architecture is proposed twice."""
    sampler = make_sampler(name, 0)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = {d.name: trial.suggest_categorical(d.name, list(d.choices)) for d in SPACE.decisions}
        return toy_objectives(SPACE.validate(arch))

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    n_trials = budget(name, 40)
    study.optimize(objective, n_trials=n_trials, n_jobs=4)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == n_trials
    archs = archs_of(study)
    assert len(set(archs)) == len(archs), [a for a in set(archs) if archs.count(a) > 1]


@pytest.mark.parametrize("name", ["evolution", "bo", "random"])
def test_a_trial_killed_before_its_params_were_stored_is_proposed_again_at_the_same_step(name):
    """A kill inside `ask` leaves a trial with the strategy's proposal marked but no params; it is failed
    on resume and not re-queued (its params are unknown), so the next trial must propose the same
    architecture, and everything after follows the uninterrupted run."""
    k, n = (7, 11) if name in SURROGATE else (12, 20)
    uninterrupted = archs_of(run_study(name, 4, n))
    sampler = make_sampler(name, 4)
    study = run_study(name, 4, k, sampler=sampler)
    killed = study.ask()  # the relative sample happens lazily: make it, as `ask` with the arch's params would
    sampler.sample_relative(study, study._storage.get_trial(killed._trial_id), space_distributions(SPACE))
    assert "nas:proposed" in study._storage.get_trial(killed._trial_id).system_attrs
    study.tell(killed, state=TrialState.FAIL)
    run_study(name, 4, n - k, study=study, sampler=sampler)
    resumed = archs_of_complete(study)
    assert resumed == uninterrupted


def archs_of_complete(study: optuna.Study, space: SearchSpace = SPACE) -> list[str]:
    return [space.to_string(space.validate({d.name: t.params[d.name] for d in space.decisions})) for t in study.trials if t.state == TrialState.COMPLETE]
