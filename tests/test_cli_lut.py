from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nas.cli import app
from nas.cost.lut import INTERCEPT, LUT

runner = CliRunner()
TINY = {"name": "clitiny", "family": "nb201", "ops": ["none", "skip_connect", "nor_conv_3x3"], "channels": 4, "cells_per_stage": 1,
        "datasets": {"cifar10": {"num_classes": 10, "input_size": 8}}}
FAST = ["--processes", "1", "--warmup", "1", "--repeats", "3", "--target-ms", "1", "--no-progress"]


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "clitiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1, text
    return " ".join(text.split())


def test_lut_build_then_validate_writes_the_lut_its_figures_and_lists_them(tmp_path, space_file, monkeypatch):
    out = tmp_path / "luts" / "testcpu__onnxruntime.csv"
    built = runner.invoke(app, ["lut", "build", "--space", str(space_file), "--backend", "onnxruntime", "--out", str(out), "--dataset", "cifar10", *FAST])
    assert built.exit_code == 0, built.output
    assert "operator signatures of clitiny (all 729 archs) + intercept" in built.output
    lut = LUT.load(out)
    assert lut.meta["backend"] == "onnxruntime" and lut.meta["device"] == "testcpu" and INTERCEPT in lut.costs("clitiny")
    checked = runner.invoke(app, ["lut", "validate", str(out), "--space", str(space_file), "--archs", "4", *FAST])
    assert checked.exit_code == 0, checked.output
    for figure in ("MAPE", "within +-10 %", "Spearman", "Kendall", "bias"):
        assert figure in checked.output
    assert len(pd.read_csv(out.with_name("testcpu__onnxruntime.validation.csv"))) == 4
    monkeypatch.setenv("NAS_LUTS_DIR", str(out.parent))
    monkeypatch.setattr("nas.cli.console.width", 200)
    listed = runner.invoke(app, ["lut", "list"])
    assert listed.exit_code == 0 and "testcpu__onnxruntime.csv" in listed.output and "mape_pct" in listed.output
    row = next(line for line in listed.output.splitlines() if "testcpu__onnxruntime.csv" in line)
    assert "onnxruntime" in row and "measured" in row and "clitiny" in row and "| 4 " in row.replace("│", "|")


def _toy_lut(path, space="clitiny", keys=(), backend="torch"):
    lut = LUT.from_costs(space, {INTERCEPT: 0.1, **{k: 0.01 for k in keys}}, device="toy", backend=backend, meta={"threads": 1})
    lut.save(path)
    return path


def test_validate_names_the_missing_operator_and_the_command_that_builds_it(tmp_path, space_file):
    path = _toy_lut(tmp_path / "toy__torch.csv", keys=["relu:nothing"])
    text = _error(runner.invoke(app, ["lut", "validate", str(path), "--space", str(space_file), "--archs", "3", *FAST]))
    assert "has no entry for operator" in text and "rebuild it with `nas lut build --space clitiny`" in text


def test_validate_refuses_a_lut_of_another_space(tmp_path, space_file):
    path = _toy_lut(tmp_path / "toy__torch.csv", space="nb201")
    text = _error(runner.invoke(app, ["lut", "validate", str(path), "--space", str(space_file), *FAST]))
    assert "is for space(s) ['nb201'], not 'clitiny'" in text


def test_validate_refuses_a_corrupted_sidecar(tmp_path, space_file):
    path = _toy_lut(tmp_path / "toy__torch.csv")
    path.with_suffix(".json").write_text("{not json")
    text = _error(runner.invoke(app, ["lut", "validate", str(path), "--space", str(space_file), *FAST]))
    assert "sidecar" in text and "is corrupted" in text


@pytest.mark.parametrize("command", ["build", "validate"])
def test_an_unknown_backend_lists_the_known_ones(tmp_path, space_file, command):
    path = _toy_lut(tmp_path / "toy__torch.csv")
    args = ["--out", str(tmp_path / "x.csv")] if command == "build" else [str(path)]
    text = _error(runner.invoke(app, ["lut", command, *args, "--space", str(space_file), "--backend", "tvmx", *FAST]))
    assert "unknown backend 'tvmx'; known: " in text and "onnxruntime" in text and "torch" in text
    assert not (tmp_path / "x.csv").exists()


def test_build_refuses_to_replace_a_space_already_in_the_file(tmp_path, space_file):
    path = _toy_lut(tmp_path / "toy__torch.csv")
    before = path.read_text()
    text = _error(runner.invoke(app, ["lut", "build", "--out", str(path), "--space", str(space_file), *FAST]))
    assert "already holds clitiny rows; pass --overwrite" in text and path.read_text() == before
    assert json.loads(path.with_suffix(".json").read_text())["device"] == "toy"


def test_lut_refit_refits_to_the_recorded_networks_and_rescores_the_recorded_validation(tmp_path, space_file):
    out = tmp_path / "testcpu__torch.csv"
    built = runner.invoke(app, ["lut", "build", "--space", str(space_file), "--out", str(out), "--dataset", "cifar10", "--calibrate", "4", *FAST])
    assert built.exit_code == 0, built.output
    assert runner.invoke(app, ["lut", "validate", str(out), "--space", str(space_file), "--archs", "4", *FAST]).exit_code == 0
    before = LUT.load(out)
    refit = runner.invoke(app, ["lut", "refit", str(out), "--space", str(space_file)])
    assert refit.exit_code == 0, refit.output
    text = " ".join(refit.output.split())
    assert "refitted (scale) to its 4 recorded clitiny networks" in text and "held out on its 4 recorded validation networks" in text
    after = LUT.load(out)
    assert after.costs("clitiny") == pytest.approx(before.costs("clitiny"), rel=1e-6, abs=1e-9)
    assert after.meta["history"][-1]["reason"] == "refit to the recorded networks"
    assert after.meta["validation"]["clitiny"]["measured"] == before.meta["validation"]["clitiny"]["date"]
    assert len(pd.read_csv(out.with_name("testcpu__torch.validation.csv"))) == 4
    text = _error(runner.invoke(app, ["lut", "refit", str(_toy_lut(tmp_path / "toy.csv")), "--space", str(space_file)]))
    assert "records no `nas lut build --calibrate` calibration for clitiny" in text
