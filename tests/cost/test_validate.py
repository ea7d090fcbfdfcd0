from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nas.cost.lut import INTERCEPT, LUT, LUTError
from nas.cost.validate import (
    accuracy_figures,
    calibrate_lut,
    calibration_group,
    fit_calibration,
    random_archs,
    refit_calibration,
    revalidate_recorded,
    validate_lut,
    validation_path,
)


def test_accuracy_figures_match_hand_computed_values():
    predicted = np.array([1.0, 2.2, 2.7, 5.0])
    measured = np.array([1.0, 2.0, 3.0, 4.0])
    figs = accuracy_figures(predicted, measured)
    assert figs["mape_pct"] == pytest.approx((0 + 10 + 10 + 25) / 4)
    assert figs["within_10pct"] == pytest.approx(75.0)  # 10 % exactly counts as within
    assert figs["spearman"] == pytest.approx(1.0) and figs["kendall_tau"] == pytest.approx(1.0)
    assert figs["bias"] == pytest.approx(np.median([1.0, 1.1, 0.9, 1.25]))
    assert figs["worst_ape_pct"] == pytest.approx(25.0)


def test_figure_keys_name_exactly_what_accuracy_figures_returns():
    from nas.cost.validate import FIGURE_KEYS

    assert tuple(accuracy_figures(np.array([1.0, 2.0]), np.array([1.1, 2.0]))) == FIGURE_KEYS


def test_accuracy_figures_refuse_mismatched_inputs():
    with pytest.raises(ValueError, match=r"need two equal 1-D arrays of at least 2 latencies, got shapes \(3,\) and \(2,\)"):
        accuracy_figures(np.ones(3), np.ones(2))


def test_random_archs_are_distinct_reproducible_and_avoid_excluded_ones(tiny_space):
    first = random_archs(tiny_space, 20, seed=3)
    assert len({tiny_space.to_string(a) for a in first}) == 20
    assert first == random_archs(tiny_space, 20, seed=3)
    banned = [tiny_space.to_string(a) for a in first[:10]]
    again = random_archs(tiny_space, 20, seed=3, exclude=banned)
    assert not {tiny_space.to_string(a) for a in again} & set(banned)
    with pytest.raises(ValueError, match="has 729 archs .10 used for calibration.; cannot draw 720 distinct ones"):
        random_archs(tiny_space, 720, seed=0, exclude=banned)


def test_validation_stores_figures_in_the_sidecar_and_a_per_arch_table_beside_it(tmp_path, tiny_space, tiny_torch_lut, fast_timing):
    path = tmp_path / "test__torch.csv"
    LUT(tiny_torch_lut.table.copy(), dict(tiny_torch_lut.meta)).save(path)
    lut = LUT.load(path)
    result = validate_lut(lut, tiny_space, "torch", n_archs=4, seed=1, processes=1, timing=fast_timing)
    stored = json.loads(path.with_suffix(".json").read_text())["validation"]["tiny201"]
    assert stored["n_archs"] == 4 and stored["processes"] == 1 and stored["backend"] == "torch"
    for key in ("mape_pct", "within_10pct", "spearman", "kendall_tau", "bias"):
        assert stored[key] == pytest.approx(result.figures[key])
    assert LUT.load(path).validation("tiny201")["mape_pct"] == pytest.approx(result.figures["mape_pct"])
    table = pd.read_csv(validation_path(path))
    assert validation_path(path).name == "test__torch.validation.csv"
    assert len(table) == 4 and (table["measured_ms"] > 0).all()
    archs = [tiny_space.from_string(s) for s in table["arch"]]
    np.testing.assert_allclose(table["predicted_ms"], lut.predict(tiny_space, archs, dataset="cifar10"))
    np.testing.assert_allclose(table["ratio"], table["predicted_ms"] / table["measured_ms"])


def test_validating_one_space_keeps_the_per_arch_rows_of_another_space_in_the_file(tmp_path, tiny_space, tiny_torch_lut, fast_timing):
    path = tmp_path / "two__torch.csv"
    LUT(tiny_torch_lut.table.copy(), dict(tiny_torch_lut.meta)).save(path)
    # A file from before the `space` column, holding another space's rows (arch strings tiny201 cannot parse).
    pd.DataFrame({"arch": ["3 5|4 6|2|16", "7 7|3 3|4|12"], "measured_ms": [0.5, 0.6]}).to_csv(validation_path(path), index=False)
    table = LUT.load(path).table
    LUT(pd.concat([table, table.assign(space="other")], ignore_index=True), dict(tiny_torch_lut.meta)).save(path)
    validate_lut(LUT.load(path), tiny_space, "torch", n_archs=3, seed=1, processes=1, timing=fast_timing)
    validate_lut(LUT.load(path), tiny_space, "torch", n_archs=4, seed=2, processes=1, timing=fast_timing)
    rows = pd.read_csv(validation_path(path))
    assert rows.groupby("space").size().to_dict() == {"other": 2, "tiny201": 4}


def test_validation_refuses_another_backend_or_thread_count(tiny_space, tiny_torch_lut):
    with pytest.raises(LUTError, match="was measured with backend 'torch'; validate it with --backend torch, not 'onnxruntime'"):
        validate_lut(tiny_torch_lut, tiny_space, "onnxruntime", n_archs=2, save=False)
    with pytest.raises(LUTError, match="was measured with 1 thread.s.; validate it with --threads 1, not 2"):
        validate_lut(tiny_torch_lut, tiny_space, "torch", n_archs=2, threads=2, save=False)


#: Fixed per-type costs (ms): factor recovery must not hinge on what this run measured (a tiny add
#: measured near 0 leaves its factor to the ridge prior).
SYNTHETIC_COSTS = {"conv": 0.05, "bn": 0.01, "relu": 0.005, "add": 0.02, "avgpool": 0.01, "global_avgpool": 0.01, "linear": 0.005}


@pytest.fixture
def synthetic_lut(tiny_torch_lut):
    """`tiny_torch_lut`'s rows and sidecar with `SYNTHETIC_COSTS` in place of the measured costs."""
    table = tiny_torch_lut.table.copy()
    costs = table["key"].map(lambda k: 0.1 if k == INTERCEPT else SYNTHETIC_COSTS[k.split(":")[0]])
    for column in ("latency_ms", "min_ms", "max_ms"):
        table[column] = costs
    table["std_ms"] = 0.0
    return LUT(table, dict(tiny_torch_lut.meta))


def _op_sums(space, lut, archs):
    costs = lut.costs(space.name)
    out = []
    for arch in archs:
        sums: dict[str, float] = {}
        for sig in space.layers(arch, dataset="cifar10"):
            group = calibration_group(sig.key())
            sums[group] = sums.get(group, 0.0) + costs[sig.key()]
        out.append(sums)
    return out


def test_calibration_groups_are_operator_types_with_convs_split_by_kernel():
    assert calibration_group("conv:in=1x16x32x32:out=16:k=1:s=1:g=1:b=32:bias=0") == "conv1x1"
    assert calibration_group("conv:in=1x16x32x32:out=32:k=3:s=2:g=1:b=32:bias=0") == "conv3x3"
    assert calibration_group("avgpool:in=1x16x32x32:out=16:k=3:s=1:g=1:b=32:bias=0") == "avgpool"
    assert calibration_group(INTERCEPT) == INTERCEPT


def test_scale_calibration_recovers_known_factors_per_operator_type(tiny_space, synthetic_lut):
    archs = random_archs(tiny_space, 30, seed=5)
    sums = _op_sums(tiny_space, synthetic_lut, archs)
    intercept = synthetic_lut.costs("tiny201")[INTERCEPT]
    # A backend that runs adds 2x slower than alone, convs 1.5x, and adds 0.2 ms per network.
    factors = {"add": 2.0, "conv3x3": 1.5}
    truth = np.array([intercept + 0.2 + sum(factors.get(op, 1.0) * v for op, v in s.items()) for s in sums])
    calibrated = fit_calibration(synthetic_lut, tiny_space, archs, truth, model="scale", dataset="cifar10")
    cal = calibrated.meta["calibration"]["tiny201"]
    assert cal["scales"]["add"] == pytest.approx(2.0, rel=1e-3)
    # Each conv edge brings a ReLU, a conv and a BN, and the reduction blocks' fixed ones: part of the
    # intercept can trade against those three factors without changing any prediction.
    assert cal["intercept_ms"] == pytest.approx(0.2, rel=0.05)
    assert "global_avgpool" not in cal["scales"]  # the same in every network: part of the intercept
    np.testing.assert_allclose(calibrated.predict(tiny_space, archs, dataset="cifar10"), truth, rtol=1e-3)
    assert cal["after_in_sample"]["mape_pct"] < 0.1 < cal["before"]["mape_pct"]
    assert "calibration" not in synthetic_lut.meta  # the input LUT is left as it was
    # what was measured stays beside the calibrated costs, with the networks the factors came from
    np.testing.assert_array_equal(calibrated.table["measured_ms"], synthetic_lut.table["latency_ms"])
    np.testing.assert_allclose(cal["measured_ms"], truth)


def test_offset_calibration_adds_a_per_layer_cost_to_every_operator_row(tiny_space, tiny_torch_lut):
    archs = random_archs(tiny_space, 12, seed=6)
    n_layers = np.array([len(tiny_space.layers(a, dataset="cifar10")) for a in archs])
    truth = tiny_torch_lut.predict(tiny_space, archs, dataset="cifar10") + 0.05 + 0.002 * n_layers
    calibrated = fit_calibration(tiny_torch_lut, tiny_space, archs, truth, model="offset", dataset="cifar10")
    cal = calibrated.meta["calibration"]["tiny201"]
    assert (cal["intercept_ms"], cal["per_layer_ms"]) == pytest.approx((0.05, 0.002), rel=1e-6)
    old, new = tiny_torch_lut.costs("tiny201"), calibrated.costs("tiny201")
    assert all(new[k] == pytest.approx(v + (0.05 if k == INTERCEPT else 0.002)) for k, v in old.items())
    with pytest.raises(ValueError, match=r"unknown calibration model 'cubic'; expected one of \['scale', 'offset'\]"):
        fit_calibration(tiny_torch_lut, tiny_space, archs, truth, model="cubic", dataset="cifar10")


def test_calibration_measures_its_own_archs_and_validation_never_draws_them(tiny_space, tiny_torch_lut, fast_timing):
    calibrated = calibrate_lut(tiny_torch_lut, tiny_space, "torch", n_archs=4, seed=0, processes=1, timing=fast_timing, dataset="cifar10")
    cal = calibrated.meta["calibration"]["tiny201"]
    assert cal["n_archs"] == 4 and len(set(cal["archs"])) == 4 and cal["seed"] == 1
    assert cal["before"]["n_archs"] == 4 and np.isfinite(cal["after_in_sample"]["mape_pct"])
    drawn = random_archs(tiny_space, 50, seed=0, exclude=cal["archs"])
    assert not {tiny_space.to_string(a) for a in drawn} & set(cal["archs"])


def test_networks_measured_once_validate_a_lut_unless_it_was_fitted_on_them(tiny_space, tiny_torch_lut):
    from nas.cost.validate import record_validation

    archs = random_archs(tiny_space, 4, seed=2)
    truth = tiny_torch_lut.predict(tiny_space, archs, dataset="cifar10")
    per_process = np.vstack([truth * 1.2, truth, truth * 1.5])  # one quiet process: the minimum is the truth
    lut = LUT(tiny_torch_lut.table.copy(), dict(tiny_torch_lut.meta))
    result = record_validation(lut, tiny_space, archs, per_process, {"timing": {"across": "min"}, "seed": 2}, save=False, dataset="cifar10")
    assert result.figures["within_10pct"] == 100.0 and result.figures["bias"] == pytest.approx(1.0) and result.figures["seed"] == 2
    median = record_validation(lut, tiny_space, archs, per_process, {"timing": {"across": "median"}}, save=False, dataset="cifar10")
    assert median.figures["bias"] == pytest.approx(1 / 1.2)
    lut.meta["calibration"] = {"tiny201": {"archs": [tiny_space.to_string(archs[1])]}}
    with pytest.raises(LUTError, match="was fitted on 1 of these networks"):
        record_validation(lut, tiny_space, archs, per_process, {}, save=False, dataset="cifar10")


def _scaled_truth(space, lut, archs, factors):
    intercept = lut.costs(space.name)[INTERCEPT]
    return np.array([intercept + 0.2 + sum(factors.get(op, 1.0) * v for op, v in s.items()) for s in _op_sums(space, lut, archs)])


def test_refitting_to_the_recorded_networks_under_the_same_listing_gives_back_the_same_costs(tiny_space, synthetic_lut):
    archs = random_archs(tiny_space, 30, seed=5)
    calibrated = fit_calibration(synthetic_lut, tiny_space, archs, _scaled_truth(tiny_space, synthetic_lut, archs, {"add": 2.0}), model="scale", dataset="cifar10")
    refitted = refit_calibration(calibrated, tiny_space, dataset="cifar10")
    old, new = calibrated.costs("tiny201"), refitted.costs("tiny201")
    assert old.keys() == new.keys() and all(new[k] == pytest.approx(v, rel=1e-6, abs=1e-9) for k, v in old.items())
    for column in ("min_ms", "max_ms", "std_ms", "measured_ms"):
        np.testing.assert_allclose(refitted.table[column], calibrated.table[column], rtol=1e-6, atol=1e-9)
    cal = refitted.meta["calibration"]["tiny201"]
    assert cal["archs"] == calibrated.meta["calibration"]["tiny201"]["archs"] and "refit" in cal
    entry = refitted.meta["history"][-1]
    assert entry["calibration"]["scales"] == calibrated.meta["calibration"]["tiny201"]["scales"] and entry["latency_ms"] == old
    assert "history" not in calibrated.meta  # the input LUT is left as it was


def test_refitting_follows_the_recorded_measurements_not_the_old_factors(tiny_space, synthetic_lut):
    archs = random_archs(tiny_space, 30, seed=5)
    calibrated = fit_calibration(synthetic_lut, tiny_space, archs, _scaled_truth(tiny_space, synthetic_lut, archs, {"add": 2.0}), model="scale", dataset="cifar10")
    # the same networks, had they been priced another way: adds 3x, as a changed listing can imply
    calibrated.meta["calibration"]["tiny201"]["measured_ms"] = _scaled_truth(tiny_space, synthetic_lut, archs, {"add": 3.0}).tolist()
    refitted = refit_calibration(calibrated, tiny_space, dataset="cifar10")
    assert refitted.meta["calibration"]["tiny201"]["scales"]["add"] == pytest.approx(3.0, rel=1e-3)


def test_refitting_refuses_a_lut_without_a_build_calibration_or_with_rows_edited_after_it(tiny_space, tiny_torch_lut):
    with pytest.raises(LUTError, match="records no `nas lut build --calibrate` calibration for tiny201"):
        refit_calibration(tiny_torch_lut, tiny_space, dataset="cifar10")
    archs = random_archs(tiny_space, 12, seed=6)
    calibrated = fit_calibration(tiny_torch_lut, tiny_space, archs, tiny_torch_lut.predict(tiny_space, archs, dataset="cifar10") * 1.3, dataset="cifar10")
    calibrated.table.loc[calibrated.table["key"] != INTERCEPT, "latency_ms"] *= 2.0
    with pytest.raises(LUTError, match="not its measured rows under its recorded calibration"):
        refit_calibration(calibrated, tiny_space, dataset="cifar10")


def test_recorded_validation_figures_are_recomputed_from_the_per_process_table(tiny_space, tiny_torch_lut):
    from nas.cost.validate import record_validation

    archs = random_archs(tiny_space, 6, seed=2)
    truth = tiny_torch_lut.predict(tiny_space, archs, dataset="cifar10")
    lut = LUT(tiny_torch_lut.table.copy(), dict(tiny_torch_lut.meta))
    first = record_validation(lut, tiny_space, archs, np.vstack([truth * 1.2, truth * 1.1, truth]), {"timing": {"across": "min"}, "seed": 2}, save=False, dataset="cifar10")
    again = revalidate_recorded(lut, tiny_space, first.table, dataset="cifar10")
    assert again.figures["bias"] == pytest.approx(first.figures["bias"]) == pytest.approx(1.0)
    assert again.figures["seed"] == 2 and again.figures["measured"] == first.figures["date"]
    lut.table["latency_ms"] *= 1.5  # a refitted LUT is scored on the same measurements
    assert revalidate_recorded(lut, tiny_space, first.table, dataset="cifar10").figures["bias"] == pytest.approx(1.5, rel=0.05)
