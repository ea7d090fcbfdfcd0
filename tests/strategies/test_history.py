"""The incremental history: one read per proposal, each finished trial parsed once, and the folds built on
it (evolution's elite archive, RL's policy) equal to what a rebuild from every trial gives."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.pareto import non_dominated_sort
from nas.spaces import get_space
from nas.strategies import ERROR_ATTR, make_strategy, space_distributions
from nas.strategies._modes import FoldedElite, best_first, fitness_order
from nas.strategies._rl import LogitReplay, ParetoRanks, policy_draws, replayed_logits

SPACE = get_space("nb201")


def toy(arch) -> tuple[float, float]:
    idx = SPACE.encode(arch, "integer").astype(float)
    return float(idx.sum() + 0.1 * idx[0]), float(((4 - idx) ** 2).sum())


def run(study: optuna.Study, n: int) -> None:
    dists = space_distributions(SPACE)
    for _ in range(n):
        trial = study.ask(fixed_distributions=dists)
        study.tell(trial, toy(SPACE.validate(trial.params)))


@pytest.mark.parametrize("seed", range(2))
def test_the_elite_archive_gives_the_best_rows_of_a_full_ranking(seed):
    """Rows folded in several steps (some left as a tail), ties and infeasible rows included: the best k
    over the archive's rows are the first k of `fitness_order` over every row, for both tie-breaks."""
    rng = np.random.default_rng(seed)
    for case in range(30):
        n, m, k = int(rng.integers(1, 150)), int(rng.integers(1, 4)), int(rng.integers(1, 20))
        F = rng.integers(0, 6, size=(n, m)).astype(float) if case % 2 else rng.normal(size=(n, m))
        violation = np.where(rng.random(n) < 0.2, rng.integers(1, 4, n).astype(float), 0.0)
        tie = "hypervolume" if case % 3 == 0 else "crowding"
        elite = FoldedElite(k)
        settled = 0
        for stop in sorted({*rng.integers(0, n + 1, 4).tolist(), n}):
            settled = int(rng.integers(settled, stop + 1))
            got = best_first(F[:stop], violation[:stop], None, None, 0, k, elite, settled, epoch=1, tie=tie)
            np.testing.assert_array_equal(got, fitness_order(F[:stop], violation[:stop], None, None, 0, tie=tie)[:k])


def test_the_policy_fold_keeps_the_pareto_ranks_of_a_full_sort():
    rng = np.random.default_rng(0)
    for case in range(100):
        n, m = int(rng.integers(1, 90)), int(rng.integers(1, 4))
        F = rng.integers(0, 5, size=(n, m)).astype(float) if case % 2 else rng.normal(size=(n, m))
        violation = np.where(rng.random(n) < 0.2, 1.0, 0.0)
        ranks = ParetoRanks()
        half = n // 2
        ranks.add(F, violation, half)
        ranks.add(F, violation, n)
        feasible = np.flatnonzero(violation <= 0)
        assert ranks.feasible == feasible.tolist()
        np.testing.assert_array_equal(ranks.ranks, non_dominated_sort(F[feasible]))


def reference_policy(space, archs, F, violation, learning_rate=0.3, baseline_decay=0.9, entropy_floor=0.02):
    """RL's policy written out plainly: hindsight Pareto-rank rewards over the whole history (a full sort),
    then every trial's REINFORCE update replayed in order, one decision at a time."""
    reward = np.full(len(archs), -1.0)
    feasible = np.flatnonzero(violation <= 0)
    if feasible.size:
        ranks = non_dominated_sort(F[feasible]).astype(float)
        reward[feasible] = 1.0 - ranks / max(ranks.max(), 1.0)
    logits = [np.zeros(len(d.choices)) for d in space.decisions]
    choices = space.index_matrix(archs)
    baseline = float(reward[0])
    for t in range(len(archs)):
        advantage = reward[t] - baseline
        baseline = baseline_decay * baseline + (1 - baseline_decay) * reward[t]
        for j, theta in enumerate(logits):
            p = np.exp(theta - theta.max())
            p /= p.sum()
            grad = -p
            grad[choices[t, j]] += 1.0
            theta += learning_rate * advantage * grad
    out = []
    for theta in logits:
        p = np.exp(theta - theta.max())
        p /= p.sum()
        out.append((1 - entropy_floor) * p + entropy_floor / len(p))
    return out


@pytest.mark.parametrize("space_name", ["nb201", "fbnet"])
def test_rl_replays_every_trial_with_its_hindsight_reward(space_name):
    """The incremental ranks and the vectorised replay give the policy of a full sort and a plain replay,
    at every ask of a study."""
    space = get_space(space_name)
    sampler = make_strategy("rl", space, seed=0)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    dists = space_distributions(space)
    rng = np.random.default_rng(1)
    for i in range(40):
        trial = study.ask(fixed_distributions=dists)
        study.tell(trial, [float(rng.integers(0, 6)), float(rng.normal())])
        view = sampler.view(study)
        hist = view.history
        got = sampler.policy(view)
        want = reference_policy(space, list(hist.archs), np.asarray(hist.F), np.asarray(hist.violation))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_replayed_logits_handle_decisions_of_different_sizes():
    logits = replayed_logits([2, 3], np.array([[0, 2], [1, 0]]), np.array([0.0, 1.0]), 1.0, 0.5)
    assert [t.shape for t in logits] == [(2,), (3,)]
    np.testing.assert_allclose(logits[0], [-0.5, 0.5], atol=1e-12)  # second trial: advantage 1, chose 1 of 2
    np.testing.assert_allclose(logits[1], [2 / 3, -1 / 3, -1 / 3], atol=1e-12)  # chose 0 of 3


def test_replayed_logits_equal_the_update_written_step_by_step_bit_for_bit():
    """The same floats as the textbook update (the one replay all proposals were benchmarked with), over
    more trials than one block of one-hot rows, with padded decisions and zero advantages."""
    rng = np.random.default_rng(4)
    n_choices = [2, 5, 3, 5]
    choices = np.stack([rng.integers(0, k, size=1300) for k in n_choices], axis=1)
    rewards = np.where(rng.random(1300) < 0.2, -1.0, rng.random(1300))
    rewards[1:3] = rewards[0]
    width = max(n_choices)
    padded = np.arange(width)[None, :] >= np.array(n_choices)[:, None]
    logits, rows, baseline = np.zeros((len(n_choices), width)), np.arange(len(n_choices)), float(rewards[0])
    for t, reward in enumerate(rewards.tolist()):
        advantage = reward - baseline
        baseline = 0.9 * baseline + (1 - 0.9) * reward
        if advantage == 0.0:
            continue
        z = np.where(padded, -np.inf, logits)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[rows, choices[t]] -= 1.0
        logits -= (0.3 * advantage) * p
    got = replayed_logits(n_choices, choices, rewards, 0.3, 0.9)
    for j, n in enumerate(n_choices):
        np.testing.assert_array_equal(got[j], logits[j, :n])


def test_kept_replay_equals_a_fresh_one_bit_for_bit_as_the_history_grows_and_rewards_change():
    """Rows appended one at a time, some asks unchanged, some rewards rewritten from an early or a late row,
    a choice row rewritten, the history shortened: the kept replay (from its saved states) gives the floats
    of a replay from scratch every time."""
    rng = np.random.default_rng(7)
    n_choices = [5, 3, 5]
    choices = np.stack([rng.integers(0, k, size=300) for k in n_choices], axis=1)
    rewards = rng.random(300)
    replay = LogitReplay(n_choices, 0.3, 0.9, every=8)
    for n in list(range(1, 300)) + [299, 150, 220]:
        if n % 7 == 0:  # a new trial moves earlier ranks: rewards change from some row on
            start = int(rng.integers(0, n))
            rewards[start:n] = rng.random(n - start)
        if n % 23 == 0:
            choices[int(rng.integers(0, n))] = [int(rng.integers(0, k)) for k in n_choices]
        got = replay.logits(choices[:n], rewards[:n])
        want = replayed_logits(n_choices, choices[:n], rewards[:n], 0.3, 0.9)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_policy_draws_are_the_single_draws_of_the_same_generator_and_leave_it_in_the_same_state():
    """RL's proposals (and its fallback after the last try) depend on drawing in one call exactly what one
    `rng.choice` per decision per try drew, from peaked and flat policies of any sizes."""
    g = np.random.default_rng(5)
    for _ in range(100):
        probs = [g.dirichlet(np.ones(int(g.integers(1, 10))) * float(g.choice([0.05, 1.0, 10.0]))) for _ in range(int(g.integers(1, 8)))]
        probs = [0.98 * p + 0.02 / len(p) for p in probs]
        seed = int(g.integers(0, 2**31))
        one, batch = np.random.default_rng([seed, 3]), np.random.default_rng([seed, 3])
        singles = [[int(one.choice(len(p), p=p)) for p in probs] for _ in range(30)]
        assert policy_draws(probs, batch, 30).tolist() == singles
        assert one.random() == batch.random()


@pytest.mark.parametrize("name", ["random", "evolution", "aging", "rl", "local"])
def test_one_read_of_the_study_per_proposal_and_each_finished_trial_parsed_once(name, monkeypatch):
    sampler = make_strategy(name, SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    run(study, 30)
    reads, parsed = [], []
    get_trials = optuna.Study.get_trials
    monkeypatch.setattr(optuna.Study, "get_trials", lambda self, *a, **k: reads.append(1) or get_trials(self, *a, **k))
    record = sampler._record
    monkeypatch.setattr(sampler, "_record", lambda trial, signs: parsed.append(trial.number) or record(trial, signs))
    run(study, 10)
    assert len(reads) == 10
    # the last trial read unfinished before, then each new trial once unfinished (its ask) and once finished
    assert sorted(set(parsed)) == list(range(29, 40)) and len(parsed) == 20


def test_the_history_view_matches_the_trials_after_failures_interruptions_and_a_queued_trial():
    sampler = make_strategy("evolution", SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    run(study, 5)
    dists = space_distributions(SPACE)
    killed = study.ask(fixed_distributions=dists)
    study.tell(killed, state=TrialState.FAIL)
    failed = study.ask(fixed_distributions=dists)
    failed.set_user_attr(ERROR_ATTR, "boom")
    study.tell(failed, state=TrialState.FAIL)
    study.enqueue_trial(dict(killed.params))
    run(study, 3)
    hist = sampler.history(study)
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert [SPACE.to_string(a) for a in hist.archs] == [SPACE.to_string(SPACE.validate(t.params)) for t in complete]
    np.testing.assert_array_equal(hist.F, [[-t.values[0], t.values[1]] for t in complete])
    assert sampler.seen(study) == {SPACE.validate(t.params) for t in study.get_trials() if t.number != killed.number}
    probe = study.ask(fixed_distributions=dists)
    assert sampler.step(study, study._storage.get_trial(probe._trial_id)) == probe.number - 1  # the interrupted one does not count
    with pytest.raises(ValueError):
        hist.F[0, 0] = 0.0  # shared between readers: read-only


def test_a_trial_finishing_out_of_order_restarts_the_folds():
    """Two trials asked, the later told first: the earlier one lands among rows already settled only if a
    view called them settled; the evolution population then equals a fresh sampler's."""
    sampler = make_strategy("evolution", SPACE, seed=0, n_initial=4, population_size=4)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    run(study, 8)
    dists = space_distributions(SPACE)
    first, second = study.ask(fixed_distributions=dists), study.ask(fixed_distributions=dists)
    study.tell(second, toy(SPACE.validate(second.params)))
    sampler.history(study)
    study.tell(first, toy(SPACE.validate(first.params)))
    run(study, 6)
    fresh = make_strategy("evolution", SPACE, seed=0, n_initial=4, population_size=4)
    probe = study.ask(fixed_distributions=dists)
    frozen = study._storage.get_trial(probe._trial_id)
    rng = np.random.default_rng(0)
    assert sampler.propose(study, frozen, np.random.default_rng(0)) == fresh.propose(study, frozen, rng)


def test_local_search_proposes_what_a_fresh_sampler_proposes_with_its_walk_caches():
    """The local walk keeps archs whose neighbours are all taken and the depth its last walk reached: at each
    ask, with other trials left open (their archs seen) and some of them interrupted (seen no more), the
    proposal equals that of a fresh sampler, which ranks 2, 4, 8, ... rows and lists every neighbour again."""
    sampler = make_strategy("local", SPACE, seed=0, n_initial=4, width=2)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    dists = space_distributions(SPACE)
    run(study, 4)
    deepest, exhausted = 0, 0
    for i in range(160):
        held = study.ask(fixed_distributions=dists) if i % 7 == 0 else None
        probe = study.ask(fixed_distributions=dists)
        frozen = study._storage.get_trial(probe._trial_id)
        fresh = make_strategy("local", SPACE, seed=0, n_initial=4, width=2)
        assert sampler.propose(study, frozen, np.random.default_rng(i)) == fresh.propose(study, frozen, np.random.default_rng(i))
        deepest, exhausted = max(deepest, sampler._depth or 0), max(exhausted, len(sampler._exhausted[1]))
        study.tell(probe, toy(SPACE.validate(probe.params)))
        if held is not None:
            if i % 2:
                study.tell(held, state=TrialState.FAIL)  # interrupted: its arch is free again
            else:
                study.tell(held, toy(SPACE.validate(held.params)))
    assert deepest > 2 and exhausted > 0  # the walk went below the best rows and the set was used


def test_an_arch_whose_last_free_neighbour_is_an_open_trial_is_not_kept_as_exhausted():
    """The open trial's arch is taken while it runs; interrupted, it is free again, and the local walk offers it."""
    sampler = make_strategy("local", SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    arch = SPACE.sample(np.random.default_rng(0))
    *finished, last = SPACE.neighbours(arch)
    for other in [arch, *finished]:
        study.enqueue_trial(dict(other))
    run(study, len(finished) + 1)
    study.enqueue_trial(dict(last))
    held = study.ask(fixed_distributions=space_distributions(SPACE))
    view = sampler.view(study)
    assert sampler._fresh_neighbours(arch, view, view.seen()) == []
    study.tell(held, state=TrialState.FAIL)
    view = sampler.view(study)
    assert sampler._fresh_neighbours(arch, view, view.seen()) == [last]
