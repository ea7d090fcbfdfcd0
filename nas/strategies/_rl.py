"""Policy-gradient search (REINFORCE with a moving-average baseline) over a factorised policy.

Why factorised and replayed: the policy is one softmax per decision; its parameters are a deterministic
function of the study's history (every completed trial's REINFORCE update replayed in trial order), so every
worker and every resume computes the same policy.

Rewards are judged in hindsight, against the whole history at the ask: in Pareto mode a trial's reward is
1 - rank/max_rank of its current Pareto rank (dense, unlike hypervolume improvement which is zero for most
trials); in scalarised modes (including MnasNet's ACC * (LAT/T)^w soft constraint, `mode: scalarized, kind:
product`) its negated mode score standardised over the feasible trials. Infeasible trials get the lowest
reward, -1. Why hindsight and not the reward a trial earned on arrival (which would let each ask fold only
the new trials): on the strategies benchmark, arrival rewards worsened RL's median HV gap on 14 of 24 cases
and budgets (up to 1.4x; `benchmarks/results/strategies_recheck_compared.md`). What stays incremental: the
Pareto ranks (`ParetoRanks`: only the rows a new trial dominates are re-ranked) and the replay (`LogitReplay`:
from the first row whose reward or choice changed, one vectorised update per trial over all decisions).
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch, SearchSpace
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
    dominates = dominators_of(Q, Q[rows, None, :])  # [r, j]: row j dominates row rows[r]
    fixed = ranks.copy()
    fixed[rows] = -1  # every other row's rank is exact: one pass over them gives each row's floor
    floor = np.where(dominates, fixed[None, :], -1).max(axis=1) + 1
    among = dominates[:, rows]  # the rounds only need the r x r dominance among `rows`
    redone = np.maximum(floor, ranks[rows])
    while True:
        again = np.maximum(floor, np.where(among, redone[None, :], -1).max(axis=1) + 1)
        if np.array_equal(again, redone):
            return redone
        redone = again


class ParetoRanks:
    """Pareto ranks (what peeling fronts gives: the longest chain of dominators) of the feasible rows of a
    growing history, kept as rows are added in order: a new row dominates few, so only theirs are redone.

    Example:
        >>> ranks = ParetoRanks()
        >>> ranks.add(np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]), np.zeros(3), 3)
        >>> ranks.feasible, ranks.ranks.tolist()
        ([0, 1, 2], [1, 2, 0])
    """

    def __init__(self) -> None:
        self.folded = 0
        self.feasible: list[int] = []
        self.ranks = np.zeros(0, dtype=np.int64)

    def copy(self) -> ParetoRanks:
        other = ParetoRanks()
        other.folded, other.feasible, other.ranks = self.folded, list(self.feasible), self.ranks.copy()
        return other

    def add(self, F: np.ndarray, violation: np.ndarray, stop: int) -> None:
        """Add rows `folded..stop` of `F` (minimisation units); rows with `violation > 0` are not ranked."""
        for i in range(self.folded, stop):
            if violation[i] > 0:
                continue
            P, f = F[self.feasible], F[i]
            dominators = dominators_of(P, f) if len(P) else np.zeros(0, dtype=bool)
            beaten = np.flatnonzero(dominated_by(P, f)) if len(P) else np.zeros(0, dtype=np.int64)
            self.feasible.append(i)
            self.ranks = np.append(self.ranks, int(self.ranks[dominators].max()) + 1 if dominators.any() else 0)
            if beaten.size:  # only rows `f` dominates can move (dominance is transitive)
                self.ranks[beaten] = _longest_chains(F[self.feasible], beaten, self.ranks)
        self.folded = max(self.folded, stop)


def replayed_logits(n_choices: list[int], choices: np.ndarray, rewards: np.ndarray, learning_rate: float, baseline_decay: float) -> list[np.ndarray]:
    """Logits per decision after REINFORCE updates with `rewards` (one per row of `choices`, `n x n_decisions`
    choice indices), in order, against an exponential moving-average baseline that starts at the first reward.

    Example:
        >>> [t.round(3).tolist() for t in replayed_logits([2], np.array([[0], [1]]), np.array([0.0, 1.0]), 1.0, 0.5)]
        [[-0.5, 0.5]]
    """
    return LogitReplay(n_choices, learning_rate, baseline_decay).logits(choices, rewards)


class LogitReplay:
    """`replayed_logits` kept between asks: the logits before every `every`-th update are saved, and a
    history that agrees with the last one (same choices and rewards) up to row t is replayed from the last
    saved state at or before t.

    Why: every ask replays the whole history (hindsight rewards), but most asks change no earlier reward
    (in about 60 % of the second half of a 2,000-trial search the new trial moves no rank and not the
    largest one), and the rest change them from some row on. Each update is one softmax over all
    decisions at once in as few array operations as give the same floats as the textbook update
    (`logits -= lr * advantage * (softmax(logits) - onehot(choice))`), so a partial replay equals a full one
    bit for bit.

    Example:
        >>> replay = LogitReplay([2], 1.0, 0.5)
        >>> replay.logits(np.array([[0], [1]]), np.array([0.0, 1.0]))[0].round(3).tolist()
        [-0.5, 0.5]
        >>> replay.logits(np.array([[0], [1], [1]]), np.array([0.0, 1.0, 1.0]))[0].round(3).tolist()  # one more step
        [-0.634, 0.634]
    """

    def __init__(self, n_choices: list[int], learning_rate: float, baseline_decay: float, every: int = 32) -> None:
        self.n_choices = list(n_choices)
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.every = every
        width = max(self.n_choices, default=0)
        padded = np.arange(width)[None, :] >= np.array(self.n_choices, dtype=np.int64)[:, None]
        self._start = np.where(padded, -np.inf, 0.0)  # a padded slot stays -inf: no mass, and updates leave it there
        self._choices = np.zeros((0, len(self.n_choices)), dtype=np.int64)
        self._rewards = np.zeros(0)
        self._saved: list[np.ndarray] = [self._start]  # logits before update k * every
        self._last = self._start

    def logits(self, choices: np.ndarray, rewards: np.ndarray) -> list[np.ndarray]:
        rewards = np.asarray(rewards, dtype=float)
        choices = np.asarray(choices, dtype=np.int64).reshape(len(rewards), len(self.n_choices))
        kept = min(len(rewards), len(self._rewards))
        differ = np.flatnonzero((self._rewards[:kept] != rewards[:kept]) | (self._choices[:kept] != choices[:kept]).any(axis=1))
        same = int(differ[0]) if differ.size else kept
        if same == len(self._rewards) == len(rewards):
            logits = self._last
        else:
            logits = self._replay(choices, rewards, min(same // self.every, len(self._saved) - 1))
        self._choices, self._rewards, self._last = choices.copy(), rewards.copy(), logits
        return [logits[j, :n].copy() for j, n in enumerate(self.n_choices)]

    def _replay(self, choices: np.ndarray, rewards: np.ndarray, checkpoint: int) -> np.ndarray:
        """Updates from saved state `checkpoint` on; every later saved state is made again."""
        del self._saved[checkpoint + 1 :]
        logits = self._saved[checkpoint].copy()
        advantages = np.empty(len(rewards))
        baseline = float(rewards[0]) if len(rewards) else 0.0
        for t, reward in enumerate(rewards.tolist()):
            advantages[t] = reward - baseline
            baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * reward
        decisions = np.arange(len(self.n_choices))[None, :]
        for begin in range(checkpoint * self.every, len(rewards), self.every):
            if begin > checkpoint * self.every:
                self._saved.append(logits.copy())
            rows = np.arange(begin, min(begin + self.every, len(rewards)))
            rows = rows[advantages[rows] != 0.0]
            onehots = np.zeros((len(rows), *logits.shape))
            onehots[np.arange(len(rows))[:, None], decisions, choices[rows]] = 1.0
            for scale, onehot in zip((self.learning_rate * advantages[rows]).tolist(), onehots):
                p = logits - logits.max(axis=1, keepdims=True)
                np.exp(p, out=p)
                p /= p.sum(axis=1, keepdims=True)
                p -= onehot
                p *= scale
                logits -= p
        return logits


class PolicyGradientSampler(ArchSampler):
    """REINFORCE controller.

    Args:
        space: the search space.
        learning_rate: step size of each replayed update.
        baseline_decay: decay of the exponential moving-average reward baseline.
        entropy_floor: minimum probability mass mixed in uniformly, so no choice dies out.
        seed: seed of the sampler's random state.
        context: search context (objectives, mode, known costs).

    Example:
        >>> from nas.spaces import get_space
        >>> PolicyGradientSampler(get_space("nb201"), learning_rate=0.5).learning_rate
        0.5
    """

    _derived = ("_ranks", "_ranks_epoch", "_choices", "_choices_epoch", "_replay")

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
        self._ranks: ParetoRanks | None = None  # ranks of the settled history of epoch _ranks_epoch
        self._ranks_epoch: int | None = None
        self._choices = np.zeros((0, len(space.decisions)), dtype=np.int64)  # choice indices of settled rows
        self._choices_epoch: int | None = None
        self._replay: LogitReplay | None = None  # the replayed updates, kept between asks

    def rewards(self, view: TrialView, step: int) -> np.ndarray:
        """Each completed trial's reward judged against the whole history (see the module docstring)."""
        hist: History = view.history
        n = len(hist.archs)
        reward = np.full(n, -1.0)
        objectives = self.context.objectives if self.context else None
        mode = self.context.mode if self.context else None
        if pareto_ranked(objectives, mode):
            ranks = self._settled_ranks(view)
            if len(hist.archs) > view.settled:  # rows after an unfinished trial: ranked on a copy
                ranks = ranks.copy()
                ranks.add(hist.F, hist.violation, n)
            if ranks.feasible:
                reward[ranks.feasible] = 1.0 - ranks.ranks / max(int(ranks.ranks.max()), 1)
            return reward
        assert objectives is not None and mode is not None
        feasible = np.flatnonzero(hist.violation <= 0)
        if feasible.size:
            score = mode_scores(hist.F[feasible], objectives, mode, step)
            reward[feasible] = -(score - score.mean()) / (score.std() + 1e-12)
        return reward

    def _settled_ranks(self, view: TrialView) -> ParetoRanks:
        ranks = self._ranks
        if ranks is None or self._ranks_epoch != view.epoch or view.settled < ranks.folded:
            ranks = self._ranks = ParetoRanks()
            self._ranks_epoch = view.epoch
        if view.settled > ranks.folded:
            ranks.add(view.history.F, view.history.violation, view.settled)
        return ranks

    def _choice_matrix(self, view: TrialView) -> np.ndarray:
        """Choice indices of the history's rows; the settled rows' are kept between asks (same epoch)."""
        archs = view.history.archs
        if self._choices is None or self._choices_epoch != view.epoch or len(self._choices) > view.settled:
            self._choices, self._choices_epoch = np.zeros((0, len(self.space.decisions)), dtype=np.int64), view.epoch
        if len(self._choices) < view.settled:
            self._choices = np.concatenate([self._choices, self.space.index_matrix(archs[len(self._choices) : view.settled])])
        tail = archs[len(self._choices) :]
        return np.concatenate([self._choices, self.space.index_matrix(tail)]) if tail else self._choices

    def policy(self, view: TrialView, step: int = 0) -> list[np.ndarray]:
        """Choice probabilities per decision after replaying every completed trial of `view`'s history with
        its hindsight reward, mixed with the uniform `entropy_floor`."""
        n_choices = [len(d.choices) for d in self.space.decisions]
        if view.history.archs:
            rewards = self.rewards(view, step)  # first: brings the ranks (and their epoch) up to date
            if self._replay is None:
                self._replay = LogitReplay(n_choices, self.learning_rate, self.baseline_decay)
            logits = self._replay.logits(self._choice_matrix(view), rewards)
        else:
            logits = [np.zeros(n) for n in n_choices]
        out = []
        for theta in logits:
            p = np.exp(theta - theta.max())
            p /= p.sum()
            out.append((1 - self.entropy_floor) * p + self.entropy_floor / len(p))
        return out

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        view = self.view(study)
        seen = view.seen()
        probs = self.policy(view, self.step(study, trial))
        tried: set[tuple[int, ...]] = set()
        for row in policy_draws(probs, rng, _TRIES).tolist():
            if tuple(row) in tried:  # a converged policy repeats itself: judge each draw once
                continue
            tried.add(tuple(row))
            arch = self.space.from_index_matrix(np.array([row], dtype=np.int64))[0]
            if arch not in seen and self.feasible([arch])[0]:
                return arch
        return self.random_unseen(rng, seen)


_TRIES = 200  # policy draws before an unseen architecture is drawn uniformly instead


def policy_draws(probs: list[np.ndarray], rng: np.random.Generator, tries: int) -> np.ndarray:
    """`tries x len(probs)` choice indices: what `rng.choice(len(p), p=p)` draws for each decision in turn, try
    after try (one double per draw, the same stream and the same inverse-CDF lookup), in one call.

    Why: late in a search the policy has converged and most draws are architectures already seen, so a
    proposal used to make hundreds of single draws (about 50 ms per ask at 1,900 trials).

    Example:
        >>> probs = [np.array([0.2, 0.8]), np.array([0.5, 0.25, 0.25])]
        >>> one = np.random.default_rng(0)
        >>> singles = [[int(one.choice(len(p), p=p)) for p in probs] for _ in range(4)]
        >>> policy_draws(probs, np.random.default_rng(0), 4).tolist() == singles
        True
    """
    uniform = rng.random((tries, len(probs)))
    out = np.empty(uniform.shape, dtype=np.int64)
    for j, p in enumerate(probs):
        cdf = p.cumsum()
        cdf /= cdf[-1]
        out[:, j] = cdf.searchsorted(uniform[:, j], side="right")
    return out
