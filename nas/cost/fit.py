"""Fit a latency LUT from end-to-end measurements of whole networks, few-shot.

Why: `nas` cannot run networks on a phone, an FPGA or a user's edge box, but a user can time a handful of
whole networks there. A LUT (one cost per operator signature, `nas.cost.lut`) is fitted to those timings
so the search can price every other network. Three methods, from least to most prior knowledge:

- `nnls`: per-operator costs by non-negative least squares on the `archs x signatures` count matrix
  (+ intercept), ridge-regularised toward a FLOPs-and-memory-proportional prior. In NB201 the counts
  have rank 4 beyond the intercept, so K measurements pin at most 5 directions; the prior prices the rest.
- `nnls+terms`: the same plus a few topology terms (`nas.cost.features`): live input-to-output paths,
  disconnection, per-choice counts. They see what no operator shows (a `none` vs a `skip_connect` edge).
- `transfer`: the few-shot setting of HELP (Lee et al., 2021): other devices' latencies of the same
  networks are known (`ReferenceTables`), so the target is modelled as a learned combination of them.
  `TransferModel` averages six small regressions (see its docstring) fitted on the K measurements. It
  needs the reference tables at predict time, so `fit_lut` distils it into a standalone LUT: predict the
  whole reference pool, then fit every signature cost and the full term set to those predictions.
  `LUT.meta["fit"][space]["distillation"]` says how far the LUT stays from the model it distils.

Arrays are `n_archs` (latencies) or `n_archs x n_features`; latencies are in ms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.optimize import nnls
from scipy.stats import kendalltau, spearmanr

from nas.cost.counts import layer_macs
from nas.cost.features import signature_counts, term_matrix, topology_terms
from nas.cost.lut import INTERCEPT, LUT
from nas.spaces.base import Arch, LayerSignature, SearchSpace

Method = Literal["nnls", "nnls+terms", "transfer"]
METHODS: tuple[str, ...] = ("nnls", "nnls+terms", "transfer")

_RIDGE_GRID = np.logspace(-4, 1, 6)  # prior strength, relative (see _fit_costs)
_TRANSFER_ALPHAS = np.logspace(-3, 3, 13)
_DISTIL_STRENGTH = 1e-6
_MAX_COUNT_COMPONENTS = 8


class FitError(ValueError):
    """Measurements or references that a LUT cannot be fitted from."""


# --- validation figures ------------------------------------------------------------------------------
def validation_figures(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Rank and error agreement of predictions with measurements: Spearman, Kendall tau-b, mean and
    median absolute percentage error (the median because a runtime that prunes a disconnected network to
    0.01 ms makes any prediction of it a 1000 % error, which dominates the mean)."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    ape = np.abs(predicted - measured) / measured
    return {
        "spearman": float(spearmanr(predicted, measured)[0]),
        "kendall": float(kendalltau(predicted, measured)[0]),
        "mape": float(np.mean(ape)),
        "mdape": float(np.median(ape)),
        "within_10pct": float((ape <= 0.1 + 1e-9).mean() * 100.0),  # share (%), as `nas lut validate` writes it
        "n": int(len(measured)),
    }


# --- the archs a fit sees ------------------------------------------------------------------------------
class ArchPool:
    """Archs whose LUT features are computed once: the networks a LUT must price, and where a transfer
    model is distilled. Rows are the archs in the given order.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> pool = ArchPool(space, space.enumerate()[:50])
        >>> pool.counts.shape[0], len(pool.signatures) > 10
        (50, True)
    """

    def __init__(self, space: SearchSpace, archs: Sequence[Arch], **layer_kwargs: Any) -> None:
        self.space = space
        self.archs = list(archs)
        self.layer_kwargs = dict(layer_kwargs)
        self._row = {a: i for i, a in enumerate(self.archs)}
        if len(self._row) != len(self.archs):
            raise FitError(f"the pool of {len(self.archs)} archs holds duplicates; give each network once")
        self._terms: dict[tuple[str, ...], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.archs)

    def rows(self, archs: Sequence[Arch]) -> np.ndarray:
        """Row index of each arch; FitError names the first one the pool lacks."""
        try:
            return np.array([self._row[a] for a in archs], dtype=np.int64)
        except KeyError as exc:
            raise FitError(f"arch {self.space.to_string(exc.args[0])} is not in the pool of {len(self)} reference archs") from None

    @cached_property
    def _signature_table(self) -> tuple[sp.csr_matrix, list[LayerSignature]]:
        return signature_counts(self.space, self.archs, **self.layer_kwargs)

    @property
    def counts(self) -> sp.csr_matrix:
        """`n_archs x n_signatures` operator counts."""
        return self._signature_table[0]

    @property
    def signatures(self) -> list[LayerSignature]:
        return self._signature_table[1]

    def terms(self, keys: Sequence[str]) -> np.ndarray:
        """`n_archs x len(keys)` topology-term values (cached per key list)."""
        key = tuple(keys)
        if key not in self._terms:
            self._terms[key] = term_matrix(self.space, self.archs, key)
        return self._terms[key]

    def design(self, terms: Sequence[str]) -> np.ndarray:
        """`n_archs x (n_signatures + len(terms))`: counts then terms, the columns a LUT prices."""
        return np.hstack([self.counts.toarray(), self.terms(terms)])

    @cached_property
    def count_components(self) -> np.ndarray:
        """Standardised principal components of the counts (`n_archs x r`, r <= 8): the few directions in
        which networks of this pool differ in what they execute."""
        counts = self.counts.toarray()
        centred = counts - counts.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        rank = int((s > 1e-8 * max(s[0], 1e-300)).sum()) if len(s) else 0
        comps = u[:, : min(rank, _MAX_COUNT_COMPONENTS)] * s[: min(rank, _MAX_COUNT_COMPONENTS)]
        return comps / comps.std(axis=0)

    def predict(self, lut: LUT) -> np.ndarray:
        """`lut.predict(space, archs)` from the cached features (much faster over a whole pool)."""
        lut.check_space(self.space)
        costs = lut.costs(self.space.name)
        intercept = costs.pop(INTERCEPT, 0.0)
        terms = [k for k in costs if k.startswith("term:")]
        keys = [s.key() for s in self.signatures]
        missing = [k for k in keys if k not in costs]
        if missing:
            raise FitError(f"LUT {lut.name} has no entry for operator {missing[0]}")
        out = intercept + self.counts @ np.array([costs[k] for k in keys])
        if terms:
            out = out + self.terms(terms) @ np.array([costs[k] for k in terms])
        return np.asarray(out, dtype=float)


@dataclass
class ReferenceTables:
    """Latencies of every pool arch on known devices: `latencies_ms` is `n_pool x n_devices`.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> pool = ArchPool(space, space.enumerate()[:30])
        >>> ref = ReferenceTables(pool, np.ones((30, 2)) + np.arange(30)[:, None], ("a", "b"))
        >>> ref.select(["b"]).devices
        ('b',)
    """

    pool: ArchPool
    latencies_ms: np.ndarray
    devices: tuple[str, ...]
    _smoothed: np.ndarray | None = field(default=None, repr=False)
    _bases: dict[str, DeviceBasis] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.latencies_ms = np.asarray(self.latencies_ms, dtype=float)
        self.devices = tuple(self.devices)
        if self.latencies_ms.shape != (len(self.pool), len(self.devices)):
            expected = (len(self.pool), len(self.devices))
            raise FitError(f"reference latencies have shape {self.latencies_ms.shape}; expected {expected} (pool x devices)")
        if not self.devices:
            raise FitError("a transfer fit needs at least one reference device")
        if len(set(self.devices)) != len(self.devices):
            raise FitError(f"reference devices repeat: {list(self.devices)}")
        _check_latencies(self.latencies_ms, "reference latencies")

    def select(self, devices: Sequence[str]) -> ReferenceTables:
        """The same pool restricted to `devices` (keeps already smoothed columns)."""
        unknown = [d for d in devices if d not in self.devices]
        if unknown:
            raise FitError(f"unknown reference device(s) {unknown}; known: {', '.join(self.devices)}")
        cols = [self.devices.index(d) for d in devices]
        smoothed = None if self._smoothed is None else self._smoothed[:, cols]
        return ReferenceTables(self.pool, self.latencies_ms[:, cols], tuple(devices), smoothed)

    @property
    def smoothed(self) -> np.ndarray:
        """Each reference device's table as its own full LUT (counts + every term) would predict it.

        Why: phones time in whole milliseconds and GPUs at batch 1 jitter; the LUT family keeps what
        operators and topology explain and drops that noise, which the few-shot fit would otherwise copy.
        """
        if self._smoothed is None:
            design = self.pool.design(topology_terms(self.pool.space, full=True))
            design = np.hstack([design, np.ones((len(design), 1))])
            coef = np.linalg.lstsq(design, self.latencies_ms, rcond=None)[0]
            self._smoothed = np.maximum(design @ coef, 1e-6 * self.latencies_ms.min(axis=0))
        return self._smoothed

    def basis(self, table: Literal["raw", "smoothed"]) -> DeviceBasis:
        """`DeviceBasis` of the raw or smoothed tables, computed once (a refit as measurements arrive
        reuses it: only the K-row posterior is new)."""
        if table not in self._bases:
            self._bases[table] = DeviceBasis.of(self.latencies_ms if table == "raw" else self.smoothed)
        return self._bases[table]


def latency_floor(measured: np.ndarray) -> float:
    """The smallest latency a fitted model may predict: 1/20 of the fastest measured network.

    A twentieth leaves room for networks much faster than any of the K measured (a small sample rarely
    holds the space's fastest) while keeping every prediction positive.
    """
    return 0.05 * float(np.min(measured))


# --- linear algebra ------------------------------------------------------------------------------------
def _check_latencies(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all() or (values <= 0).any():
        raise FitError(f"{what} must be finite and positive (ms)")


def _ridge_loo(design: np.ndarray, y: np.ndarray, penalty: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge coefficients for the strength with the lowest leave-one-out error (closed form)."""
    best: tuple[float, np.ndarray] | None = None
    gram, rhs = design.T @ design, design.T @ y
    for alpha in alphas:
        inv = np.linalg.pinv(gram + alpha * np.diag(penalty))
        coef = inv @ rhs
        leverage = np.einsum("ij,jk,ik->i", design, inv, design)
        loo = (y - design @ coef) / np.clip(1 - leverage, 1e-3, None)
        err = float(np.mean(loo**2))
        if best is None or err < best[0]:
            best = (err, coef)
    assert best is not None
    return best[1]


def _prior_costs(signatures: Sequence[LayerSignature], counts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-signature prior: `a * MACs + b * input elements`, with a, b >= 0 fitted to the measured totals.

    Why both: compute-bound devices track MACs; on memory- or launch-bound ones (GPUs at batch 1,
    phones) element-wise operators cost too, roughly in proportion to the tensor they read.
    """
    macs = np.empty(len(signatures))
    for j, sig in enumerate(signatures):
        try:
            macs[j] = layer_macs(sig)
        except ValueError:  # an operator the analytic count does not know: priced by its elements only
            macs[j] = 0.0
    elements = np.array([float(np.prod(sig.in_shape)) for sig in signatures])
    basis = np.column_stack([counts @ (macs / 1e6), counts @ (elements / 1e6), np.ones(len(y))])
    (a, b, _), _ = nnls(basis, y)
    return a * macs / 1e6 + b * elements / 1e6


def _least_squares_with_inequalities(a: np.ndarray, b: np.ndarray, g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """min |a x - b| subject to g x >= h, for `a` of full column rank (Lawson & Hanson, ch. 23).

    Reduces to a least-distance problem through the QR factors of `a`, whose dual is an NNLS with one
    variable per inequality: exact, and small because only bounds and violated floors are passed.
    """
    q, r = np.linalg.qr(a)
    f = q.T @ b
    r_inv = solve_triangular(r, np.eye(r.shape[0]))
    e = g @ r_inv
    slack = h - e @ f
    p = r.shape[0]
    dual = np.vstack([e.T, slack[None, :]])
    target = np.zeros(p + 1)
    target[-1] = 1.0
    u, _ = nnls(dual, target, maxiter=max(100, 50 * dual.shape[1]))
    resid = dual @ u - target
    if abs(resid[-1]) < 1e-12:
        raise FitError("the fitted costs cannot satisfy their bounds (degenerate design); measure more networks")
    return r_inv @ (f - resid[:p] / resid[-1])


def _fit_costs(
    design: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray,
    n_signatures: int,
    strength: float,
    pool_design: np.ndarray | None = None,
    floor: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Costs (signatures >= 0, terms free) and a free intercept minimising
    `|design @ c + b - y|^2 + strength * n * sum_j (w_j (c_j - prior_j))^2`, with `w_j` the mean |value|
    of column j, so the penalty is in ms of the average network's total.

    With `pool_design`, every pool network is also kept at or above `floor` ms. Why: a free intercept
    and free-signed terms let a least-squares fit dip below zero for networks it never saw, and a
    negative latency would make any latency constraint meaningless. Violated networks are added as
    inequality constraints until none is left (constraint generation; a few rounds in practice).
    """
    n, p = design.shape
    scale = np.abs(design).mean(axis=0)
    scale[scale == 0] = 1.0
    root = np.sqrt(strength * n) * scale
    # The intercept gets a vanishing penalty too, so the augmented matrix has full column rank.
    a = np.vstack([np.hstack([design, np.ones((n, 1))]), np.diag(np.append(root, 1e-9 * np.sqrt(n)))])
    b = np.concatenate([y, root * prior, [0.0]])
    bounds = np.eye(p + 1)[:n_signatures]
    g, h = bounds, np.zeros(n_signatures)
    full = None if pool_design is None else np.hstack([pool_design, np.ones((len(pool_design), 1))])
    active = np.zeros(0 if full is None else len(full), dtype=bool)
    for _ in range(50):
        x = _least_squares_with_inequalities(a, b, g, h)
        if full is None:
            break
        below = (full @ x < floor * (1 - 1e-6)) & ~active
        if not below.any():
            break
        active |= below
        g, h = np.vstack([bounds, full[active]]), np.concatenate([np.zeros(n_signatures), np.full(int(active.sum()), floor)])
    return x[:p], float(x[p])


def _choose_strength(design: np.ndarray, y: np.ndarray, prior: np.ndarray, n_signatures: int, rng: np.random.Generator) -> float:
    """Prior strength by cross-validation (leave-one-out for K <= 20, else 5 random folds).

    The error is absolute (ms^2), as in the fit: a relative error would let one network a runtime
    prunes to 0.01 ms outweigh all the others.
    """
    k = len(y)
    if k < 3:
        return float(_RIDGE_GRID[-1])
    folds = np.arange(k) if k <= 20 else rng.permutation(k) % 5
    errors = []
    for strength in _RIDGE_GRID:
        err = 0.0
        for f in np.unique(folds):
            train, test = folds != f, folds == f
            coef, intercept = _fit_costs(design[train], y[train], prior, n_signatures, strength)
            err += float(np.sum((design[test] @ coef + intercept - y[test]) ** 2))
        errors.append(err)
    return float(_RIDGE_GRID[int(np.argmin(errors))])


# --- Bayesian device mixture --------------------------------------------------------------------------
_MIXTURE_TAUS = (0.01, 0.03, 0.1, 0.3, 1.0)  # how far from a reference device the target may sit, in prior sd
_MIXTURE_NOISE = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)  # measurement noise variance, relative to the K's variance


@dataclass(frozen=True)
class DeviceBasis:
    """Reference tables (each scaled to mean 1) as `mean + components @ loadings[d]`: the few directions
    in which devices differ over the pool, and where each known device sits along them.

    Why: a new device is most likely another point of the same low-dimensional family (a GPU at another
    batch size, a phone of another year), so its table is `c + components @ w` for loadings `w` near some
    known device's; K measurements pin `w` down far better than they pin one weight per reference.

    Shapes: `components` `n_pool x r`, `loadings` `n_devices x r`, `prior_cov` `r x r` (the spread of the
    known devices' loadings, the prior a new device is drawn from).
    """

    components: np.ndarray
    loadings: np.ndarray
    prior_cov: np.ndarray

    @classmethod
    def of(cls, table: np.ndarray) -> DeviceBasis:
        """The basis of `n_pool x n_devices` latencies (ms)."""
        scaled = table / table.mean(axis=0)
        u, s, vt = np.linalg.svd(scaled - scaled.mean(axis=0), full_matrices=False)
        keep = s > 1e-9 * max(s[0], 1e-300) if len(s) else np.zeros(0, dtype=bool)
        loadings = (s[keep, None] * vt[keep]).T
        spread = np.atleast_2d(np.cov(loadings.T)) if len(loadings) > 1 else np.eye(int(keep.sum()))
        ridge = 1e-6 * max(float(np.trace(spread)), 1e-12) / max(int(keep.sum()), 1)
        return cls(u[:, keep], loadings, spread + ridge * np.eye(int(keep.sum())))


def _device_mixture(basis: DeviceBasis, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance, over the pool, of a target measured as `t` (scaled) on `rows`.

    Model: `t = c + components @ w + noise`, `c` nearly free; the prior on `w` is a mixture with one
    Gaussian per known device, centred on its loadings with covariance `tau^2 * prior_cov`, plus one
    broad component (the known devices' mean and spread). The mixture weights, `tau` and the noise are
    averaged by their evidence on the K measurements (Bayesian model averaging over a small grid), so a
    target with a near twin follows it and one without falls back on the family's spread.
    Returns `n_pool` means and `n_pool` predictive variances (noise included), in the units of `t`.
    """
    n_dev, r = basis.loadings.shape
    k = len(rows)
    design = np.column_stack([np.ones(k), basis.components[rows]])  # K x (1 + r)
    scale = float(t.var()) or 1.0
    centres = np.vstack([basis.loadings, basis.loadings.mean(axis=0)])  # (n_dev + 1) x r
    mu0 = np.column_stack([np.full(len(centres), t.mean()), centres])  # components x (1 + r)
    groups = []  # (log evidence per centre, posterior means per centre, posterior covariance, noise)
    for noise in _MIXTURE_NOISE:
        for tau in (*_MIXTURE_TAUS, None):  # None: the broad component
            prior = np.zeros((r + 1, r + 1))
            prior[0, 0] = 100.0 * (scale + t.mean() ** 2)
            prior[1:, 1:] = basis.prior_cov * (1.0 if tau is None else tau**2)
            gram = design @ prior @ design.T + noise * scale * np.eye(k)
            chol = np.linalg.cholesky(gram)
            centre_rows = slice(n_dev, None) if tau is None else slice(0, n_dev)
            resid = t[:, None] - design @ mu0[centre_rows].T  # K x centres
            white = solve_triangular(chol, resid, lower=True)
            evidence = -0.5 * (white**2).sum(axis=0) - np.log(np.diag(chol)).sum()
            gain = prior @ design.T  # (1 + r) x K
            means = mu0[centre_rows] + (gain @ solve_triangular(chol.T, white, lower=False)).T
            cov = prior - gain @ np.linalg.solve(gram, gain.T)
            # The broad component counts as one more "device" at every noise level, not once per tau.
            groups.append((evidence, means, cov, noise * scale))
    evidence = np.concatenate([g[0] for g in groups])
    weights = np.exp(evidence - evidence.max())
    weights /= weights.sum()
    full = np.column_stack([np.ones(len(basis.components)), basis.components])
    mean_coef = np.zeros(r + 1)
    at = 0
    for ev, means, _, _ in groups:
        mean_coef += weights[at : at + len(ev)] @ means
        at += len(ev)
    mean = full @ mean_coef
    var = np.zeros(len(full))
    at = 0
    for ev, means, cov, noise in groups:
        w = weights[at : at + len(ev)]
        at += len(ev)
        if w.sum() < 1e-6:
            continue
        var += w.sum() * (np.einsum("ij,jk,ik->i", full, cov, full) + noise)
        for wi, coef in zip(w, means):
            if wi > 1e-6:
                var += wi * (full @ (coef - mean_coef)) ** 2
    return mean, var


# --- few-shot transfer -------------------------------------------------------------------------------
def nearest_device(reference: ReferenceTables, rows: np.ndarray, y: np.ndarray) -> tuple[str, float]:
    """The reference device whose latencies rank the measured archs best (Spearman on those K)."""
    rhos = np.array([spearmanr(reference.latencies_ms[rows, j], y)[0] for j in range(len(reference.devices))])
    if np.isnan(rhos).all():
        return reference.devices[0], float("nan")
    j = int(np.nanargmax(rhos))
    return reference.devices[j], float(rhos[j])


PREVIOUS_MEMBERS: Mapping[str, float] = {
    f"{member}/{table}": 1.0 / 6 for table in ("raw", "smoothed") for member in ("combination", "toward_mean", "toward_nearest")
}
DEFAULT_MEMBERS: Mapping[str, float] = {**PREVIOUS_MEMBERS, "mixture/smoothed": 2.0, "mixture/raw": 1.0}
MEMBERS: tuple[str, ...] = tuple(DEFAULT_MEMBERS)


class TransferModel:
    """Predicts a device's latency of every pool arch from K measurements and the reference tables.

    A weighted average, in ms, of members; each is fitted on the K measured archs alone, evaluated on
    the raw reference tables and on their LUT-smoothed versions (`ReferenceTables.smoothed`):

    - `combination`: non-negative weights on the references, each scaled to mean 1 (NNLS). Weights
      cannot be negative, so one odd measurement cannot flip a device's sign.
    - `toward_mean`: ridge on the references' deviations from the average device, plus the count
      components of the pool (what operators run); the average device and an intercept are free, so
      with few measurements the prediction shrinks toward "a typical device, rescaled".
    - `toward_nearest`: the same, shrunk toward the device that ranks the K archs best, which wins when
      the target has a near twin (the same GPU at another batch size).
    - `mixture`: the Bayesian device mixture (`DeviceBasis`, `_device_mixture`): the target is one more
      point of the reference devices' low-dimensional family, near one known device or drawn from the
      family's spread, weighted by the evidence of the K measurements. It also gives each arch a
      predictive variance.

    Why this blend (`DEFAULT_MEMBERS`: the six regressions at 1/6 each, the smoothed mixture at 2, the
    raw one at 1): with K = 10 no single model is right for every device (a sibling GPU, an accelerator
    simulator that follows FLOPs, a phone timed in whole ms). In leave-one-device-out runs at K = 10
    (5 seeds; benchmarks/latency_fewshot.py) on the 18 NB201 devices the six regressions alone
    (`PREVIOUS_MEMBERS`, the model before the mixture) scored 0.9720 mean Spearman and lost to the
    nearest device on 2; the smoothed mixture alone 0.973, this blend 0.9745 and beat the nearest device
    on all 18 (on two GPUs with a twin, titan_rtx_1 and titan_rtx_256, by under 0.001); on the 18
    FBNet devices 0.9328 against 0.9276, still behind the nearest device on 1080ti_1. The weights
    were chosen on those same devices from a coarse grid: blends within it scored 0.972-0.9747, rank
    or log averaging, raw- vs smoothed-basis evidence weighting, truncated bases and wider grids no
    better, so treat the last digit as optimistic. Weighting members by their leave-one-out error on
    the K archs did not help either (0.9715 at K = 10).

    `weights` picks other members or weights (names from `MEMBERS`). Refitting is cheap: the reference
    tables' smoothing and bases are cached on `reference`, so a refit as measurements arrive costs a few
    small regressions and one pool-sized matrix product per member.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> pool = ArchPool(space, space.enumerate()[::97])
        >>> base = pool.counts.toarray().sum(axis=1)
        >>> ref = ReferenceTables(pool, np.column_stack([base, base ** 1.1, np.sqrt(base)]), ("a", "b", "c"))
        >>> model = TransferModel(ref).fit(np.arange(10), 2 * base[:10] + 1)
        >>> bool(spearmanr(model.predict(), base)[0] > 0.99)
        True
        >>> mean, std = model.predict_distribution()
        >>> mean.shape == std.shape == (len(pool),) and bool((std > 0).all())
        True
    """

    def __init__(self, reference: ReferenceTables, *, weights: Mapping[str, float] | None = None) -> None:
        self.reference = reference
        self.weights = dict(DEFAULT_MEMBERS if weights is None else weights)
        unknown = [m for m in self.weights if m not in MEMBERS]
        if unknown or not self.weights or any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise FitError(f"transfer weights must be non-negative, not all zero, over members {', '.join(MEMBERS)}; got {self.weights}")

    def fit(self, rows: np.ndarray, y: np.ndarray) -> TransferModel:
        """Fit every weighted member on the measured pool rows `rows` (K) and their latencies `y` (ms)."""
        rows, y = np.asarray(rows, dtype=np.int64), np.asarray(y, dtype=float)
        if len(rows) != len(y) or len(y) < 2:
            raise FitError(f"need at least 2 measurements, one per arch; got {len(y)} latencies for {len(rows)} archs")
        _check_latencies(y, "measured latencies")
        components = self.reference.pool.count_components
        predictions: dict[str, np.ndarray] = {}
        variances: dict[str, np.ndarray] = {}
        self.nearest_, _ = nearest_device(self.reference, rows, y)
        near = self.reference.devices.index(self.nearest_)
        wanted = {m for m, w in self.weights.items() if w > 0}
        for table_name, table in (("raw", self.reference.latencies_ms), ("smoothed", self.reference.smoothed)):
            scaled = table / table.mean(axis=0)
            members: dict[str, Callable[[], np.ndarray]] = {
                "combination": lambda: _combination(scaled, rows, y),
                "toward_mean": lambda: _toward(scaled, scaled.mean(axis=1), components, rows, y),
                "toward_nearest": lambda: _toward(scaled, scaled[:, near], components, rows, y),
            }
            for member, predict in members.items():
                if f"{member}/{table_name}" in wanted:
                    predictions[f"{member}/{table_name}"] = predict()
            if f"mixture/{table_name}" in wanted:
                unit = float(y.mean())
                mean, var = _device_mixture(self.reference.basis(table_name), rows, y / unit)  # type: ignore[arg-type]
                predictions[f"mixture/{table_name}"], variances[f"mixture/{table_name}"] = mean * unit, var * unit**2
        self.member_predictions_ = predictions
        self.member_variances_ = variances
        weights = np.array([self.weights[m] for m in predictions])
        weights = weights / weights.sum()
        stacked = np.stack(list(predictions.values()))
        blend = weights @ stacked
        # Spread of the members around the blend, plus the mixtures' own predictive variance.
        self.variance_ = weights @ (stacked - blend) ** 2
        mixture_weight = sum(weights[list(predictions).index(m)] for m in variances)
        if variances:
            own = sum(weights[list(predictions).index(m)] * v for m, v in variances.items()) / mixture_weight
            self.variance_ = self.variance_ + own
        # Linear members can dip below zero far from the K archs they were fitted on.
        self.floor_ = latency_floor(y)
        self.prediction_ = np.maximum(blend, self.floor_)
        return self

    def predict(self) -> np.ndarray:
        """Predicted latency (ms) of every pool arch, in pool order."""
        if not hasattr(self, "prediction_"):
            raise FitError("TransferModel.predict called before fit")
        return self.prediction_

    def predict_distribution(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (ms) of every pool arch's latency, or of the pool rows `rows`.

        The standard deviation adds the members' disagreement around the blend to the mixture members'
        posterior predictive variance (which includes measurement noise), so it is wide where the K
        measurements leave the device family unsure and where the members disagree.
        """
        mean = self.predict()
        std = np.sqrt(self.variance_)
        if rows is None:
            return mean, std
        rows = np.asarray(rows, dtype=np.int64)
        return mean[rows], std[rows]


def _combination(scaled: np.ndarray, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.column_stack([scaled, np.ones(len(scaled))])
    coef, _ = nnls(design[rows], y)
    return design @ coef


def _toward(scaled: np.ndarray, prior: np.ndarray, components: np.ndarray, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    deviation = scaled - prior[:, None]
    spread = float(deviation.std()) or 1.0
    design = np.column_stack([np.ones(len(scaled)), prior, deviation, components * spread])
    penalty = np.concatenate([[0.0, 0.0], np.ones(design.shape[1] - 2)])
    coef = _ridge_loo(design[rows], y, penalty, _TRANSFER_ALPHAS)
    return design @ coef


# --- LUT fitting -----------------------------------------------------------------------------------------
def _costs_lut(space: SearchSpace, keys: Sequence[str], coef: np.ndarray, intercept: float, *, device: str, meta: Mapping[str, Any]) -> LUT:
    costs = {INTERCEPT: intercept, **{k: float(c) for k, c in zip(keys, coef)}}
    return LUT.from_costs(space.name, costs, device=device, meta={"kind": "fitted", **meta})


def fit_costs_to(
    pool: ArchPool,
    rows: np.ndarray,
    y: np.ndarray,
    terms: Sequence[str],
    rng: np.random.Generator,
    *,
    strength: float | None = None,
    floor: float | None = None,
) -> tuple[list[str], np.ndarray, float, float]:
    """Fit signature costs (and `terms`) to latencies `y` of pool rows `rows`.

    Every signature of the pool gets a cost, also those the fitted archs never use (they keep their
    prior), so the LUT prices the whole pool; no pool network is predicted below `floor` (default:
    `latency_floor(y)`). Returns keys, costs, intercept and the prior strength.
    """
    design = pool.design(terms)
    n_sig = len(pool.signatures)
    counts = design[rows, :n_sig]
    prior = np.concatenate([_prior_costs(pool.signatures, counts, y), np.zeros(len(terms))])
    if strength is None:
        strength = _choose_strength(design[rows], y, prior, n_sig, rng)
    floor = latency_floor(y) if floor is None else floor
    coef, intercept = _fit_costs(design[rows], y, prior, n_sig, strength, design, floor)
    return [*(s.key() for s in pool.signatures), *terms], coef, intercept, strength


@dataclass
class LUTFit:
    """A fitted LUT and, for the transfer method, the model it was distilled from."""

    lut: LUT
    model: TransferModel | None = None


def fit_lut(
    space: SearchSpace,
    archs: Sequence[Arch],
    latencies_ms: Sequence[float] | np.ndarray,
    *,
    device: str,
    method: Method = "transfer",
    seed: int = 0,
    reference: ReferenceTables | None = None,
    pool: ArchPool | None = None,
) -> LUT:
    """A LUT for `device` fitted to measured latencies of whole networks.

    Args:
        space: the space of `archs`.
        archs: the K measured networks.
        latencies_ms: their measured latency (ms), one per arch, all positive.
        device: name recorded in the LUT.
        method: "nnls", "nnls+terms" or "transfer" (module docstring).
        seed: seeds the cross-validation folds used to choose the prior strength.
        reference: other devices' latencies of a pool of archs containing `archs`; required for
            "transfer", whose LUT is distilled on that pool.
        pool: archs the LUT must price (default: the reference pool, else `archs`); every operator they
            use gets a row.

    Returns:
        The LUT; `meta["fit"][space]` records method, K, seed, reference devices, prior strength and,
        for "transfer", the distillation figures (the LUT's agreement with the transfer model on the pool).

    Raises:
        FitError: too few or non-positive latencies, an unknown method, or missing references.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> archs = space.enumerate()[:40]
        >>> truth = ArchPool(space, archs).counts.toarray() @ np.linspace(0.01, 0.1, 27) + 1.0
        >>> lut = fit_lut(space, archs[:20], truth[:20], device="toy", method="nnls", pool=ArchPool(space, archs))
        >>> bool(np.allclose(lut.predict(space, archs[20:]), truth[20:], rtol=0.05))
        True
    """
    return fit_with_model(space, archs, latencies_ms, device=device, method=method, seed=seed, reference=reference, pool=pool).lut


def fit_with_model(
    space: SearchSpace,
    archs: Sequence[Arch],
    latencies_ms: Sequence[float] | np.ndarray,
    *,
    device: str,
    method: Method = "transfer",
    seed: int = 0,
    reference: ReferenceTables | None = None,
    pool: ArchPool | None = None,
) -> LUTFit:
    """`fit_lut`, also returning the transfer model (to compare it with its distilled LUT)."""
    if method not in METHODS:
        raise FitError(f"unknown fit method {method!r}; expected one of {', '.join(METHODS)}")
    y = np.asarray(latencies_ms, dtype=float).reshape(-1)
    if len(y) != len(archs):
        raise FitError(f"got {len(y)} latencies for {len(archs)} archs")
    if len(y) < 2:
        raise FitError(f"need at least 2 measured networks to fit a LUT, got {len(y)}")
    _check_latencies(y, "measured latencies")
    rng = np.random.default_rng(seed)
    if reference is not None:
        if device in reference.devices:
            raise FitError(f"reference devices include the device being fitted ({device!r}); leave it out")
        if pool is not None and pool is not reference.pool:
            raise FitError("pass either a reference (its pool is used) or a pool, not both")
        pool = reference.pool
    pool = pool if pool is not None else ArchPool(space, archs)
    if pool.space.name != space.name:
        raise FitError(f"the pool is of space {pool.space.name!r}, the archs of {space.name!r}")
    rows = pool.rows(archs)
    meta: dict[str, Any] = {"method": method, "k": len(y), "seed": seed, "pool": len(pool)}
    model = None
    if method == "transfer":
        if reference is None:
            raise FitError("method 'transfer' needs reference tables of other devices; use method 'nnls+terms' without them")
        model = TransferModel(reference).fit(rows, y)
        teacher = model.predict()
        terms = topology_terms(space, full=True)
        keys, coef, intercept, strength = fit_costs_to(
            pool, np.arange(len(pool)), teacher, terms, rng, strength=_DISTIL_STRENGTH, floor=model.floor_
        )
        student = pool.predict(_costs_lut(space, keys, coef, intercept, device=device, meta={}))
        meta |= {
            "reference_devices": list(reference.devices),
            "nearest_device": model.nearest_,
            "distillation": {**validation_figures(student, teacher), "target": "transfer model over the pool"},
        }
    else:
        terms = topology_terms(space) if method == "nnls+terms" else []
        keys, coef, intercept, strength = fit_costs_to(pool, rows, y, terms, rng)
        meta["reference_devices"] = []
    meta["prior_strength"] = strength
    return LUTFit(_costs_lut(space, keys, coef, intercept, device=device, meta={"fit": {space.name: meta}}), model)


# --- cross-validation of a fit on every measurement ---------------------------------------------------
MIN_CV_MEASUREMENTS = 3  # leave-one-out then fits on 2, the fewest a fit accepts
MIN_RANK_MEASUREMENTS = 5  # below this a rank correlation over the K rows says nothing
_LOO_UP_TO = 20
_DEFAULT_FOLDS = 10


def cv_folds(k: int, folds: int | None, seed: int) -> np.ndarray:
    """Fold id of each of `k` measurements: leave-one-out up to 20 measurements, else 10 seeded random
    folds of (almost) equal size; `folds` overrides the count (`folds == k` is leave-one-out).

    Example:
        >>> cv_folds(4, None, 0).tolist()
        [0, 1, 2, 3]
        >>> np.bincount(cv_folds(25, 5, 0)).tolist()
        [5, 5, 5, 5, 5]
    """
    if k < MIN_CV_MEASUREMENTS:
        raise FitError(f"cross-validation needs at least {MIN_CV_MEASUREMENTS} measured networks, got {k}")
    n = (k if k <= _LOO_UP_TO else _DEFAULT_FOLDS) if folds is None else int(folds)
    if not 2 <= n <= k:
        raise FitError(f"cross-validation folds must be between 2 and the {k} measured networks, got {n}")
    if n == k:
        return np.arange(k)
    return np.random.default_rng(seed).permutation(np.arange(k) % n)


@dataclass
class CrossValidation:
    """Out-of-fold predictions of K measurements (ms): each predicted by a fit that never saw it.

    `predicted` is the fitted LUT's (what a search prices with); `model_predicted` the transfer model's
    before distillation (None for the per-operator methods).
    """

    folds: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    model_predicted: np.ndarray | None = None

    @property
    def n_folds(self) -> int:
        return int(len(np.unique(self.folds)))

    @property
    def scheme(self) -> str:
        return "leave-one-out" if self.n_folds == len(self.folds) else f"{self.n_folds}-fold"

    def figures(self, model: bool = False) -> dict[str, Any]:
        """`cv_figures` of the LUT's (or, with `model`, the transfer model's) out-of-fold predictions."""
        predicted = self.model_predicted if model else self.predicted
        if predicted is None:
            raise FitError("this cross-validation holds no transfer-model predictions")
        return cv_figures(predicted, self.measured)


def cv_figures(predicted: np.ndarray, measured: np.ndarray) -> dict[str, Any]:
    """`validation_figures`, without the rank correlations when fewer than 5 networks were measured
    (with 3 or 4 a Spearman takes only a handful of values and would read as a precise figure)."""
    figures: dict[str, Any] = validation_figures(predicted, measured)
    if len(measured) < MIN_RANK_MEASUREMENTS:
        del figures["spearman"], figures["kendall"]
    return figures


def cross_validate(
    space: SearchSpace,
    archs: Sequence[Arch],
    latencies_ms: Sequence[float] | np.ndarray,
    *,
    device: str,
    method: Method = "transfer",
    seed: int = 0,
    reference: ReferenceTables | None = None,
    pool: ArchPool | None = None,
    folds: int | None = None,
) -> CrossValidation:
    """The error to expect from `fit_with_model` on all K measurements, estimated by refitting it with
    each fold left out and predicting that fold (same method, seed and references; the prior strength
    and, for transfer, the model's regularisation are re-chosen inside every fold).

    Why refit everything: a fit that chose its prior strength on all K rows has already seen the held-out
    row; only a refit from scratch gives an honest estimate for a LUT fitted on every measurement.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> archs = space.enumerate()[:40]
        >>> pool = ArchPool(space, archs)
        >>> truth = pool.counts.toarray() @ np.linspace(0.01, 0.1, 27) + 1.0
        >>> cv = cross_validate(space, archs[:12], truth[:12], device="toy", method="nnls", pool=pool)
        >>> cv.scheme, cv.figures()["mape"] < 0.05
        ('leave-one-out', True)
    """
    y = np.asarray(latencies_ms, dtype=float).reshape(-1)
    if len(y) != len(archs):
        raise FitError(f"got {len(y)} latencies for {len(archs)} archs")
    _check_latencies(y, "measured latencies")
    fold_of = cv_folds(len(y), folds, seed)
    predicted = np.empty(len(y))
    model_predicted = np.empty(len(y)) if method == "transfer" else None
    for fold in np.unique(fold_of):
        test = np.flatnonzero(fold_of == fold)
        train = np.flatnonzero(fold_of != fold)
        fitted = fit_with_model(
            space, [archs[i] for i in train], y[train], device=device, method=method, seed=seed, reference=reference, pool=pool
        )
        held = [archs[i] for i in test]
        fit_pool = reference.pool if reference is not None else pool
        if fit_pool is not None:
            rows = fit_pool.rows(held)
            predicted[test] = fit_pool.predict(fitted.lut)[rows]
        else:
            predicted[test] = fitted.lut.predict(space, held)
        if model_predicted is not None and fitted.model is not None:
            model_predicted[test] = fitted.model.predict()[fitted.model.reference.pool.rows(held)]
    return CrossValidation(fold_of, y, predicted, model_predicted)
