"""Tests for nas.pareto: every fast routine is checked against an obviously-correct brute force."""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pandas as pd
import pytest

import nas.pareto as pareto
from nas.pareto import (
    ParetoFront,
    constrained_pareto_mask,
    constraint_violation,
    crowding_distance,
    feasible_mask,
    hypervolume,
    hypervolume_contributions,
    knee_point,
    lexicographic_select,
    non_dominated_sort,
    pareto_mask,
    scalarised_select,
)

# ------------------------------------------------------------------------------------------------
# Brute-force references
# ------------------------------------------------------------------------------------------------


def brute_pareto_mask(F: np.ndarray) -> np.ndarray:
    """The definition, applied to every pair at once: j dominates i if <= everywhere and < somewhere."""
    valid = ~np.isnan(F).any(axis=1)
    V = F[valid]
    dominates = np.all(V[:, None, :] <= V[None, :, :], axis=2) & np.any(V[:, None, :] < V[None, :, :], axis=2)
    mask = np.zeros(len(F), dtype=bool)
    mask[valid] = ~dominates.any(axis=0)
    return mask


def brute_ranks(F: np.ndarray) -> np.ndarray:
    ranks = np.full(len(F), -1)
    remaining = np.arange(len(F))
    rank = 0
    while remaining.size:
        front = brute_pareto_mask(F[remaining])
        ranks[remaining[front]] = rank
        remaining = remaining[~front]
        rank += 1
    return ranks


def inclusion_exclusion_hv(F: np.ndarray, ref: np.ndarray) -> float:
    F = F[np.all(F < ref, axis=1)]
    total = 0.0
    for size in range(1, len(F) + 1):
        for subset in itertools.combinations(range(len(F)), size):
            corner = F[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * np.prod(ref - corner)
    return float(total)


def grid_cell_hv(F: np.ndarray, ref: np.ndarray, low: int) -> int:
    """Counts unit cells [c, c+1) with integer corner c in [low, ref) that some point weakly dominates."""
    m = len(ref)
    axes = [np.arange(low, int(ref[i])) for i in range(m)]
    cells = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, m)
    F = F[np.all(F < ref, axis=1)]
    if len(F) == 0:
        return 0
    covered = np.any(np.all(F[None, :, :] <= cells[:, None, :], axis=2), axis=1)
    return int(covered.sum())


def integer_points(rng: np.random.Generator, n: int, m: int, high: int) -> np.ndarray:
    """Integer-valued points (forces ties) with some exact duplicate rows mixed in."""
    F = rng.integers(0, high, size=(n, m)).astype(float)
    duplicates = F[rng.integers(0, n, size=max(1, n // 5))]
    return rng.permutation(np.vstack([F, duplicates]))


# ------------------------------------------------------------------------------------------------
# Dominance
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_pareto_mask_matches_brute_force_on_integer_points_with_ties_and_duplicates(
    m: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    F = integer_points(rng, n=60, m=m, high=6)
    np.testing.assert_array_equal(pareto_mask(F), brute_pareto_mask(F))


@pytest.mark.parametrize("m", [2, 3, 5])
def test_pareto_mask_matches_brute_force_on_continuous_points(m: int) -> None:
    F = np.random.default_rng(m).random((200, m))
    np.testing.assert_array_equal(pareto_mask(F), brute_pareto_mask(F))


@pytest.mark.parametrize("m", [2, 3])
def test_pareto_mask_treats_infinities_as_ordinary_values(m: int) -> None:
    rng = np.random.default_rng(7)
    F = rng.integers(0, 4, size=(40, m)).astype(float)
    F[rng.random(F.shape) < 0.15] = np.inf
    F[rng.random(F.shape) < 0.05] = -np.inf
    np.testing.assert_array_equal(pareto_mask(F), brute_pareto_mask(F))


@pytest.mark.parametrize("seed", range(3))
def test_3d_pareto_mask_sweep_is_exact_on_large_fronts_with_ties_and_duplicates(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = np.array([p for p in itertools.product(range(19), repeat=3) if 18 <= sum(p) <= 20], dtype=float)
    F = rng.permutation(np.vstack([grid, grid[rng.integers(0, len(grid), 100)]]))
    mask = pareto_mask(F)
    assert not pareto._filter_dominated(F, max_filters=64)[1]  # the pre-filter hands over to the sweep
    np.testing.assert_array_equal(mask, brute_pareto_mask(F))


def test_pareto_mask_keeps_lexicographic_minimum_even_when_its_other_objective_is_infinite() -> None:
    assert pareto_mask([[0.0, np.inf], [1.0, 5.0], [1.0, np.inf]]).tolist() == [True, True, False]


def test_pareto_mask_keeps_every_duplicate_of_a_front_point() -> None:
    F = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [2.0, 2.0]])
    assert pareto_mask(F).tolist() == [True, True, True, False, False]
    F3 = np.hstack([F, np.zeros((5, 1))])
    assert pareto_mask(F3).tolist() == [True, True, True, False, False]


def test_pareto_mask_never_puts_nan_rows_on_front_and_nan_rows_dominate_nothing() -> None:
    F = np.array([[np.nan, 0.0], [1.0, 1.0], [0.0, np.nan], [2.0, 0.5]])
    assert pareto_mask(F).tolist() == [False, True, False, True]
    assert pareto_mask(np.full((3, 3), np.nan)).tolist() == [False, False, False]


def test_pareto_mask_with_one_objective_keeps_all_minima() -> None:
    assert pareto_mask([[3.0], [1.0], [2.0], [1.0]]).tolist() == [False, True, False, True]


def test_pareto_mask_of_empty_input_is_empty() -> None:
    assert pareto_mask(np.empty((0, 3))).shape == (0,)
    assert pareto_mask([]).shape == (0,)


@pytest.mark.parametrize("m", [2, 3])
def test_fast_pareto_mask_agrees_with_general_filter_on_a_whole_search_space(m: int) -> None:
    F = np.round(np.random.default_rng(m).random((15_625, m)), 2)
    np.testing.assert_array_equal(pareto_mask(F), pareto._front_mask_nd(F))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_fast_pareto_mask_agrees_with_general_filter_when_most_points_are_on_the_front(m: int) -> None:
    F = np.round(np.random.default_rng(m).dirichlet(np.ones(m), size=3000), 3)
    np.testing.assert_array_equal(pareto_mask(F), pareto._front_mask_nd(F))
    np.testing.assert_array_equal(pareto_mask(F[:800]), brute_pareto_mask(F[:800]))


@pytest.mark.parametrize("m", [2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_non_dominated_sort_matches_repeated_brute_force_peeling(m: int, seed: int) -> None:
    F = integer_points(np.random.default_rng(100 + seed), n=50, m=m, high=5)
    np.testing.assert_array_equal(non_dominated_sort(F), brute_ranks(F))


@pytest.mark.parametrize("seed", range(3))
def test_two_objective_ranks_equal_peeling_the_dominance_matrix_with_ties_duplicates_and_infinities(seed: int) -> None:
    """`_ranks_2d` (the 2-objective path) against the n x n matrix's front peeling on the same points."""
    rng = np.random.default_rng(seed)
    for case in range(300):
        n = int(rng.integers(1, 400))
        if case % 3 == 0:
            V = rng.integers(0, 4, size=(n, 2)).astype(float)  # many duplicates and ties in one objective
        elif case % 3 == 1:
            x = rng.random(n)
            V = np.column_stack([x, 0.01 * rng.integers(0, 3, n) - x])  # long fronts
        else:
            V = rng.normal(size=(n, 2))
        V[rng.random(n) < 0.03, int(rng.integers(2))] = np.inf
        D = pareto._dominance_matrix(V)
        expected, remaining, rank = np.empty(n, dtype=int), np.ones(n, dtype=bool), 0
        while remaining.any():
            front = remaining & ~D[remaining].any(axis=0)
            expected[front], remaining, rank = rank, remaining & ~front, rank + 1
        np.testing.assert_array_equal(pareto._ranks_2d(V), expected)


def test_non_dominated_sort_puts_nan_rows_after_the_last_front() -> None:
    F = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [np.nan, 0.0]])
    assert non_dominated_sort(F).tolist() == [0, 0, 1, 2]


def test_non_dominated_sort_of_a_chain_gives_one_front_per_point() -> None:
    F = np.arange(5.0)[::-1, None].repeat(3, axis=1)
    assert non_dominated_sort(F).tolist() == [4, 3, 2, 1, 0]


def test_crowding_distance_gives_boundaries_inf_and_normalised_neighbour_gaps() -> None:
    F = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(F)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx(3 / 4 + 3 / 4)
    assert d[2] == pytest.approx(3 / 4 + 2 / 4)


def test_crowding_distance_skips_constant_objectives_and_small_fronts() -> None:
    F = np.array([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0]])
    d = crowding_distance(F)
    assert np.isinf(d[0]) and np.isinf(d[2]) and d[1] == pytest.approx(1.0)
    assert np.all(np.isinf(crowding_distance([[1.0, 2.0], [2.0, 1.0]])))
    with pytest.raises(ValueError, match="finite"):
        crowding_distance([[np.nan, 1.0], [1.0, 2.0], [2.0, 1.0]])


# ------------------------------------------------------------------------------------------------
# Hypervolume
# ------------------------------------------------------------------------------------------------


def test_hypervolume_of_a_hand_computed_2d_front() -> None:
    F = np.array([[0.1, 9.0], [0.2, 4.0], [0.3, 1.0]])
    assert hypervolume(F, [1.0, 10.0]) == pytest.approx(0.1 * 1 + 0.1 * 6 + 0.7 * 9)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_inclusion_exclusion_on_small_sets(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    F = rng.random((9, m))
    F[0] = F[1]  # a duplicate
    ref = np.full(m, 1.05)
    assert hypervolume(F, ref) == pytest.approx(inclusion_exclusion_hv(F, ref), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_equals_exact_grid_cell_count_on_integer_points(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    high = {1: 30, 2: 25, 3: 12, 4: 7, 5: 5}[m]
    F = integer_points(rng, n=30, m=m, high=high)
    ref = rng.integers(high - 1, high + 2, size=m).astype(float)
    assert hypervolume(F, ref) == grid_cell_hv(F, ref, low=0)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_2d_and_3d_fast_paths_agree_with_general_recursion(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    F = rng.random((60, m)) if seed % 2 else integer_points(rng, n=60, m=m, high=8) / 8
    ref = np.full(m, 1.1)
    P = F[np.all(F < ref, axis=1)]
    general = pareto._hv_recursive(P, ref, use_fast_paths=False)
    assert hypervolume(F, ref) == pytest.approx(general, rel=1e-12)


def test_3d_fast_path_handles_fronts_lying_on_a_plane() -> None:
    rng = np.random.default_rng(3)
    F = rng.dirichlet(np.ones(3), size=40)
    ref = np.full(3, 1.0)
    assert hypervolume(F, ref) == pytest.approx(pareto._hv_recursive(F, ref, use_fast_paths=False), rel=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_ignores_points_not_strictly_better_than_ref(m: int) -> None:
    rng = np.random.default_rng(m)
    inside = rng.random((10, m)) * 0.9
    ref = np.ones(m)
    outside = rng.random((10, m)) * 0.5
    outside[np.arange(10), rng.integers(0, m, size=10)] = rng.choice([1.0, 1.5, np.inf], size=10)
    F = np.vstack([inside, outside, np.full((1, m), np.nan)])
    assert hypervolume(F, ref) == pytest.approx(hypervolume(inside, ref), rel=1e-12)
    assert hypervolume(outside, ref) == 0.0


def test_hypervolume_of_empty_input_is_zero() -> None:
    assert hypervolume(np.empty((0, 3)), [1.0, 1.0, 1.0]) == 0.0
    assert hypervolume([], [1.0, 1.0]) == 0.0


def test_hypervolume_rejects_bad_inputs_with_named_errors() -> None:
    with pytest.raises(ValueError, match="ref has 3 values"):
        hypervolume(np.zeros((2, 2)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="F must be a 2-D array"):
        hypervolume(np.zeros(3), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="ref must be finite"):
        hypervolume(np.zeros((2, 2)), [1.0, np.inf])
    with pytest.raises(ValueError, match="ref must be a non-empty 1-D"):
        hypervolume(np.zeros((2, 2)), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="-inf"):
        hypervolume([[-np.inf, 0.0]], [1.0, 1.0])


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(3))
def test_contributions_equal_hypervolume_lost_by_removing_each_point(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    F = integer_points(rng, n=15, m=m, high=5) + rng.random() * 0.1
    F = np.vstack([F, np.full((1, m), 9.0), np.full((1, m), np.nan)])
    ref = np.full(m, 5.0)
    contributions = hypervolume_contributions(F, ref)
    total = hypervolume(F, ref)
    leave_one_out = [total - hypervolume(np.delete(F, i, axis=0), ref) for i in range(len(F))]
    np.testing.assert_allclose(contributions, leave_one_out, atol=1e-9)


def test_contributions_are_zero_for_dominated_duplicated_and_outside_points() -> None:
    F = np.array([[0.0, 2.0], [2.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.5], [0.5, 3.0]])
    c = hypervolume_contributions(F, [3.0, 3.0])
    assert c.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------
# Constraints
# ------------------------------------------------------------------------------------------------


def test_feasibility_and_violation_follow_optunas_nonpositive_is_satisfied_convention() -> None:
    G = np.array([[0.0, -1.0], [0.5, -1.0], [2.0, 3.0], [np.nan, -1.0], [-np.inf, -2.0]])
    assert feasible_mask(G).tolist() == [True, False, False, False, True]
    assert constraint_violation(G).tolist() == [0.0, 0.5, 5.0, np.inf, 0.0]
    assert feasible_mask(np.empty((3, 0))).tolist() == [True, True, True]


def test_constrained_pareto_mask_is_the_front_of_feasible_points_only() -> None:
    F = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    G = np.array([[1.0], [0.0], [-1.0], [-5.0]])
    assert constrained_pareto_mask(F, G).tolist() == [False, True, True, False]
    assert constrained_pareto_mask(F, np.ones((4, 1))).tolist() == [False] * 4
    with pytest.raises(ValueError, match="G has 3 rows but F has 4"):
        constrained_pareto_mask(F, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="G must be a 2-D array"):
        feasible_mask(np.zeros(3))


# ------------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------------


def test_knee_point_is_furthest_below_the_line_through_the_extremes() -> None:
    F = np.array([[0.0, 1.0], [0.1, 0.3], [0.5, 0.2], [1.0, 0.0]])
    assert knee_point(F) == 1


def test_knee_point_does_not_depend_on_objective_units_or_dominated_rows() -> None:
    F = np.array([[0.0, 1.0], [0.1, 0.3], [0.5, 0.2], [1.0, 0.0]]) * [1.0, 1000.0]
    assert knee_point(F) == 1
    with_noise = np.vstack([F, [[2.0, 2000.0], [np.nan, 0.0]]])  # a dominated row widens no range
    assert knee_point(with_noise) == 1


def test_knee_point_in_three_objectives_uses_the_plane_through_the_extremes() -> None:
    F = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.3, 0.3, 0.3], [0.6, 0.6, 0.5]])
    assert knee_point(F) == 3


def test_knee_point_does_not_depend_on_row_order_when_extremes_tie() -> None:
    F = np.array([[0.0, 2.0, 4.0], [0.0, 4.0, 3.0], [1.0, 4.0, 1.0], [2.0, 1.0, 3.0], [4.0, 1.0, 0.0]])
    assert pareto_mask(F).all()
    permuted = (F[list(p)] for p in itertools.permutations(range(len(F))))
    knees = {tuple(G[knee_point(G)]) for G in permuted}
    assert knees == {tuple(F[knee_point(F)])}


def test_knee_point_of_a_single_point_is_that_point() -> None:
    assert knee_point([[np.nan, 1.0], [2.0, 3.0]]) == 1


def test_lexicographic_select_breaks_exact_ties_on_the_next_objective() -> None:
    F = np.array([[1.0, 5.0, 0.0], [1.0, 3.0, 9.0], [2.0, 0.0, 0.0], [1.0, 3.0, 1.0]])
    assert lexicographic_select(F, order=[0]) == 0
    assert lexicographic_select(F, order=[0, 1]) == 1
    assert lexicographic_select(F, order=[0, 1, 2]) == 3
    assert lexicographic_select(F, order=[1]) == 2


def test_lexicographic_select_passes_points_within_relative_tolerance_on() -> None:
    F = np.array([[-0.95, 10.0], [-0.945, 4.0], [-0.90, 1.0]])  # negated accuracy, latency
    assert lexicographic_select(F, order=[0, 1]) == 0
    assert lexicographic_select(F, order=[0, 1], tolerances=[0.01, 0.0]) == 1
    assert lexicographic_select(F, order=[0, 1], tolerances=[0.1, 0.0]) == 2


def test_lexicographic_select_rejects_bad_order_and_tolerances() -> None:
    F = np.zeros((3, 2))
    with pytest.raises(ValueError, match="order must hold objective indices"):
        lexicographic_select(F, order=[2])
    with pytest.raises(ValueError, match="order must name"):
        lexicographic_select(F, order=[])
    with pytest.raises(ValueError, match="tolerances must have one value per entry"):
        lexicographic_select(F, order=[0, 1], tolerances=[0.1])
    with pytest.raises(ValueError, match="non-negative"):
        lexicographic_select(F, order=[0], tolerances=[-0.1])


def test_scalarised_select_kinds_differ_on_a_hand_made_front() -> None:
    F = np.array([[0.0, 1.0], [1.0, 0.0], [0.45, 0.45]])
    assert scalarised_select(F, [1.0, 1.0], kind="weighted_sum") == 2
    assert scalarised_select(F, [1.0, 1.0], kind="tchebycheff") == 2
    assert scalarised_select(F, [1.0, 1.0], kind="product") == 0  # log(2) < 2 * log(1.45)
    assert scalarised_select(F, [1.0, 0.0]) == 0
    assert scalarised_select(F, [0.0, 1.0], kind="tchebycheff") == 1


def test_tchebycheff_select_breaks_ties_towards_the_non_dominated_point() -> None:
    F = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.4, 0.5]])
    assert scalarised_select(F, [1.0, 1.0], kind="tchebycheff") == 3


def test_scalarised_select_normalises_units_before_weighting() -> None:
    F = np.array([[0.0, 1000.0], [1.0, 0.0], [0.4, 400.0]])
    assert scalarised_select(F, [1.0, 1.0]) == 2
    assert scalarised_select(F * [1.0, 1e-3], [1.0, 1.0]) == 2


def test_scalarised_select_rejects_bad_weights_and_kinds() -> None:
    F = np.zeros((2, 2))
    with pytest.raises(ValueError, match="weights must have one value per objective"):
        scalarised_select(F, [1.0])
    with pytest.raises(ValueError, match="not all zero"):
        scalarised_select(F, [0.0, 0.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        scalarised_select(F, [1.0, 1.0], kind="sum")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# ParetoFront
# ------------------------------------------------------------------------------------------------


def small_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arch": ["a", "b", "c", "d", "e"],
            "accuracy": [0.90, 0.95, 0.80, 0.96, 0.85],
            "latency_ms": [3.0, 8.0, 1.0, 2.0, 5.0],
        },
        index=[10, 11, 12, 13, 14],
    )


def test_pareto_front_frame_returns_front_rows_sorted_by_first_objective_with_fresh_index() -> None:
    table = small_table()
    points = np.column_stack([-table["accuracy"], table["latency_ms"]])
    front = ParetoFront(points, table=table)
    assert front.indices.tolist() == [2, 3]
    assert len(front) == 2
    frame = front.frame()
    assert frame["arch"].tolist() == ["d", "c"]
    assert frame.index.tolist() == [0, 1]
    assert list(frame.columns) == list(table.columns)


def test_pareto_front_respects_feasibility_and_ranks_infeasible_points_after_feasible_ones() -> None:
    table = small_table()
    points = np.column_stack([-table["accuracy"], table["latency_ms"]])
    feasible = np.array([True, True, True, False, True])
    front = ParetoFront(points, table=table, feasible=feasible)
    assert front.mask.tolist() == [True, True, True, False, False]
    assert front.frame()["arch"].tolist() == ["b", "a", "c"]
    assert front.ranks.tolist() == [0, 0, 0, 2, 1]
    np.testing.assert_array_equal(front.points, points[[0, 1, 2]])
    assert front.hypervolume([0.0, 10.0]) == pytest.approx(hypervolume(points[[0, 1, 2]], [0.0, 10.0]))


def test_pareto_front_without_table_frames_objective_columns() -> None:
    front = ParetoFront([[2.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    frame = front.frame()
    assert list(frame.columns) == ["f0", "f1"]
    assert frame.to_numpy().tolist() == [[0.0, 2.0], [2.0, 0.0]]


def test_pareto_front_with_nothing_feasible_is_empty() -> None:
    front = ParetoFront([[1.0, 2.0], [2.0, 1.0]], table=pd.DataFrame({"x": [1, 2]}), feasible=[False, False])
    assert len(front) == 0
    assert front.frame().empty
    assert front.hypervolume([5.0, 5.0]) == 0.0
    assert front.ranks.tolist() == [0, 0]


def test_pareto_front_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="table has 2 rows but points has 3"):
        ParetoFront(np.zeros((3, 2)), table=pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(ValueError, match="feasible must be a boolean mask of length 3"):
        ParetoFront(np.zeros((3, 2)), feasible=[0, 1, 2])
    with pytest.raises(ValueError, match="points must be a 2-D array"):
        ParetoFront(np.zeros(3))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(pareto, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_hypervolume_trace_ignores_unusable_and_dominated_points():
    from nas.pareto import hypervolume_trace

    points = np.array([[-50.0, 2.0], [-99.0, 0.5], [-40.0, 3.0], [-60.0, 2.5], [np.nan, 1.0]])
    usable = np.array([True, False, True, True, True])
    assert hypervolume_trace(points, [0.0, 4.0], usable).tolist() == [100.0, 100.0, 100.0, 115.0, 115.0]
