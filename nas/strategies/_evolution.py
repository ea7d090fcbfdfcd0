"""Multi-objective evolution (NSGA-II selection) with space-aware mutation and crossover.

Why not Optuna's NSGAIISampler: it knows nothing of architectures, so it re-queries architectures it has
already evaluated and mutates parameters blindly. This sampler mutates through the space
(`space.mutate`, `space.crossover`), never spends a query on an architecture already in the study, and
takes its population from the study's completed trials (so resume and many workers are free); the rows
that can still enter the population are kept incrementally (`EliteArchive`), so an ask costs the same at
trial 2,000 as at trial 20.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch, SearchSpace
from nas.strategies._base import ArchSampler, ConstraintsFunc, History, SearchContext
from nas.strategies._modes import FoldedElite, best_first, fitness_order


class EvolutionSampler(ArchSampler):
    """Elitist multi-objective evolution over architectures.

    The population is the best `population_size` completed trials under constrained domination
    (feasible before infeasible, then Pareto rank, then crowding distance or hypervolume contribution).
    Parents are picked by tournament; a child is a uniform crossover of two parents (probability
    `crossover_prob`) followed by mutation of one decision (two with probability `double_mutation_prob`).

    Args:
        space: the search space.
        population_size: survivors kept from the history.
        n_initial: random architectures before evolution starts.
        tournament_size: candidates per parent tournament.
        crossover_prob: probability of crossing two parents before mutating.
        double_mutation_prob: probability of changing two decisions instead of one.
        selection: tie-break within a Pareto rank: "crowding" (NSGA-II) or "hypervolume" (SMS-EMOA-like).
        seed: seed of the sampler's random state.

    Example:
        >>> import optuna
        >>> from nas.spaces import get_space
        >>> sampler = EvolutionSampler(get_space("nb201"), population_size=8, n_initial=4, seed=0)
        >>> sampler.population_size
        8
    """

    _derived = ("_elite",)

    def __init__(
        self,
        space: SearchSpace,
        *,
        population_size: int = 32,
        n_initial: int = 20,
        tournament_size: int = 2,
        crossover_prob: float = 0.3,
        double_mutation_prob: float = 0.2,
        selection: Literal["crowding", "hypervolume"] = "crowding",
        seed: int | None = None,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
    ) -> None:
        super().__init__(space, seed=seed, context=context, constraints_func=constraints_func)
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if n_initial < 1:
            raise ValueError(f"n_initial must be >= 1, got {n_initial}")
        if tournament_size < 1:
            raise ValueError(f"tournament_size must be >= 1, got {tournament_size}")
        for name, p in (("crossover_prob", crossover_prob), ("double_mutation_prob", double_mutation_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if selection not in ("crowding", "hypervolume"):
            raise ValueError(f"selection must be 'crowding' or 'hypervolume', got {selection!r}")
        self.population_size = population_size
        self.n_initial = n_initial
        self.tournament_size = tournament_size
        self.crossover_prob = crossover_prob
        self.double_mutation_prob = double_mutation_prob
        self.selection = selection
        self._elite: FoldedElite | None = None  # the history's rows that can still enter the population

    def fitness_order(self, hist: History, step: int = 0) -> np.ndarray:
        """Indices of `hist` from best to worst: feasible first, then the search mode's ranking."""
        objectives = self.context.objectives if self.context else None
        mode = self.context.mode if self.context else None
        return fitness_order(hist.F, hist.violation, objectives, mode, step, tie=self.selection)

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        view = self.view(study)
        seen = view.seen()
        hist = view.history
        if len(hist.archs) < self.n_initial:
            return self.random_unseen(rng, seen)
        objectives = self.context.objectives if self.context else None
        mode = self.context.mode if self.context else None
        if self._elite is None or self._elite.size != self.population_size:
            self._elite = FoldedElite(self.population_size)
        # the population is the best population_size of the whole history, ranked over the rows that can still be
        population = best_first(
            hist.F, hist.violation, objectives, mode, view.step(trial.number), self.population_size, self._elite, view.settled, view.epoch, tie=self.selection
        )
        position = np.full(len(hist.archs), len(population), dtype=np.int64)
        position[population] = np.arange(len(population))

        def tournament() -> Arch:
            picks = rng.choice(population, size=min(self.tournament_size, len(population)), replace=False)
            return hist.archs[int(picks[np.argmin(position[picks])])]

        for _ in range(64):
            parent = tournament()
            if rng.random() < self.crossover_prob:
                parent = self.space.crossover(parent, tournament(), rng)
            n_changes = 2 if rng.random() < self.double_mutation_prob else 1
            child = self.space.mutate(parent, rng, n_changes=n_changes)
            if child not in seen and self.feasible([child])[0]:
                return child
        # The neighbourhood of the population is exhausted: widen to all neighbours, then to random.
        for i in population:
            fresh = self.unseen_children(self.space.neighbours(hist.archs[int(i)]), seen)
            if fresh:
                return fresh[int(rng.integers(len(fresh)))]
        return self.random_unseen(rng, seen)
