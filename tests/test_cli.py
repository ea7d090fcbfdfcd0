from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.pareto import pareto_mask

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_search_then_pareto_prints_and_writes_the_front(tmp_path, no_data_dir):
    out = tmp_path / "run"
    result = invoke("search", "--objectives", "accuracy:max,flops:min", "--budget", "15", "--seed", "0", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    front = pd.read_csv(out / "pareto.csv")
    assert list(front.columns[:3]) == ["arch", "accuracy", "flops"]
    shown = invoke("pareto", str(out))
    assert shown.exit_code == 0 and "Pareto front" in shown.output and "hypervolume" in shown.output


def test_search_from_a_yaml_config_with_flag_overrides(tmp_path, no_data_dir):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"space": "nb201", "objectives": "accuracy:max,params:min", "strategy": "random", "budget": 50, "seed": 4}))
    out = tmp_path / "run"
    result = invoke("search", str(config), "--budget", "12", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["budget"] == 12 and stored["strategy"] == "random" and stored["objectives"] == ["accuracy:max", "params:min"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--objectives", "accuracy:max,latency@toaster:min"], "unknown device 'toaster' for latency in space 'nb201'; known devices: 1080ti_1"),
        (["--space", "nb999"], "unknown search space 'nb999'"),
        (["--strategy", "annealing"], "unknown strategy 'annealing'"),
        (["--objectives", "accuracy:max,speed:min"], "metric 'speed' does not parse"),
        (["--constraint", "latency@pixel3=<12"], "constraint 'latency@pixel3=<12' does not parse"),
        (["--objectives", "accuracy:max,latency@1080ti_64:min"], "unknown device '1080ti_64' for latency in space 'nb201'; known devices: 1080ti_1"),
        (["--option", "populaton_size=3"], "unknown option(s) ['populaton_size']"),
        (["--budget", "0"], "budget must be a positive integer"),
    ],
)
def test_bad_inputs_exit_nonzero_with_one_line_and_write_nothing(tmp_path, no_data_dir, monkeypatch, args, message):
    monkeypatch.setenv("NAS_LUTS_DIR", str(tmp_path / "no-luts"))  # no shipped LUT to fall back on
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", *args, "--out", str(out), "--no-progress"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert message in text, result.output
    assert result.output.strip().startswith("error:")
    assert not out.exists()


def test_existing_run_with_a_different_config_is_refused(tmp_path, no_data_dir):
    out = tmp_path / "run"
    assert invoke("search", "--objectives", "accuracy:max,flops:min", "--budget", "5", "--out", str(out), "--no-progress").exit_code == 0
    before = (out / "config.yaml").read_text()
    result = runner.invoke(app, ["search", "--objectives", "accuracy:max,params:min", "--budget", "5", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "refusing to overwrite" in " ".join(result.output.split())
    assert (out / "config.yaml").read_text() == before


def test_pareto_of_a_folder_that_is_not_a_run_fails_cleanly(tmp_path):
    result = runner.invoke(app, ["pareto", str(tmp_path)])
    assert result.exit_code == 2 and "not a nas run directory" in result.output


def test_bench_front_prints_the_true_front_and_its_hypervolume(tmp_path, shared_data):
    csv = tmp_path / "front.csv"
    result = invoke("bench", "front", "--objectives", "accuracy:max,latency@raspi4:min", "--data-dir", str(shared_data), "--csv", str(csv))
    assert result.exit_code == 0, result.output
    assert "True Pareto front" in result.output and "hypervolume =" in result.output
    front = pd.read_csv(csv)
    assert list(front.columns) == ["arch", "accuracy", "latency@raspi4"]
    assert front["accuracy"].is_monotonic_decreasing and front["latency@raspi4"].is_monotonic_decreasing
    table = nas.tables.nb201(devices=["raspi4"], data_dir=shared_data)
    mask = pareto_mask(np.c_[-table["accuracy"], table["latency@raspi4"]])
    assert set(front["arch"]) == set(table.loc[mask, "arch"])


def test_listings_name_strategies_spaces_and_devices():
    assert "evolution" in invoke("strategies").output
    assert "nb201" in invoke("spaces").output
    assert "raspi4" in invoke("devices").output


def test_scalarized_mode_with_weights_that_do_not_match_objectives_is_refused(tmp_path, no_data_dir):
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", "--objectives", "accuracy:max,flops:min", "--mode", "scalarized", "--mode-option", "weights=[1,2,3]", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "do not match the 2 objectives" in " ".join(result.output.split())
    assert not out.exists()


def test_lexicographic_order_naming_an_unknown_objective_is_refused(tmp_path, no_data_dir):
    result = runner.invoke(app, ["search", "--objectives", "accuracy:max,flops:min", "--mode", "lexicographic", "--mode-option", "order=[latency@raspi4]", "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2 and "unknown objective" in result.output


def test_infeasible_constraint_set_is_refused_before_searching(tmp_path, shared_data):
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", "--objectives", "accuracy:max,latency@raspi4:min", "-c", "latency@pixel3<=0.001", "--data-dir", str(shared_data), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "no architecture of space 'nb201' satisfies" in " ".join(result.output.split())
    assert not out.exists()


def test_hybrid_mode_search_runs_and_still_writes_the_front(tmp_path, no_data_dir):
    out = tmp_path / "run"
    result = invoke("search", "--objectives", "accuracy:max,flops:min", "--mode", "hybrid", "--strategy", "aging", "--option", "population_size=8", "--option", "sample_size=3", "--budget", "20", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out / "pareto.csv")) >= 1


def test_scalarized_search_prints_the_reward_column_and_the_single_best_arch(tmp_path, no_data_dir):
    out = tmp_path / "run"
    result = invoke("search", "--objectives", "accuracy:max,flops:min", "--mode", "scalarized", "--mode-option", "kind=product",
                    "--mode-option", "targets=[null,50]", "--budget", "10", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    best = [line for line in result.output.splitlines() if line.startswith("best: ")]
    assert len(best) == 1 and "reward=" in best[0]
    column, ranked = nas.load_run(out).ranked()
    assert best[0].startswith(f"best: {ranked['arch'].iloc[0]} (reward=")


def test_search_help_shows_bracketed_examples_instead_of_reading_them_as_markup():
    result = invoke("search", "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "order=[accuracy,latency@raspi4]" in text and "targets=[null,12]" in text


def test_report_and_plot_commands_write_their_files_and_refuse_bad_input_in_one_line(tmp_path, no_data_dir):
    run_dir = tmp_path / "run"
    assert invoke("search", "--objectives", "accuracy:max,latency@raspi4:min", "--budget", "12", "--out", str(run_dir), "--no-progress").exit_code == 0
    report = invoke("report", str(run_dir), "-o", str(tmp_path / "r.html"))
    assert report.exit_code == 0, report.output
    assert "12 trials" in report.output and (tmp_path / "r.html").stat().st_size > 1_000_000
    plot = invoke("plot", str(run_dir), "--kind", "devices", "--device", "raspi4", "--device", "fpga", "-o", str(tmp_path / "d.png"))
    assert plot.exit_code == 0, plot.output
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args, message in [
        (("plot", str(run_dir), "--kind", "violin", "-o", str(tmp_path / "v.png")), "unknown plot kind 'violin'"),
        (("plot", str(run_dir), "--kind", "devices", "--device", "toaster", "-o", str(tmp_path / "t.png")), "unknown device(s) toaster"),
        (("report", str(tmp_path), "-o", str(tmp_path / "x.html")), "is not a nas run directory"),
    ]:
        bad = invoke(*args)
        assert bad.exit_code == 2 and message in bad.output and len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "v.png").exists() and not (tmp_path / "x.html").exists()


def test_devices_lists_what_latency_can_price_for_a_space(no_data_dir):
    result = invoke("devices", "--space", "ofa_mbv3_small")
    assert result.exit_code == 0 and "epyc_zen4" in result.output and "raspi4" not in result.output.split(":")[-1]
