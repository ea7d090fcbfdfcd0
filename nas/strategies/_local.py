"""Local search around the current Pareto front.

Why: on cell spaces most front members have a better neighbour one edit away; walking the neighbourhood
of the front (cheapest-first among unseen, feasible neighbours) refines the front at a cost of one query
per step, and it is the cheapest strategy that keeps finding members of the true Pareto set.
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch, SearchSpace
from nas.strategies._base import ArchSampler, ConstraintsFunc, SearchContext
from nas.strategies._history import TrialView
from nas.strategies._modes import FoldedElite, best_first


class LocalSearchSampler(ArchSampler):
    """Pick a front member (round-robin over the best `width` archs), query an unseen neighbour of it.

    Args:
        space: the search space.
        n_initial: random archs before the local moves start.
        width: how many of the best archs (by the search mode's ranking) are expanded in turn.
        seed: seed of the sampler's random state.
        context: search context (objectives, mode, known costs).

    Example:
        >>> from nas.spaces import get_space
        >>> LocalSearchSampler(get_space("nb201"), width=8).width
        8
    """

    _derived = ("_elites", "_exhausted", "_depth")

    def __init__(
        self,
        space: SearchSpace,
        *,
        n_initial: int = 10,
        width: int = 16,
        seed: int | None = None,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
    ) -> None:
        super().__init__(space, seed=seed, context=context, constraints_func=constraints_func)
        if n_initial < 1 or width < 1:
            raise ValueError(f"n_initial and width must be >= 1, got {n_initial}, {width}")
        self.n_initial = n_initial
        self.width = width
        # per ranking depth k: the history's rows that can still be among the best k (see `_best`)
        self._elites: dict[int, FoldedElite] | None = None
        # (epoch, archs every neighbour of which is finished or infeasible): late in a search most of the
        # ranking's top is, and listing their neighbours again cost more than the rest of the ask
        self._exhausted: tuple[int, set[Arch]] | None = None
        self._depth: int | None = None  # the ranking depth the last walk reached

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        view = self.view(study)
        seen = view.seen()
        hist = view.history
        if len(hist.archs) < self.n_initial:
            return self.random_unseen(rng, seen)
        objectives = self.context.objectives if self.context else None
        mode = self.context.mode if self.context else None
        step = view.step(trial.number)

        def ranked(k: int) -> np.ndarray:
            """The best `k` rows of the history, by the search mode's ranking."""
            if self._elites is None:
                self._elites = {}
            elite = self._elites.setdefault(k, FoldedElite(k))
            return best_first(hist.F, hist.violation, objectives, mode, step, k, elite, view.settled, view.epoch)

        # the walk starts at the depth the last one reached: rankings are prefixes of one order (`best_first`
        # is exact), so ranking once as deep as last time gives the same walk as ranking 16, 32, ... again
        depth = max(self.width, self._depth or 0)
        order = ranked(depth)
        best = order[: self.width]
        start = int(rng.integers(len(best)))
        for k in range(len(best)):
            fresh = self._fresh_neighbours(hist.archs[int(best[(start + k) % len(best)])], view, seen)
            if fresh:
                self._depth = self.width
                return fresh[int(rng.integers(len(fresh)))]
        # every neighbour of the best is taken: walk down the ranking, twice as deep at each step. Late in a
        # long search this happens at most asks; ranking all rows each time cost more than the rest of the trial
        done = len(best)
        while done < len(hist.archs):
            if len(order) <= done:
                depth *= 2
                order = ranked(depth)
            for i in order[done:]:
                fresh = self._fresh_neighbours(hist.archs[int(i)], view, seen)
                if fresh:
                    self._depth = depth
                    return fresh[int(rng.integers(len(fresh)))]
            done = len(order)
        self._depth = None
        return self.random_unseen(rng, seen)

    def _fresh_neighbours(self, arch: Arch, view: TrialView, seen: set[Arch]) -> list[Arch]:
        """`arch`'s unseen, feasible neighbours; an arch with none among the finished trials' is remembered
        for the epoch (finished marks only grow within one, and feasibility is fixed)."""
        if self._exhausted is None or self._exhausted[0] != view.epoch:
            self._exhausted = (view.epoch, set())
        exhausted = self._exhausted[1]
        if arch in exhausted:
            return []
        neighbours = self.space.neighbours(arch)
        fresh = self.unseen_children(neighbours, seen)
        if not fresh and (not view.open_marks or not self.unseen_children(neighbours, view.seen_finished)):
            exhausted.add(arch)
        return fresh
