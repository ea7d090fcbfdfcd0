from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from nas.cost.counts import layer_macs
from nas.cost.fit import (
    ArchPool,
    FitError,
    Method,
    ReferenceTables,
    TransferModel,
    fit_lut,
    fit_with_model,
    latency_floor,
    nearest_device,
)
from nas.spaces import get_space

NB201 = get_space("nb201")
POOL = ArchPool(NB201, NB201.enumerate()[::41])  # 382 archs, every op on every edge
TERMS = POOL.terms(["term:live_paths", "term:disconnected", "term:choices:none", "term:choices:skip_connect"])


def device(launch_ms: float, per_mmac_ms: float, none_ms: float = 0.0, skip_ms: float = 0.0) -> np.ndarray:
    """A synthetic device: per-layer launch cost + compute cost, + hidden costs of none/skip edges."""
    per_sig = np.array([launch_ms + per_mmac_ms * layer_macs(s) / 1e6 for s in POOL.signatures])
    return 0.5 + POOL.counts @ per_sig + none_ms * TERMS[:, 2] + skip_ms * TERMS[:, 3]


def split(k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rows = np.sort(np.random.default_rng(seed).choice(len(POOL), k, replace=False))
    held = np.ones(len(POOL), dtype=bool)
    held[rows] = False
    return rows, held


def fit(truth: np.ndarray, k: int, method: Method, seed: int = 0, reference: ReferenceTables | None = None):
    rows, held = split(k, seed)
    archs = [POOL.archs[i] for i in rows]
    pool = None if reference else POOL
    fitted = fit_with_model(NB201, archs, truth[rows], device="toy", method=method, seed=seed, reference=reference, pool=pool)
    return fitted, POOL.predict(fitted.lut), held


def test_per_op_lut_recovers_an_additive_device_from_few_networks():
    truth = device(0.02, 0.05)
    _, predicted, held = fit(truth, 12, "nnls")
    assert np.allclose(predicted[held], truth[held], rtol=1e-6)


def test_pool_predict_equals_lut_predict():
    fitted, predicted, _ = fit(device(0.02, 0.05, none_ms=0.3), 20, "nnls+terms")
    assert np.allclose(predicted, fitted.lut.predict(NB201, POOL.archs))


def test_topology_terms_price_what_no_operator_shows():
    truth = device(0.02, 0.05, none_ms=0.4, skip_ms=-0.1)
    errors = {}
    for method in ("nnls", "nnls+terms"):
        _, predicted, held = fit(truth, 40, method)
        errors[method] = float(np.mean(np.abs(predicted[held] - truth[held]) / truth[held]))
    assert errors["nnls+terms"] < 0.002 < 0.02 < errors["nnls"]


def test_no_network_is_predicted_below_the_floor():
    # A runtime that prunes disconnected cells: those networks take almost nothing.
    truth = np.where(TERMS[:, 1] == 1, 0.01, device(0.02, 0.05))
    rows, _ = split(30)
    for method in ("nnls", "nnls+terms"):
        _, predicted, _ = fit(truth, 30, method)
        assert predicted.min() >= latency_floor(truth[rows]) * (1 - 1e-6)


def _references() -> ReferenceTables:
    tables = np.column_stack([device(0.05, 0.01), device(0.001, 0.2), device(0.02, 0.05, none_ms=0.5), device(0.03, 0.02, skip_ms=0.2)])
    return ReferenceTables(POOL, tables, ("launch_bound", "compute_bound", "zero_edges", "skip_edges"))


def test_transfer_recovers_a_device_that_mixes_known_ones_and_distils_to_a_lut():
    reference = _references()
    truth = 0.6 * reference.latencies_ms[:, 1] + 0.3 * reference.latencies_ms[:, 2] + 0.2
    fitted, predicted, held = fit(truth, 10, "transfer", reference=reference)
    assert isinstance(fitted.model, TransferModel)
    teacher = fitted.model.predict()
    assert spearmanr(teacher[held], truth[held])[0] > 0.995
    assert spearmanr(predicted[held], truth[held])[0] > 0.99
    record = fitted.lut.meta["fit"]["nb201"]
    assert record["method"] == "transfer" and record["k"] == 10 and record["reference_devices"] == list(reference.devices)
    assert record["distillation"]["spearman"] > 0.99 and record["distillation"]["n"] == len(POOL)


def test_nearest_device_is_the_one_that_ranks_the_measured_networks_best():
    reference = _references()
    rows, _ = split(10)
    name, rho = nearest_device(reference, rows, 3 * reference.latencies_ms[rows, 1] + 1)
    assert name == "compute_bound" and rho == pytest.approx(1.0)


def test_same_seed_gives_the_same_lut():
    truth = device(0.02, 0.05, none_ms=0.3)
    rows, _ = split(40)
    archs = [POOL.archs[i] for i in rows]
    first = fit_lut(NB201, archs, truth[rows], device="toy", method="nnls+terms", seed=3, pool=POOL)
    again = fit_lut(NB201, archs, truth[rows], device="toy", method="nnls+terms", seed=3, pool=POOL)
    assert first.table.equals(again.table) and first.meta == again.meta


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latencies_ms": [1.0, -2.0, 3.0]}, "must be finite and positive"),
        ({"latencies_ms": [1.0, 2.0]}, "got 2 latencies for 3 archs"),
        ({"method": "magic"}, "unknown fit method 'magic'"),
        ({"method": "transfer"}, "needs reference tables"),
        ({"reference": "self"}, "include the device being fitted"),
    ],
)
def test_bad_fit_inputs_raise_one_line_fit_errors(kwargs, message):
    archs = POOL.archs[:3]
    args = {"latencies_ms": [1.0, 2.0, 3.0], "device": "toy", "method": "nnls", "pool": POOL} | kwargs
    if args.get("reference") == "self":
        args |= {"reference": _references(), "device": "compute_bound", "method": "transfer", "pool": None}
    with pytest.raises(FitError) as info:
        fit_lut(NB201, archs, **args)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_archs_outside_the_reference_pool_are_refused():
    outside = next(a for a in NB201.enumerate()[:60] if a not in set(POOL.archs))
    with pytest.raises(FitError, match="is not in the pool"):
        fit_lut(NB201, [POOL.archs[0], outside], [1.0, 2.0], device="toy", method="transfer", reference=_references())


def test_few_shot_transfer_on_the_measured_table_beats_operator_counts(shared_data):
    """HELP's setting on a 2,000-network slice of the real table: raspi4 from 10 measurements."""
    from nas.cost.measurements import read_measurements

    table = read_measurements(shared_data / "nb201" / "latency_ms.csv.gz", NB201)
    keep = np.random.default_rng(0).choice(len(table.archs), 2000, replace=False)
    pool = ArchPool(NB201, [table.archs[i] for i in keep])
    others = [d for d in table.devices if d != "raspi4"]
    reference = ReferenceTables(pool, np.column_stack([table.column(d)[keep] for d in others]), tuple(others))
    truth = table.column("raspi4")[keep]
    rows = np.sort(np.random.default_rng(1).choice(len(pool), 10, replace=False))
    held = np.ones(len(pool), dtype=bool)
    held[rows] = False
    archs = [pool.archs[i] for i in rows]
    fitted = fit_with_model(NB201, archs, truth[rows], device="raspi4", method="transfer", reference=reference)
    per_op = fit_lut(NB201, archs, truth[rows], device="raspi4", method="nnls", pool=pool)
    rho = {name: spearmanr(p[held], truth[held])[0] for name, p in
           {"transfer": fitted.model.predict(), "distilled": pool.predict(fitted.lut), "per_op": pool.predict(per_op)}.items()}
    assert rho["transfer"] > rho["per_op"] + 0.02 and rho["distilled"] > rho["per_op"] + 0.02, rho


def test_cv_folds_are_leave_one_out_up_to_20_then_ten_seeded_folds():
    from nas.cost.fit import cv_folds

    assert cv_folds(20, None, 0).tolist() == list(range(20))
    folds = cv_folds(45, None, 1)
    assert sorted(np.bincount(folds).tolist()) == [4] * 5 + [5] * 5 and folds.tolist() == cv_folds(45, None, 1).tolist()
    assert cv_folds(45, None, 2).tolist() != folds.tolist()
    for k, n, message in [(2, None, "at least 3 measured networks"), (6, 7, "between 2 and the 6"), (6, 1, "between 2 and the 6")]:
        with pytest.raises(FitError, match=message):
            cv_folds(k, n, 0)


@pytest.mark.parametrize("method", ["nnls+terms", "transfer"])
def test_cross_validation_predicts_each_row_by_a_fit_that_never_saw_it(method):
    from nas.cost.fit import cross_validate

    reference = _references() if method == "transfer" else None
    truth = device(0.02, 0.05, none_ms=0.3)
    rows, _ = split(8, seed=4)
    archs = [POOL.archs[i] for i in rows]
    pool = None if reference else POOL
    cv = cross_validate(NB201, archs, truth[rows], device="toy", method=method, reference=reference, pool=pool)
    assert cv.scheme == "leave-one-out" and cv.n_folds == 8
    # Refit without row 3 by hand: its out-of-fold prediction is that fit's.
    keep = [i for i in range(8) if i != 3]
    alone = fit_with_model(NB201, [archs[i] for i in keep], truth[rows][keep], device="toy", method=method, reference=reference, pool=pool)
    assert cv.predicted[3] == pytest.approx(POOL.predict(alone.lut)[rows[3]])
    if method == "transfer":
        assert cv.model_predicted is not None and cv.model_predicted[3] == pytest.approx(alone.model.predict()[rows[3]])
        assert set(cv.figures(model=True)) >= {"spearman", "mape", "within_10pct"}
    # A fit on all 8 would price row 3 differently (it saw it), so the estimate is not the in-sample one.
    full = POOL.predict(fit_with_model(NB201, archs, truth[rows], device="toy", method=method, reference=reference, pool=pool).lut)
    assert not np.allclose(full[rows], cv.predicted)


def test_device_mixture_follows_a_near_twin_and_reports_calibrated_spread():
    """A target that is a known device rescaled plus 2 % noise: the mixture member ranks it like the twin,
    and the predictive std covers the held-out truth about as often as a Gaussian should."""
    reference = _references()
    noise = np.random.default_rng(7).normal(0.0, 0.02, len(POOL))
    truth = 1.7 * reference.latencies_ms[:, 2] * (1 + noise)
    rows, held = split(10, seed=2)
    model = TransferModel(reference, weights={"mixture/smoothed": 1.0}).fit(rows, truth[rows])
    assert list(model.member_predictions_) == ["mixture/smoothed"]
    mean, std = model.predict_distribution()
    assert spearmanr(mean[held], truth[held])[0] > 0.98
    z = np.abs(mean[held] - truth[held]) / std[held]
    assert 0.85 < float(np.mean(z < 2)) < 0.99 and float(np.median(std[held] / truth[held])) < 0.05
    sub_mean, sub_std = model.predict_distribution(rows[:3])
    assert np.array_equal(sub_mean, mean[rows[:3]]) and np.array_equal(sub_std, std[rows[:3]])


def test_transfer_weights_pick_members_and_bad_weights_are_one_line_errors():
    from nas.cost.fit import DEFAULT_MEMBERS, PREVIOUS_MEMBERS

    reference = _references()
    rows, _ = split(10)
    truth = 0.6 * reference.latencies_ms[:, 1] + 0.3 * reference.latencies_ms[:, 2]
    previous = TransferModel(reference, weights=PREVIOUS_MEMBERS).fit(rows, truth[rows])
    assert set(previous.member_predictions_) == set(PREVIOUS_MEMBERS) and not previous.member_variances_
    assert np.allclose(previous.predict(), np.maximum(np.mean(list(previous.member_predictions_.values()), axis=0), previous.floor_))
    current = TransferModel(reference).fit(rows, truth[rows])
    assert set(current.member_predictions_) == set(DEFAULT_MEMBERS) and set(current.member_variances_) == {"mixture/raw", "mixture/smoothed"}
    for weights in ({"magic": 1.0}, {"mixture/raw": -1.0}, {"mixture/raw": 0.0}, {}):
        with pytest.raises(FitError, match="transfer weights must be non-negative") as info:
            TransferModel(reference, weights=weights)
        assert "\n" not in str(info.value)
