"""Policy-gradient search (REINFORCE with a moving-average baseline) over a factorised policy.

Why factorised and replayed: the policy is one softmax per decision; its parameters are a deterministic
function of the study's history (replay every completed trial's REINFORCE update in trial order), so the
sampler is stateless like the others and works across resumes and workers.

Rewards: in Pareto mode a trial's reward is how good it is in the current history, 1 - rank/max_rank of
its Pareto rank (dense, unlike hypervolume improvement which is zero for most trials); in scalarised
modes (including MnasNet's ACC * (LAT/T)^w soft constraint, `mode: scalarized, kind: product`) it is the
negated, standardised mode score. Infeasible trials get the lowest reward.
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.pareto import non_dominated_sort
from nas.spaces.base import Arch, SearchSpace
from nas.strategies._base import ArchSampler, ConstraintsFunc, History, SearchContext
from nas.strategies._modes import mode_scores


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

    def rewards(self, hist: History, step: int) -> np.ndarray:
        n = len(hist.archs)
        feasible = hist.violation <= 0
        reward = np.full(n, -1.0)
        if feasible.any():
            idx = np.flatnonzero(feasible)
            mode = self.context.mode if self.context else None
            if mode is None or mode.name == "pareto" or self.context is None:
                ranks = non_dominated_sort(hist.F[idx]).astype(float)
                reward[idx] = 1.0 - ranks / max(ranks.max(), 1.0)
            else:
                score = mode_scores(hist.F[idx], self.context.objectives, mode, step)
                reward[idx] = -(score - score.mean()) / (score.std() + 1e-12)
        return reward

    def policy(self, hist: History, step: int) -> list[np.ndarray]:
        """Choice probabilities per decision after replaying every completed trial."""
        logits = [np.zeros(len(d.choices)) for d in self.space.decisions]
        if hist.archs:
            choices = self.space.index_matrix(hist.archs)
            rewards = self.rewards(hist, step)
            baseline = float(rewards[0])
            for t in range(len(hist.archs)):
                advantage = rewards[t] - baseline
                baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * rewards[t]
                for j, theta in enumerate(logits):
                    p = np.exp(theta - theta.max())
                    p /= p.sum()
                    grad = -p
                    grad[choices[t, j]] += 1.0
                    theta += self.learning_rate * advantage * grad
        out = []
        for theta in logits:
            p = np.exp(theta - theta.max())
            p /= p.sum()
            out.append((1 - self.entropy_floor) * p + self.entropy_floor / len(p))
        return out

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        seen = self.seen(study)
        probs = self.policy(self.history(study), self.step(study, trial))
        for _ in range(200):
            idx = np.array([[rng.choice(len(p), p=p) for p in probs]])
            arch = self.space.from_index_matrix(idx)[0]
            if arch not in seen and self.feasible([arch])[0]:
                return arch
        return self.random_unseen(rng, seen)
