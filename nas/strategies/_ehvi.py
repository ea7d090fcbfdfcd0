"""Exact expected hypervolume improvement in 3-D with two known costs and one uncertain objective.

Why a closed form: latency and params are known for every candidate before it is evaluated; only
accuracy `y ~ N(mean, std^2)` is uncertain. A candidate at known costs `c = (c1, c2)` newly dominates
the points `(t, x)` with `x` in its cost box `[c, ref)` and `y <= t < L(x)`, where `L(x)` is the best
(lowest) uncertain value of the front points that dominate `x` in cost space (`ref` where none does). So

    HVI(y) = integral over the box of max(0, L(x) - y) dx,   E[HVI] = integral of E[max(0, L(x) - Y)] dx.

`L` is constant on the cells of the grid cut by the front's cost coordinates, and takes one of the
front's uncertain values (or the reference), so E[HVI] = sum over levels l of area_l(c) * ES(level_l),
ES the Gaussian expected shortfall. `area_l(c)`, the part of the candidate's box on cells of level l,
comes from 2-D suffix sums over the grid plus the partial row and column the box starts in, so scoring
the whole space costs `n_candidates x n_levels` work after an `O(m^3)` table build (m front points).
The same areas with `max(0, level - y)` in place of ES give the exact improvement of a known `y`
(Thompson sampling); tests check both against `nas.pareto.hypervolume` and a Monte Carlo mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def expected_shortfall(threshold: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """E[max(0, threshold - Y)] for Y ~ N(mean, std) (minimisation's expected improvement), broadcast."""
    std = np.maximum(std, 1e-12)
    z = (threshold - mean) / std
    return (threshold - mean) * ndtr(z) + std * _INV_SQRT_2PI * np.exp(-0.5 * z * z)


@dataclass(frozen=True)
class LevelAreas:
    """Suffix-sum tables of the front's cost-space grid, one slice per uncertain level.

    Shapes (`nx`, `ny` cells per cost axis, `nl` levels): `edges_x` is `nx + 1` (first -inf, last the
    reference), `edges_y` is `ny + 1`, `levels` is `nl` (ascending, the last one the reference),
    `full` is `(nx + 1) x (ny + 1) x nl`, `col` and `row` are `nx x (ny + 1) x nl` and
    `(nx + 1) x ny x nl`, `cell` is `nx x ny x nl`.
    """

    edges_x: np.ndarray
    edges_y: np.ndarray
    levels: np.ndarray
    full: np.ndarray
    col: np.ndarray
    row: np.ndarray
    cell: np.ndarray

    def areas(self, cost: np.ndarray) -> np.ndarray:
        """Area of each candidate's box `[cost, ref)` on each level: `n_candidates x nl`.

        `cost` is `n_candidates x 2`; a candidate at or beyond the reference in either cost has no box.
        """
        cx, cy = cost[:, 0], cost[:, 1]
        nx, ny = len(self.edges_x) - 1, len(self.edges_y) - 1
        inside = (cx < self.edges_x[-1]) & (cy < self.edges_y[-1])
        i = np.clip(np.searchsorted(self.edges_x, cx, side="right") - 1, 0, nx - 1)
        j = np.clip(np.searchsorted(self.edges_y, cy, side="right") - 1, 0, ny - 1)
        w = np.where(inside, self.edges_x[i + 1] - np.maximum(cx, self.edges_x[i]), 0.0)[:, None]
        h = np.where(inside, self.edges_y[j + 1] - np.maximum(cy, self.edges_y[j]), 0.0)[:, None]
        out = self.full[i + 1, j + 1] + w * self.col[i, j + 1] + h * self.row[i + 1, j] + w * h * self.cell[i, j]
        return np.where(inside[:, None], out, 0.0)


def level_areas(front: np.ndarray, ref: np.ndarray, uncertain: int, known: tuple[int, int]) -> LevelAreas:
    """The grid tables of `front` (`m x n_objectives`, minimised) against `ref`.

    Only front points strictly better than `ref` in the three objectives used count; dominated points may
    be passed (they cover nothing the front does not).
    """
    kx, ky = known
    used = [uncertain, kx, ky]
    pts = front[np.isfinite(front[:, used]).all(axis=1) & (front[:, used] < ref[used]).all(axis=1)]
    a, bx, by = pts[:, uncertain], pts[:, kx], pts[:, ky]
    edges_x = np.concatenate([[-np.inf], np.unique(bx), [ref[kx]]])
    edges_y = np.concatenate([[-np.inf], np.unique(by), [ref[ky]]])
    levels = np.unique(np.append(a, ref[uncertain]))
    # level of cell (i, j): the best uncertain value among points whose costs are <= the cell's lower corner
    covers = (bx[:, None, None] <= edges_x[None, :-1, None]) & (by[:, None, None] <= edges_y[None, None, :-1])
    best = np.where(covers, a[:, None, None], ref[uncertain]).min(axis=0, initial=ref[uncertain])
    onehot = (best[:, :, None] == levels[None, None, :]).astype(float)
    w = np.diff(edges_x)
    h = np.diff(edges_y)
    w[0] = h[0] = 0.0  # the first (unbounded) row and column only ever count in part, via `col`/`row`/`cell`
    nx, ny, nl = onehot.shape
    full = np.zeros((nx + 1, ny + 1, nl))
    full[:nx, :ny] = onehot * w[:, None, None] * h[None, :, None]
    full = full[::-1].cumsum(axis=0)[::-1][:, ::-1].cumsum(axis=1)[:, ::-1]
    col = np.zeros((nx, ny + 1, nl))
    col[:, :ny] = onehot * h[None, :, None]
    col = col[:, ::-1].cumsum(axis=1)[:, ::-1]
    row = np.zeros((nx + 1, ny, nl))
    row[:nx] = onehot * w[:, None, None]
    row = row[::-1].cumsum(axis=0)[::-1]
    return LevelAreas(edges_x, edges_y, levels, full, col, row, onehot)


def ehvi_3d(cost: np.ndarray, mean: np.ndarray, std: np.ndarray, front: np.ndarray, ref: np.ndarray, uncertain: int, known: tuple[int, int]) -> np.ndarray:
    """Exact E[HVI] of candidates with known `cost` (`n x 2`, columns = objectives `known`) and uncertain
    value N(mean, std^2) (`n` each) against `front` (`m x 3`, minimised) and `ref`; returns `n`."""
    grid = level_areas(front, ref, uncertain, known)
    return (grid.areas(cost) * expected_shortfall(grid.levels[None, :], mean[:, None], std[:, None])).sum(axis=1)


def hvi_3d(cost: np.ndarray, value: np.ndarray, front: np.ndarray, ref: np.ndarray, uncertain: int, known: tuple[int, int]) -> np.ndarray:
    """Exact HV improvement of candidates at known `cost` (`n x 2`) with uncertain objective `value` (`n`)."""
    grid = level_areas(front, ref, uncertain, known)
    return (grid.areas(cost) * np.clip(grid.levels[None, :] - value[:, None], 0.0, None)).sum(axis=1)
