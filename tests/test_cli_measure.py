"""`nas search --measure latency@DEV=SOURCE`: a device measured in the loop, from the command line."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from nas._resources import shipped_dir
from nas.cli import app
from nas.cost.lut import LUT

runner = CliRunner()
TABLE = shipped_dir("latency_tables") / "nb201_latency_ms.csv.gz"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_search_measures_the_device_and_saves_its_lut(tmp_path, no_data_dir):
    out = tmp_path / "run"
    result = invoke(
        "search", "--objectives", "accuracy:max,latency@mydev:min", "--strategy", "random", "--budget", "12", "--seed", "1",
        "--measure", f"latency@mydev=csv:{TABLE}:pixel3", "--measure-budget", "6", "--measure-option", "initial=4", "--out", str(out), "--no-progress",
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    measured = pd.read_csv(out / "measurements.csv")
    assert 4 <= len(measured) <= 6 and list(measured.columns) == ["arch_str", "mydev"]
    assert f"latency@mydev: {len(measured)} measurements" in text and "leave-one-out error" in text
    lut = LUT.load(out / "mydev.csv")
    assert lut.meta["validation"]["nb201"]["k"] == len(measured)
    front = pd.read_csv(out / "pareto.csv")
    assert len(front) > 0 and front["latency@mydev"].gt(0).all()


def test_measure_errors_are_one_line_and_write_nothing(tmp_path, no_data_dir):
    out = tmp_path / "run"
    cases = [
        (["--objectives", "accuracy:max,params:min", "--measure", "latency@mydev=backend:torch"], "not an objective or constraint"),
        (["--objectives", "accuracy:max,latency@mydev:min", "--measure", "latency@mydev"], "must be METRIC=SOURCE"),
        (["--objectives", "accuracy:max,latency@mydev:min", "--measure", "latency@mydev=backend:nope"], "unknown backend 'nope'"),
        (["--objectives", "accuracy:max,latency@mydev:min", "--measure", f"latency@mydev=csv:{tmp_path / 'none.csv'}:mydev"], "not found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["search", *args, "--budget", "5", "--out", str(out), "--no-progress"])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output
        assert not out.exists()
