from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.cost.calibrate import REST, calibrate_here, calibrated_lut, fit_transfer
from nas.cost.lut import LUT, LUTError
from nas.cost.machine import fingerprint
from nas.cost.validate import calibration_group, random_archs, used_archs, validate_lut

runner = CliRunner()


def _other_machine(lut: LUT) -> LUT:
    """`lut` as if built elsewhere: another CPU in its fingerprint, a validation of that machine."""
    meta = json.loads(json.dumps(lut.meta, default=str))
    meta["machine"] = {**fingerprint("torch", 1), "cpu": {"vendor_id": "AuthenticAMD", "cpu_family": "26", "model": "2"}}
    meta["validation"] = {"tiny201": {"n_archs": 50, "within_10pct": 94.0}}
    meta["calibration"] = {"tiny201": {"archs": ["old-arch"]}}
    return LUT(lut.table.copy(), meta)


def test_scale_recovers_a_machine_wide_factor_exactly(tiny_space, tiny_torch_lut):
    archs = random_archs(tiny_space, 10, seed=0)
    measured = 1.7 * tiny_torch_lut.predict(tiny_space, archs, dataset="cifar10")
    for model in ("scale", "affine", "types"):
        result = calibrated_lut(_other_machine(tiny_torch_lut), tiny_space, archs, measured, model=model, dataset="cifar10")
        np.testing.assert_allclose(result.predict(tiny_space, archs, dataset="cifar10"), measured, rtol=2e-3)
        fresh = random_archs(tiny_space, 20, seed=5)
        np.testing.assert_allclose(result.predict(tiny_space, fresh, dataset="cifar10"), 1.7 * tiny_torch_lut.predict(tiny_space, fresh, dataset="cifar10"), rtol=2e-3)


def test_types_follow_one_operator_type_that_changed_more_than_the_rest(tiny_space, tiny_torch_lut):
    """Another vector width slows convs more than adds: a per-type factor sees it, one scale cannot."""
    lut = _other_machine(tiny_torch_lut)
    archs = random_archs(tiny_space, 30, seed=0)
    conv_doubled = LUT(lut.table.assign(latency_ms=[v * (2.0 if calibration_group(k) == "conv3x3" else 1.0) for k, v in zip(lut.table["key"], lut.table["latency_ms"])]), lut.meta)
    measured = conv_doubled.predict(tiny_space, archs, dataset="cifar10")
    factors, added = fit_transfer(lut, tiny_space, archs, measured, model="types", dataset="cifar10")
    assert added == 0.0 and factors["conv3x3"] > factors[REST]
    fresh = random_archs(tiny_space, 40, seed=9)
    truth = conv_doubled.predict(tiny_space, fresh, dataset="cifar10")
    errors = {}
    for model in ("scale", "types"):
        result = calibrated_lut(lut, tiny_space, archs, measured, model=model, dataset="cifar10")
        errors[model] = np.abs(result.predict(tiny_space, fresh, dataset="cifar10") / truth - 1).mean()
    assert errors["types"] < errors["scale"]


def test_calibration_keeps_the_old_figures_and_this_machine_becomes_the_lut_s(tiny_space, tiny_torch_lut):
    lut = _other_machine(tiny_torch_lut)
    archs = random_archs(tiny_space, 5, seed=0)
    measured = 2.0 * lut.predict(tiny_space, archs, dataset="cifar10")
    result = calibrated_lut(lut, tiny_space, archs, measured, model="scale", dataset="cifar10")
    (old,) = result.meta["history"]
    assert old["machine"]["cpu"]["cpu_family"] == "26" and old["validation"] == {"n_archs": 50, "within_10pct": 94.0}
    assert old["latency_ms"] == lut.costs("tiny201") and old["calibration"]["archs"] == ["old-arch"]
    assert result.meta["machine"] == fingerprint("torch", 1) and "tiny201" not in result.meta["validation"]
    cal = result.meta["calibration"]["tiny201"]
    assert cal["kind"] == "transfer" and cal["before"]["bias"] == pytest.approx(0.5) and cal["after_in_sample"]["bias"] == pytest.approx(1.0, rel=1e-3)
    assert set(used_archs(result, "tiny201")) == {"old-arch", *(tiny_space.to_string(a) for a in archs)}
    assert lut.meta["validation"]["tiny201"]["within_10pct"] == 94.0  # the input LUT is left as it was


def test_calibrate_here_measures_fresh_networks_and_validation_never_reuses_them(tmp_path, tiny_space, tiny_torch_lut, fast_timing):
    lut = _other_machine(tiny_torch_lut)
    result = calibrate_here(lut, tiny_space, "torch", n_archs=3, seed=4, processes=1, timing=fast_timing)
    cal = result.meta["calibration"]["tiny201"]
    assert cal["n_archs"] == 3 and len(cal["measured_ms"]) == 3 and all(v > 0 for v in cal["measured_ms"])
    checked = validate_lut(result, tiny_space, "torch", n_archs=4, seed=4, processes=1, timing=fast_timing, save=False)
    assert not set(checked.table["arch"]) & set(cal["archs"])


def test_calibrating_with_another_backend_is_refused_before_measuring(tiny_space, tiny_torch_lut):
    with pytest.raises(LUTError, match="was measured with backend 'torch'; calibrate it with --backend torch, not 'onnxruntime'"):
        calibrate_here(tiny_torch_lut, tiny_space, "onnxruntime", n_archs=3)
    with pytest.raises(ValueError, match="unknown calibration model 'median'; expected one of"):
        calibrate_here(tiny_torch_lut, tiny_space, "torch", model="median")


def test_cli_refuses_another_backend_in_one_line_and_writes_nothing(tmp_path, tiny_space_file, tiny_torch_lut):
    path = tmp_path / "other__torch.csv"
    _other_machine(tiny_torch_lut).save(path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = runner.invoke(app, ["lut", "calibrate", str(path), "--space", str(tiny_space_file), "--backend", "onnxruntime", "--no-progress"])
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert len(text.splitlines()) == 1 and "calibrate it with --backend torch, not 'onnxruntime'" in " ".join(text.split())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_calibrates_in_place_and_stores_a_fresh_validation(tmp_path, tiny_space_file, tiny_torch_lut):
    path = tmp_path / "other__torch.csv"
    _other_machine(tiny_torch_lut).save(path)
    result = runner.invoke(app, ["lut", "calibrate", str(path), "--space", str(tiny_space_file), "--archs", "3", "--validate", "3",
                                 "--model", "scale", "--processes", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "calibrated (scale) on 3 tiny201 networks" in result.output and "held out on 3 fresh networks" in result.output
    lut = LUT.load(path)
    assert lut.meta["history"][0]["validation"]["within_10pct"] == 94.0
    assert lut.meta["validation"]["tiny201"]["n_archs"] == 3 and lut.meta["machine"] == fingerprint("torch", 1)
    assert path.with_name("other__torch.validation.csv").is_file()


def test_calibrate_here_times_a_call_that_runs_nothing_instead_of_scaling_it(tiny_space, tiny_torch_lut, fast_timing):
    lut = _other_machine(tiny_torch_lut)
    lut.meta["build"]["tiny201"]["null_ms"] = [1000.0]  # another machine's figure, absurdly slow
    result = calibrate_here(lut, tiny_space, "torch", n_archs=3, seed=6, processes=1, timing=fast_timing)
    (null,) = result.meta["build"]["tiny201"]["null_ms"]
    assert 0 < null < 1.0 and result.meta["history"][-1]["null_ms"] == [1000.0]
