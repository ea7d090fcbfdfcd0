"""Policy-gradient search (REINFORCE with a moving-average baseline) over a factorised policy.

Why factorised and folded: the policy is one softmax per decision; its parameters are a deterministic
function of the study's history (each completed trial's REINFORCE update applied once, in trial order,
with the reward it earned when it arrived), so every worker and every resume computes the same policy, and
an ask costs one update per new trial instead of a replay of every trial (`PolicyFold`).

Rewards, judged against the history up to and including the trial: in Pareto mode 1 - rank/max_rank of its
Pareto rank (dense, unlike hypervolume improvement which is zero for most trials; ranks kept incrementally);
in scalarised modes (including MnasNet's ACC * (LAT/T)^w soft constraint, `mode: scalarized, kind:
product`) its negated mode score standardised over the feasible trials so far. Infeasible trials get the
lowest reward, -1.
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch, SearchSpace
from nas.objectives import Mode, ObjectiveSet
from nas.strategies._base import ArchSampler, ConstraintsFunc, History, SearchContext, TrialView
from nas.strategies._modes import dominated_by, dominators_of, mode_scores, pareto_ranked


def _longest_chains(Q: np.ndarray, rows: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Ranks of `rows` of `Q` (longest chain of dominators) given `ranks`, exact for every other row and a
    lower bound for `rows` (ranks only grow as rows are added).

    Why a fixed point over all of `rows` at once: a new front point can dominate hundreds of rows, and
    redoing them one by one cost a pass over the history each; each round here is one array operation,
    and the rounds needed are the longest chain among `rows` themselves.

    Example:
        >>> Q = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
        >>> _longest_chains(Q, np.array([1, 2]), np.array([0, 0, 0])).tolist()
        [1, 2]
    """
    dominates = np.all(Q[None, :, :] <= Q[rows, None, :], axis=2) & np.any(Q[None, :, :] < Q[rows, None, :], axis=2)
    ranks = ranks.copy()
    while True:
        redone = np.where(dominates, ranks[None, :], -1).max(axis=1) + 1
        if np.array_equal(redone, ranks[rows]):
            return redone
        ranks[rows] = redone


class PolicyFold:
    """The policy after folding a history's rows in order: logits per decision, the reward baseline, and the
    Pareto ranks of the feasible rows so far (a new row dominates few, so only their ranks are redone).

    Example:
        >>> fold = PolicyFold([3, 2], learning_rate=0.5, baseline_decay=0.9)
        >>> fold.add(np.array([[0.0, 1.0], [1.0, 0.0]]), np.zeros(2), np.array([[0, 1], [2, 0]]), 0, 2, None, None)
        >>> [round(float(t.sum()), 6) for t in fold.logits]
        [0.0, 0.0]
    """

    def __init__(self, n_choices: list[int], learning_rate: float, baseline_decay: float) -> None:
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.logits = [np.zeros(n) for n in n_choices]
        self.baseline: float | None = None
        self.folded = 0
        self._feasible: list[int] = []
        self._ranks = np.zeros(0, dtype=np.int64)

    def copy(self) -> PolicyFold:
        other = PolicyFold([], self.learning_rate, self.baseline_decay)
        other.logits = [theta.copy() for theta in self.logits]
        other.baseline, other.folded = self.baseline, self.folded
        other._feasible, other._ranks = list(self._feasible), self._ranks.copy()
        return other

    def _pareto_reward(self, F: np.ndarray, i: int) -> float:
        """Add feasible row `i` to the ranks (a rank = length of the longest chain of dominators, which is
        what peeling fronts gives); its reward 1 - rank/max_rank over the feasible rows so far."""
        P = F[self._feasible]
        f = F[i]
        dominators = dominators_of(P, f) if len(P) else np.zeros(0, dtype=bool)
        rank = int(self._ranks[dominators].max()) + 1 if dominators.any() else 0
        beaten = np.flatnonzero(dominated_by(P, f)) if len(P) else np.zeros(0, dtype=np.int64)
        self._feasible.append(i)
        self._ranks = np.append(self._ranks, rank)
        if beaten.size:  # only rows `f` dominates can move (dominance is transitive): redo theirs
            Q = F[self._feasible]
            self._ranks[beaten] = _longest_chains(Q, beaten, self._ranks)
        return 1.0 - rank / max(int(self._ranks.max()), 1)

    def add(
        self, F: np.ndarray, violation: np.ndarray, choices: np.ndarray, start: int, stop: int, objectives: ObjectiveSet | None, mode: Mode | None
    ) -> None:
        """Apply the REINFORCE update of rows `start..stop` (`start` = rows folded so far); `choices` holds
        each row's choice index per decision (`n x n_decisions`)."""
        assert start == self.folded, "rows are folded in order, each once"
        for i in range(start, stop):
            if violation[i] > 0:
                reward = -1.0
            elif pareto_ranked(objectives, mode):
                reward = self._pareto_reward(F, i)
            else:
                assert objectives is not None and mode is not None
                self._feasible.append(i)
                score = mode_scores(F[self._feasible], objectives, mode, i)
                reward = float(-(score[-1] - score.mean()) / (score.std() + 1e-12))
            if self.baseline is None:
                self.baseline = reward
            advantage = reward - self.baseline
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
            for j, theta in enumerate(self.logits):
                p = np.exp(theta - theta.max())
                p /= p.sum()
                grad = -p
                grad[choices[i - start, j]] += 1.0
                theta += self.learning_rate * advantage * grad
        self.folded = stop


class PolicyGradientSampler(ArchSampler):
    """REINFORCE controller.

    Args:
        space: the search space.
        learning_rate: step size of each trial's update.
        baseline_decay: decay of the exponential moving-average reward baseline.
        entropy_floor: minimum probability mass mixed in uniformly, so no choice dies out.
        seed: seed of the sampler's random state.
        context: search context (objectives, mode, known costs).

    Example:
        >>> from nas.spaces import get_space
        >>> PolicyGradientSampler(get_space("nb201"), learning_rate=0.5).learning_rate
        0.5
    """

    _derived = ("_fold", "_fold_epoch")

    def __init__(
        self,
        space: SearchSpace,
        *,
        learning_rate: float = 0.3,
        baseline_decay: float = 0.9,
        entropy_floor: float = 0.02,
        seed: int | None = None,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
    ) -> None:
        super().__init__(space, seed=seed, context=context, constraints_func=constraints_func)
        if learning_rate <= 0 or not 0 <= baseline_decay < 1 or not 0 <= entropy_floor < 1:
            raise ValueError(f"invalid RL options: learning_rate={learning_rate}, baseline_decay={baseline_decay}, entropy_floor={entropy_floor}")
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.entropy_floor = entropy_floor
        self._fold: PolicyFold | None = None  # the policy folded over the settled history of epoch _fold_epoch
        self._fold_epoch: int | None = None

    def policy(self, view: TrialView) -> list[np.ndarray]:
        """Choice probabilities per decision after every completed trial of `view`'s history (settled rows
        folded once; rows after an unfinished trial on a copy), mixed with the uniform `entropy_floor`."""
        hist: History = view.history
        objectives = self.context.objectives if self.context else None
        mode = self.context.mode if self.context else None
        fold = self._fold
        if fold is None or self._fold_epoch != view.epoch or view.settled < fold.folded:
            fold = PolicyFold([len(d.choices) for d in self.space.decisions], self.learning_rate, self.baseline_decay)
            self._fold, self._fold_epoch = fold, view.epoch
        if view.settled > fold.folded:
            fold.add(hist.F, hist.violation, self.space.index_matrix(hist.archs[fold.folded : view.settled]), fold.folded, view.settled, objectives, mode)
        if len(hist.archs) > view.settled:
            fold = fold.copy()
            fold.add(hist.F, hist.violation, self.space.index_matrix(hist.archs[view.settled :]), view.settled, len(hist.archs), objectives, mode)
        out = []
        for theta in fold.logits:
            p = np.exp(theta - theta.max())
            p /= p.sum()
            out.append((1 - self.entropy_floor) * p + self.entropy_floor / len(p))
        return out

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        view = self.view(study)
        seen = view.seen()
        probs = self.policy(view)
        for _ in range(200):
            idx = np.array([[rng.choice(len(p), p=p) for p in probs]])
            arch = self.space.from_index_matrix(idx)[0]
            if arch not in seen and self.feasible([arch])[0]:
                return arch
        return self.random_unseen(rng, seen)
