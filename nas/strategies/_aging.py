"""Regularised (aging) evolution, multi-objective.

Why aging: Real et al. (2019) showed that removing the OLDEST member instead of the worst keeps the
population young and explores better on cell spaces. Rebuilt statelessly from the study: the population
is the last `population_size` completed trials; a parent is the best of `sample_size` random members
under the search mode's ranking (Pareto rank + crowding by default); the child is one mutation.
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch, SearchSpace
from nas.strategies._base import ArchSampler, ConstraintsFunc, SearchContext
from nas.strategies._modes import fitness_order


class AgingEvolutionSampler(ArchSampler):
    """Regularised evolution with tournament `sample_size` over the `population_size` youngest trials.

    Example:
        >>> from nas.spaces import get_space
        >>> AgingEvolutionSampler(get_space("nb201"), population_size=20, sample_size=5).sample_size
        5
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        population_size: int = 50,
        sample_size: int = 10,
        seed: int | None = None,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
    ) -> None:
        super().__init__(space, seed=seed, context=context, constraints_func=constraints_func)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(f"need population_size >= 2 and 1 <= sample_size <= population_size, got {population_size}, {sample_size}")
        self.population_size = population_size
        self.sample_size = sample_size

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        seen = self.seen(study)
        hist = self.history(study)
        if len(hist.archs) < self.population_size:
            return self.random_unseen(rng, seen)
        young = np.arange(len(hist.archs))[-self.population_size :]
        objectives = self.context.objectives if self.context else None
        mode = self.context.mode if self.context else None
        step = self.step(study, trial)
        for _ in range(64):
            sample = rng.choice(young, size=self.sample_size, replace=False)
            best = sample[fitness_order(hist.F[sample], hist.violation[sample], objectives, mode, step)[0]]
            child = self.space.mutate(hist.archs[int(best)], rng)
            if child not in seen and self.feasible([child])[0]:
                return child
        return self.random_unseen(rng, seen)
