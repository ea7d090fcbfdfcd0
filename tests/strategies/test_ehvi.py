"""Exact 3-D expected hypervolume improvement at known costs (nas.strategies._ehvi)."""

from __future__ import annotations

import numpy as np
import pytest

from nas.pareto import hypervolume, pareto_mask
from nas.strategies._ehvi import ehvi_3d, hvi_3d, level_areas


def _brute_force_hvi(front: np.ndarray, candidates: np.ndarray, ref: np.ndarray) -> np.ndarray:
    base = hypervolume(front, ref)
    return np.array([hypervolume(np.vstack([front, c]), ref) - base for c in candidates])


@pytest.mark.parametrize("seed", range(6))
def test_hvi_matches_the_exact_3d_hypervolume_difference(seed):
    """Random fronts (with dominated points and, on odd seeds, ties on a coarse grid) and candidates that
    lie inside, on and beyond the front and the reference point."""
    rng = np.random.default_rng(seed)
    F = rng.uniform(0, 1, (int(rng.integers(1, 25)), 3))
    C = rng.uniform(-0.2, 1.3, (150, 3))
    if seed % 2:
        F, C = np.round(F * 5) / 5, np.round(C * 5) / 5
    ref = np.array([1.1, 1.05, 1.2])
    expected = _brute_force_hvi(F, C, ref)
    assert (expected > 0).any() and (expected == 0).any()
    np.testing.assert_allclose(hvi_3d(C[:, 1:], C[:, 0], F, ref, 0, (1, 2)), expected, atol=1e-12)
    # the uncertain objective in another column and the known ones in the other order
    perm = [2, 0, 1]
    np.testing.assert_allclose(hvi_3d(C[:, [1, 2]], C[:, 0], F[:, perm], ref[perm], 1, (2, 0)), expected, atol=1e-12)


def test_ehvi_equals_the_monte_carlo_mean_of_the_exact_improvement():
    rng = np.random.default_rng(0)
    F = rng.uniform(0, 1, (15, 3))
    ref = np.full(3, 1.1)
    cost = np.array([[0.2, 0.4], [0.5, 0.1], [0.05, 0.05]])
    mean, std = np.array([0.3, 0.5, 0.9]), np.array([0.1, 0.3, 0.2])
    n_draws = 200_000
    draws = rng.normal(mean, std, size=(n_draws, 3))
    mc = hvi_3d(np.tile(cost, (n_draws, 1)), draws.ravel(), F, ref, 0, (1, 2)).reshape(n_draws, 3).mean(axis=0)
    np.testing.assert_allclose(ehvi_3d(cost, mean, std, F, ref, 0, (1, 2)), mc, rtol=0.01)


def test_ehvi_with_vanishing_uncertainty_is_the_exact_improvement():
    rng = np.random.default_rng(3)
    F = rng.uniform(0, 1, (20, 3))
    C = rng.uniform(0, 1, (100, 3))
    ref = np.full(3, 1.0)
    exact = hvi_3d(C[:, 1:], C[:, 0], F, ref, 0, (1, 2))
    np.testing.assert_allclose(ehvi_3d(C[:, 1:], C[:, 0], np.full(100, 1e-12), F, ref, 0, (1, 2)), exact, atol=1e-9)


def test_empty_front_gives_the_candidate_box_and_level_areas_sum_to_it():
    ref = np.array([1.0, 2.0, 3.0])
    cost = np.array([[0.5, 1.0], [1.5, 2.5], [2.0, 0.0]])  # the last one lies at the reference cost
    value = np.array([0.25, 0.0, 0.0])
    np.testing.assert_allclose(hvi_3d(cost, value, np.empty((0, 3)), ref, 0, (1, 2)), [0.75 * 1.5 * 2.0, 1.0 * 0.5 * 0.5, 0.0])
    rng = np.random.default_rng(1)
    F = rng.uniform(0, 1, (12, 3)) * ref
    C = rng.uniform(0, 1, (50, 2)) * ref[1:]
    areas = level_areas(F[pareto_mask(F)], ref, 0, (1, 2)).areas(C)
    np.testing.assert_allclose(areas.sum(axis=1), np.prod(ref[1:] - C, axis=1))
