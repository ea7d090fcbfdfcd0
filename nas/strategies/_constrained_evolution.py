"""Constrained evolution in memory: the best architecture under a cost bound, from vectorised scores.

Why outside Optuna: when the score is an estimate that costs microseconds (an accuracy predictor fitted
on supernet scores) and the cost is known (a LUT), a study's per-trial bookkeeping would dominate; OFA's
evolution finder searches its supernet this way in seconds. This is that search for any space: each
generation scores a whole population with one call to `score` and one to `cost`.

Example:
    >>> import numpy as np
    >>> from nas.spaces import get_space
    >>> space = get_space("nb201")
    >>> convs = lambda archs: np.array([sum("conv" in str(v) for v in a.values()) for a in archs], dtype=float)
    >>> result = constrained_evolution(space, convs, convs, bound=3, seed=0, generations=20)
    >>> result.score, result.cost
    (3.0, 3.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nas.spaces.base import Arch, SearchSpace

Scorer = Callable[[Sequence[Arch]], np.ndarray]


@dataclass(frozen=True)
class EvolutionResult:
    """The best feasible architecture found, its score and cost, and what the search spent."""

    arch: Arch
    score: float
    cost: float
    generations: int
    #: Candidates priced by `cost` (random and bred), each counted once.
    evaluated: int
    seconds: float


def constrained_evolution(
    space: SearchSpace,
    score: Scorer,
    cost: Scorer,
    *,
    bound: float,
    population: int = 100,
    generations: int = 50,
    parent_share: float = 0.25,
    mutation_share: float = 0.5,
    mutation_prob: float = 0.1,
    seed: int = 0,
    time_limit: float | None = None,
) -> EvolutionResult:
    """Maximise `score` subject to `cost <= bound`: a population of feasible archs, each generation
    keeping the best `parent_share` and refilling with mutants (each decision changed with
    `mutation_prob`) and crossovers of parents.

    Raises:
        ValueError: no feasible architecture found among many random ones (the bound is too tight).
    """
    if population < 4 or generations < 0 or not 0 < parent_share < 1 or not 0 <= mutation_share <= 1:
        raise ValueError(f"need population >= 4, generations >= 0, 0 < parent_share < 1, 0 <= mutation_share <= 1; got {population}, {generations}, {parent_share}, {mutation_share}")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    evaluated = 0

    def feasible_randoms(n: int) -> list[Arch]:
        nonlocal evaluated
        found: list[Arch] = []
        for _ in range(200):
            batch = [space.sample(rng) for _ in range(max(n, 32))]
            evaluated += len(batch)
            found += [a for a, c in zip(batch, cost(batch)) if c <= bound]
            if len(found) >= n:
                return found[:n]
        if not found:
            raise ValueError(f"no architecture of {evaluated} random ones satisfies cost <= {bound:g}; relax the bound")
        return found

    members = feasible_randoms(population)
    scores = np.asarray(score(members), dtype=float)
    n_decisions = len(space.decisions)
    done = 0
    for done in range(1, generations + 1):
        if time_limit is not None and time.perf_counter() - start > time_limit:
            done -= 1
            break
        order = np.argsort(-scores, kind="stable")
        parents = [members[i] for i in order[: max(2, int(parent_share * population))]]
        parent_scores = scores[order[: len(parents)]]
        children: list[Arch] = []
        n_mutants = int(mutation_share * (population - len(parents)))
        while len(children) < population - len(parents):
            if len(children) < n_mutants:
                base = parents[int(rng.integers(len(parents)))]
                child = space.mutate(base, rng, n_changes=max(1, int(rng.binomial(n_decisions, mutation_prob))))
            else:
                i, j = rng.choice(len(parents), size=2, replace=False)
                child = space.crossover(parents[int(i)], parents[int(j)], rng)
            children.append(child)
        costs = cost(children)
        evaluated += len(children)
        keep = [c for c, v in zip(children, costs) if v <= bound]
        if len(keep) < len(children):
            keep += feasible_randoms(len(children) - len(keep))
        child_scores = np.asarray(score(keep), dtype=float)
        members, scores = parents + keep, np.concatenate([parent_scores, child_scores])
    best = int(np.argmax(scores))
    arch = members[best]
    return EvolutionResult(arch, float(scores[best]), float(cost([arch])[0]), done, evaluated, time.perf_counter() - start)


__all__ = ["EvolutionResult", "constrained_evolution"]
