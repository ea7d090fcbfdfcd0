"""Bayesian optimisation over architectures with costs known before evaluation.

Why not Optuna's GPSampler or BoTorch's qNEHVI on every objective: latency from a LUT or table, params
and FLOPs are known for EVERY candidate before it is evaluated; only accuracy costs a query. So the
surrogate models accuracy alone, and the acquisition is computed at each candidate's exact cost over
the whole (finite) space: with one uncertain objective the expected hypervolume improvement has a closed
form, in 2-D a sum of expected improvements over the steps of the current front's staircase, in 3-D (two
known costs) a sum over the cells of the front's cost-space grid (`_ehvi`); in other cases a random
Chebyshev scalarisation (ParEGO) with the known parts fixed also has one.
Candidates that break a known constraint are never proposed.

A cost that is an estimate priced from a model the search refits (`SearchContext.priced`: a device
measured in the loop) is used the same way, at the model's current price, and the pool is re-priced
whenever the model's version changed since the last ask (one whole-space predict per refit). Why: as a
black-box objective bo would model it again from the trials and throw away the device's model (loop30
trailed a LUT fitted offline on as many measurements: benchmarks/results/own_device.md). Its
constraints are still checked only after evaluation.

The surrogate comes from `nas.accuracy.predictors` through the search context (one predictor code
base): `surrogate="gp"` with `encoding="onehot"` is classic BO; `surrogate="mlp_ensemble"` with
`encoding="path"` and `acquisition="thompson"` is BANANAS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial
from scipy.special import ndtr

from nas.pareto import hypervolume
from nas.spaces.base import Arch, SearchSpace
from nas.strategies._base import ArchSampler, ConstraintsFunc, History, SearchContext
from nas.strategies._ehvi import ehvi_3d, expected_shortfall, hvi_3d
from nas.strategies._modes import hybrid_weights

__all__ = ["BayesianSampler", "ehvi_2d", "ehvi_3d", "expected_shortfall", "hvi_2d", "hvi_3d", "staircase"]


def staircase(front: np.ndarray, ref: np.ndarray, uncertain: int, known: int) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints and levels of the current front in the (known, uncertain) plane.

    Returns `edges` (`m + 2`: -inf, sorted known costs of the front, ref) and `levels` (`m + 1`: the best
    uncertain value reachable at cost <= x on each segment; ref before the first front point).
    """
    pts = front[(front[:, known] < ref[known]) & (front[:, uncertain] < ref[uncertain])]
    order = np.argsort(pts[:, known], kind="stable")
    costs = pts[order, known]
    best = np.minimum.accumulate(pts[order, uncertain]) if len(pts) else np.zeros(0)
    edges = np.concatenate([[-np.inf], costs, [ref[known]]])
    levels = np.concatenate([[ref[uncertain]], np.minimum(best, ref[uncertain])])
    return edges, levels


def ehvi_2d(cost: np.ndarray, mean: np.ndarray, std: np.ndarray, front: np.ndarray, ref: np.ndarray, uncertain: int, known: int) -> np.ndarray:
    """Exact expected HV improvement of candidates with known `cost` and uncertain value N(mean, std).

    A candidate at cost c improves the dominated area by the integral over x in [c, ref) of
    max(0, T(x) - y), T the front's staircase; in expectation that is sum_j width_j * E[max(0, t_j - y)].
    Shapes: `cost`, `mean`, `std` are `n_candidates`; returns `n_candidates`.
    """
    edges, levels = staircase(front, ref, uncertain, known)
    lo = np.maximum(edges[None, :-1], cost[:, None])
    hi = np.minimum(edges[None, 1:], ref[known])
    width = np.clip(hi - lo, 0.0, None)
    return (width * expected_shortfall(levels[None, :], mean[:, None], std[:, None])).sum(axis=1)


def hvi_2d(cost: np.ndarray, value: np.ndarray, front: np.ndarray, ref: np.ndarray, uncertain: int, known: int) -> np.ndarray:
    """Exact HV improvement of candidates at (cost, value) (the Thompson-sampling acquisition)."""
    edges, levels = staircase(front, ref, uncertain, known)
    lo = np.maximum(edges[None, :-1], cost[:, None])
    hi = np.minimum(edges[None, 1:], ref[known])
    width = np.clip(hi - lo, 0.0, None)
    return (width * np.clip(levels[None, :] - value[:, None], 0.0, None)).sum(axis=1)


def non_domination_probability(
    F_known: np.ndarray, mean: np.ndarray, std: np.ndarray, front: np.ndarray, ref: np.ndarray, uncertain: int, known: list[int]
) -> np.ndarray:
    """P(candidate not dominated by `front`): P(Y < best uncertain value of the front points no costlier)."""
    pts = front[np.isfinite(front).all(axis=1)]
    covers = (pts[None, :, known] <= F_known[:, None, :]).all(axis=2)
    level = np.where(covers, pts[None, :, uncertain], np.inf).min(axis=1, initial=np.inf)
    level = np.minimum(level, ref[uncertain])
    z = (level - mean) / np.maximum(std, 1e-12)
    return ndtr(z)


class BayesianSampler(ArchSampler):
    """Multi-objective BO: a surrogate of the expensive objective, acquisition at exact known costs.

    Args:
        space: the search space.
        surrogate: predictor name from `nas.accuracy.predictors` (needs `predict(..., return_std=True)`).
        encoding: architecture encoding the surrogate reads (None: the predictor's best for the space).
        surrogate_options: keyword parameters of the predictor (e.g. {"n_restarts": 0} for a faster GP).
        acquisition: "ehvi" (expected HV improvement / ParEGO EI) or "thompson" (one posterior draw per
            candidate, then exact HV improvement: BANANAS' independent Thompson sampling).
        n_initial: evaluations before the surrogate is used, spread over the known cost range.
        n_candidates: candidates scored per step when the space is too large to score whole.
        warp: "power" fits the surrogate to Yeo-Johnson-transformed values of each uncertain objective
            (see `_warp`); "none" to the raw values.
        exact_3d: with three objectives of which two are known costs, score by the exact 3-D EHVI
            (`_ehvi`); False falls back to ParEGO's random Chebyshev scalarisation.
        hunt_below: once the best expected HV improvement is below this fraction of the front's
            hypervolume, propose the candidate most likely not to be dominated by the found front
            (EHVI breaks ties); 0 never does (see `_hunting`).
        seed: seed of the sampler's random state.
        context: search context; must provide the surrogate factory.

    Example:
        >>> from nas.spaces import get_space
        >>> BayesianSampler(get_space("nb201"), surrogate="gp", n_initial=5).n_initial
        5
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        surrogate: str = "gp",
        encoding: str | None = None,
        surrogate_options: dict[str, Any] | None = None,
        acquisition: Literal["ehvi", "thompson"] = "ehvi",
        n_initial: int = 5,
        n_candidates: int = 4000,
        warp: Literal["power", "none"] = "power",
        exact_3d: bool = True,
        hunt_below: float = 1e-4,
        seed: int | None = None,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
    ) -> None:
        super().__init__(space, seed=seed, context=context, constraints_func=constraints_func)
        if acquisition not in ("ehvi", "thompson"):
            raise ValueError(f"acquisition must be 'ehvi' or 'thompson', got {acquisition!r}")
        if warp not in ("power", "none"):
            raise ValueError(f"warp must be 'power' or 'none', got {warp!r}")
        if n_initial < 2:
            raise ValueError(f"n_initial must be >= 2, got {n_initial}")
        if not 0 <= hunt_below < 1:
            raise ValueError(f"hunt_below must be in [0, 1), got {hunt_below}")
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        self.surrogate = surrogate
        self.encoding = encoding
        self.surrogate_options = dict(surrogate_options or {})
        self.acquisition = acquisition
        self.n_initial = n_initial
        self.n_candidates = n_candidates
        self.warp = warp
        self.exact_3d = bool(exact_3d)
        self.hunt_below = float(hunt_below)
        self._pool_known: np.ndarray | None = None
        self._pool_key: tuple[Any, ...] | None = None
        self._pool_index: dict[Arch, int] = {}
        #: Prices of the metrics in `SearchContext.priced` at this ask: metric -> version (set by `propose`).
        self._versions: dict[str, Any] = {}

    # --- what is known / uncertain ------------------------------------------------------------------
    def _split_objectives(self, study: Study | None = None) -> tuple[list[int], list[int]]:
        """(costs priced before evaluation, objectives modelled from the trials), as objective indices.

        Costs are the known metrics and the priced estimates that can price now (their versions read
        from `study`'s trials into `_versions`)."""
        if self.context is None:
            raise ValueError("the bo/bananas strategies need a search context (objectives, known costs, surrogate); run them through nas.run.Run")
        priced = self.context.priced
        self._versions = priced.versions(study.get_trials(deepcopy=False)) if priced is not None and study is not None else {}
        names = self.context.objectives.names
        costs = set(self.context.known_metrics) | set(self._versions)
        known = [j for j, n in enumerate(names) if n in costs]
        uncertain = [j for j, n in enumerate(names) if n not in costs]
        return known, uncertain

    def _known_matrix(self, archs: Sequence[Arch], known: list[int]) -> np.ndarray:
        """`n_archs x len(known)` costs in minimisation units: known metrics and current prices."""
        assert self.context is not None
        names = self.context.objectives.names
        values: dict[str, np.ndarray] = {}
        if any(names[j] in self.context.known_metrics for j in known):
            assert self.context.known is not None
            values |= self.context.known(archs)
        if any(names[j] in self._versions for j in known):
            assert self.context.priced is not None
            values |= self.context.priced(archs)
        cols = np.stack([np.asarray(values[names[j]], dtype=float) for j in known], axis=1) if known else np.zeros((len(archs), 0))
        return cols * self.context.objectives.signs[known]

    def _pool_costs(self, pool: Sequence[Arch], known: list[int]) -> np.ndarray:
        """The whole pool's cost columns, cached until the cost set or a priced metric's version changes."""
        assert self.context is not None
        names = self.context.objectives.names
        key = (tuple(known), tuple((names[j], self._versions.get(names[j])) for j in known))
        if self._pool_known is None or self._pool_key != key:
            self._pool_known = self._known_matrix(pool, known)
            self._pool_key = key
            if not self._pool_index:
                self._pool_index = {a: i for i, a in enumerate(pool)}
        return self._pool_known

    def _candidates(self, hist: History, seen: set[Arch], rng: np.random.Generator, known: list[int]) -> tuple[list[Arch], np.ndarray]:
        """Unseen candidates and their known objective columns (minimisation units).

        A finite space is scored whole: the pool's known costs are computed once and cached. A larger
        space is sampled: neighbours of the evaluated archs plus random archs.
        """
        pool = self.pool()
        if pool is not None:
            costs = self._pool_costs(pool, known)
            keep = np.ones(len(pool), dtype=bool)
            keep[[self._pool_index[a] for a in seen if a in self._pool_index]] = False
            keep &= np.isfinite(costs).all(axis=1)
            idx = np.flatnonzero(keep)
            return [pool[i] for i in idx], costs[idx]
        out: list[Arch] = []
        for arch in hist.archs:
            out.extend(self.space.neighbours(arch))
        out.extend(self.space.sample(rng) for _ in range(self.n_candidates))
        fresh = self.unseen_children(out, seen)
        if len(fresh) > self.n_candidates:
            fresh = [fresh[i] for i in rng.choice(len(fresh), self.n_candidates, replace=False)]
        return fresh, self._known_matrix(fresh, known)

    def _initial(self, seen: set[Arch], rng: np.random.Generator, step: int, known: list[int]) -> Arch:
        """Space-filling start: stratify the first known cost into `n_initial` quantile bins."""
        pool = self.pool()
        if pool is None or not known:
            return self.random_unseen(rng, seen)
        cost = self._pool_costs(pool, known)[:, 0]
        order = np.argsort(cost, kind="stable")
        bins = np.array_split(order, self.n_initial)
        members = [pool[i] for i in bins[step % self.n_initial] if pool[i] not in seen]
        return members[int(rng.integers(len(members)))] if members else self.random_unseen(rng, seen)

    def _fit(self, hist: History, y: np.ndarray, rng: np.random.Generator) -> Any:
        """A surrogate fitted to `y`, seeded from the trial's generator (unless the options fix
        `random_state`), so a seeded run fits the same model every time (BANANAS' MLP ensemble drew fresh
        initial weights on each fit before, and two seed-0 runs diverged at trial 8)."""
        assert self.context is not None
        factory = self.context.surrogate_factory
        if factory is None:
            raise ValueError(f"strategy needs surrogate {self.surrogate!r} but the search context provides no predictor factory")
        options = {"random_state": int(rng.integers(2**31 - 1)), **self.surrogate_options}
        model = factory(self.surrogate, self.encoding, options)
        model.fit(list(hist.archs), y)
        return model

    def _warp(self, F: np.ndarray, uncertain: list[int]) -> np.ndarray:
        """`F` with each uncertain column passed through a fitted monotone (Yeo-Johnson) power transform.

        Why: accuracy is heavily skewed (a few collapsed nets near 10 %, most within a few points of the
        best), so a GP on raw values spends its lengthscale on the outliers and cannot resolve the top,
        where the front is. A monotone map keeps Pareto dominance, so EHVI is computed in warped units
        (as HEBO does for single-objective BO).
        """
        if self.warp == "none":
            return F
        from sklearn.preprocessing import PowerTransformer

        out = F.copy()
        for j in uncertain:
            col = F[:, j]
            good = np.isfinite(col)
            if good.sum() >= 3 and np.ptp(col[good]) > 0:
                out[good, j] = PowerTransformer(method="yeo-johnson").fit_transform(col[good, None])[:, 0]
        return out

    # --- proposal -----------------------------------------------------------------------------------
    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        known, uncertain = self._split_objectives(study)
        step = self.step(study, trial)
        seen = self.seen(study)
        hist = self.history(study)
        ok = hist.violation <= 0
        if len(hist.archs) < self.n_initial or ok.sum() < 2:
            return self._initial(seen, rng, step, known)
        candidates, F_known = self._candidates(hist, seen, rng, known)
        if not candidates:
            return self.random_unseen(rng, seen)
        F = self._warp(hist.F, uncertain)
        models = [self._fit(hist, F[:, j], rng) for j in uncertain]
        preds = [m.predict(candidates, return_std=True) for m in models]
        n_obj = F.shape[1]
        front = F[ok]
        ref = self._reference(known, F_known, np.nanmax(F, axis=0))
        exact = len(uncertain) == 1 and (n_obj == 2 or (n_obj == 3 and self.exact_3d))
        if len(uncertain) == 1 and n_obj == 2:
            j = uncertain[0]
            k = known[0]
            mean, std = preds[0]
            if self.acquisition == "thompson":
                draw = rng.normal(mean, np.maximum(std, 1e-12))
                score = hvi_2d(F_known[:, 0], draw, front, ref, j, k)
                tie = -draw
            else:
                score = ehvi_2d(F_known[:, 0], mean, std, front, ref, j, k)
                tie = -mean
        elif len(uncertain) == 1 and n_obj == 3 and self.exact_3d:
            mean, std = preds[0]
            pair = (known[0], known[1])
            if self.acquisition == "thompson":
                draw = rng.normal(mean, np.maximum(std, 1e-12))
                score, tie = hvi_3d(F_known, draw, front, ref, uncertain[0], pair), -draw
            else:
                score, tie = ehvi_3d(F_known, mean, std, front, ref, uncertain[0], pair), -mean
        else:
            score, tie = self._scalarised(F_known, known, uncertain, preds, front, ref, step, rng)
        if exact and self.acquisition == "ehvi" and self._hunting(score, front, ref):
            mean, std = preds[0]
            score, tie = non_domination_probability(F_known, mean, std, front, ref, uncertain[0], known), score
        best = np.flatnonzero(score >= score.max() - 1e-15 * max(1.0, abs(score.max())))
        pick = best[np.argmax(tie[best])] if len(best) > 1 else best[0]
        return candidates[int(pick)]

    def _hunting(self, score: np.ndarray, front: np.ndarray, ref: np.ndarray) -> bool:
        """True once the best expected improvement is below `hunt_below` of the front's hypervolume.

        Why: then the front is well explored, every remaining true-front member adds almost no volume
        and EHVI ranks them no better than noise; the probability of not being dominated by the found
        front still tells them apart (on 3 objectives 2 seeds found 0.39 of the true Pareto set at 300
        queries against 0.31 without it, with the same HV gap; scoring by it from the start, or every
        other step, lost 5-10x in HV gap and found fewer: benchmarks/results/strategies_ehvi3d.md).
        """
        if self.hunt_below <= 0:
            return False
        return bool(score.max() < self.hunt_below * hypervolume(front, ref))

    def _reference(self, known: list[int], F_known: np.ndarray, worst_seen: np.ndarray) -> np.ndarray:
        """Reference point: worst known cost over all candidates and seen archs; worst seen uncertain value."""
        ref = worst_seen.copy()
        for col, j in enumerate(known):
            ref[j] = max(ref[j], float(np.nanmax(F_known[:, col])) if len(F_known) else ref[j])
        span = np.where(np.isfinite(ref), np.abs(ref) * 1e-6 + 1e-9, 1.0)
        return ref + span

    def _scalarised(
        self,
        F_known: np.ndarray,
        known: list[int],
        uncertain: list[int],
        preds: list[tuple[np.ndarray, np.ndarray]],
        front: np.ndarray,
        ref: np.ndarray,
        step: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """ParEGO: random Chebyshev weights; EI is closed-form with one uncertain objective."""
        n_obj = front.shape[1]
        lo = front.min(axis=0)
        span = np.where(ref - lo > 0, ref - lo, 1.0)
        w = hybrid_weights(n_obj, step) + 1e-3
        w = w / w.sum()
        best_front = (w * (front - lo) / span).max(axis=1).min()
        known_part = (w[known] * (F_known - lo[known]) / span[known]).max(axis=1) if known else np.full(len(F_known), -np.inf)
        if len(uncertain) == 1:
            j = uncertain[0]
            mean, std = preds[0]
            m = w[j] * (mean - lo[j]) / span[j]
            s = w[j] * std / span[j]
            if self.acquisition == "thompson":
                draw = rng.normal(m, np.maximum(s, 1e-12))
                value = np.maximum(known_part, draw)
                return np.clip(best_front - value, 0, None), -value
            # E[max(0, b - max(K, Y))] = [K < b] * (E[max(0, b - Y)] - E[max(0, K - Y)])
            K = known_part
            gain = np.where(K < best_front, expected_shortfall(best_front, m, s) - expected_shortfall(np.maximum(K, -1e300), m, s), 0.0)
            return np.clip(gain, 0, None), -(np.maximum(K, m))
        draws = [rng.normal(mu, np.maximum(sd, 1e-12)) for mu, sd in preds]
        value = known_part
        for j, d in zip(uncertain, draws):
            value = np.maximum(value, w[j] * (d - lo[j]) / span[j])
        return np.clip(best_front - value, 0, None), -value
