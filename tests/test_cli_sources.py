"""`nas search` / `nas pareto`: sources and estimates labelled, damaged runs and empty fronts in one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from nas.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def test_search_and_pareto_label_a_fitted_lut_as_an_estimate_with_its_held_out_error(tmp_path, no_data_dir):
    out = tmp_path / "run"
    args = ["search", "--space", "fbnet", "--objectives", "params:min,latency@raspi4:min", "--strategy", "random", "--budget", "4", "--out", str(out), "--no-progress"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "pareto.json").read_text())
    note = f"note: latency@raspi4 is an estimate ({meta['metrics']['latency@raspi4']['source']})"
    assert "held-out on" in note and "sha256" in note
    assert note in result.output and "sources: params = analytic count" in result.output
    shown = invoke("pareto", str(out))
    assert shown.exit_code == 0 and note in shown.output


def test_an_accuracy_bound_nothing_meets_warns_first_and_ends_non_zero(tmp_path, no_data_dir):
    out = tmp_path / "run"
    result = invoke("search", "--objectives", "accuracy:max,flops:min", "-c", "accuracy>=99", "--strategy", "random", "--budget", "3", "--out", str(out), "--no-progress")
    assert result.exit_code != 0
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "satisfies accuracy>=99" in warning[0] and "best accuracy: 9" in warning[0]
    error = _one_error_line(result.output)
    assert "is empty: none of 3 evaluated architectures satisfies ['accuracy>=99'] (best accuracy seen: " in error
    assert result.output.index("warning:") < result.output.index("Pareto front: 0 architectures")


def test_pareto_of_a_damaged_run_is_one_line_and_changes_nothing(tmp_path, no_data_dir):
    out = tmp_path / "run"
    assert invoke("search", "--objectives", "accuracy:max,flops:min", "--strategy", "random", "--budget", "3", "--out", str(out), "--no-progress").exit_code == 0
    (out / "study.db").write_bytes(b"\0" * 4096)
    shown = invoke("pareto", str(out))
    assert shown.exit_code == 2 and "is not an SQLite database" in _one_error_line(shown.output)
    resumed = invoke("search", "--objectives", "accuracy:max,flops:min", "--strategy", "random", "--budget", "5", "--out", str(out), "--no-progress")
    assert resumed.exit_code == 2 and "nothing was changed" in _one_error_line(resumed.output)
    assert (out / "study.db").read_bytes() == b"\0" * 4096


def test_pareto_of_a_run_without_study_db_creates_none(tmp_path, no_data_dir):
    out = tmp_path / "run"
    assert invoke("search", "--objectives", "accuracy:max,flops:min", "--strategy", "random", "--budget", "3", "--out", str(out), "--no-progress").exit_code == 0
    (out / "study.db").unlink()
    shown = invoke("pareto", str(out))
    assert shown.exit_code == 2 and "has no study.db" in _one_error_line(shown.output)
    assert not (out / "study.db").exists()


def test_report_of_a_damaged_run_is_one_line_and_writes_no_page(tmp_path, no_data_dir):
    out = tmp_path / "run"
    assert invoke("search", "--objectives", "accuracy:max,flops:min", "--strategy", "random", "--budget", "3", "--out", str(out), "--no-progress").exit_code == 0
    data = (out / "study.db").read_bytes()
    (out / "study.db").write_bytes(data[: len(data) // 4])
    result = invoke("report", str(out), "--out", str(tmp_path / "report.html"))
    assert result.exit_code == 2 and "study.db" in _one_error_line(result.output)
    assert not (tmp_path / "report.html").exists()


def test_a_misspelled_nas_data_dir_stops_the_search_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "shraed"))
    result = invoke("search", "--objectives", "accuracy:max,latency@raspi4:min", "--budget", "3", "--out", str(tmp_path / "run"), "--no-progress")
    assert result.exit_code == 2 and f"$NAS_DATA_DIR={tmp_path / 'shraed'} does not exist" in _one_error_line(result.output)
    assert not (tmp_path / "run").exists()
