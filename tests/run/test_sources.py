"""A run pins where its numbers come from, records it per trial, and labels estimates beside pareto.csv."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from nas.run import Run, RunConfig, RunConfigError, UnsatisfiableConstraintWarning, load_run, resolve_provider
from nas.run.sources import describe, is_estimate, source_lines
from nas.spaces import get_space

SEARCH = dict(space="nb201", dataset="cifar10", strategy="random", seed=0)


FBNET_LUT = dict(space="fbnet", strategy="random", seed=0, objectives=["params:min", "latency@raspi4:min"])


def test_a_fitted_lut_is_labelled_an_estimate_with_its_file_digest_and_held_out_error(no_data_dir):
    info = resolve_provider("latency@raspi4", get_space("fbnet"), RunConfig(**FBNET_LUT)).provenance()
    line = describe(info)
    assert is_estimate(info)
    assert line.startswith("LUT raspi4.csv: fitted") and "held-out on 4900" in line and "median error 2.5 %" in line
    assert line.endswith(f"(sha256 {info['lut_sha256'][:16]})")
    assert source_lines({"latency@raspi4": info}) == [f"note: latency@raspi4 is an estimate ({line})"]


def test_a_lut_without_a_note_is_described_from_its_validation_figures():
    info = {"provider": "LUTProvider", "table": "lut:/x/latency_luts/pixel3.csv", "lut_sha256": "0123456789abcdef99", "kind": "fitted",
            "validation": {"mdape": 0.078, "mape": 3.67, "n": 15525}}
    assert describe(info) == "fitted LUT pixel3.csv (sha256 0123456789abcdef), held-out median error 7.8 %, MAPE 367 % over 15525 networks"
    info["validation"] = {"mape_pct": 3.05, "n_archs": 50}
    assert describe(info).endswith("held-out MAPE 3.0 % over 50 networks timed whole") and is_estimate(info)


def test_a_measured_table_and_a_count_are_not_estimates(no_data_dir):
    config = RunConfig(**SEARCH, objectives=["accuracy:max", "latency@raspi4:min", "params:min"])
    space = get_space("nb201")
    table = resolve_provider("latency@raspi4", space, config).provenance()
    count = resolve_provider("params", space, config).provenance()
    assert not is_estimate(table) and not is_estimate(count)
    assert describe(table).startswith("measured table nb201/latency_ms/raspi4 (shipped with nas") and table["sha256"][:16] in describe(table)
    assert source_lines({"latency@raspi4": table, "params": count}) == [f"sources: latency@raspi4 = {describe(table)}; params = {describe(count)}"]


@pytest.fixture
def edited_data_dir(tmp_path, no_data_dir):
    """A data directory whose NB201 latency table differs from the shipped one in one cell."""
    from nas._resources import shipped_dir

    table = pd.read_csv(shipped_dir("latency_tables") / "nb201_latency_ms.csv.gz")
    table.loc[0, "raspi4"] *= 1.5
    (tmp_path / "edited" / "nb201").mkdir(parents=True)
    table.to_csv(tmp_path / "edited" / "nb201" / "latency_ms.csv.gz", index=False)
    return tmp_path / "edited"


def _files_and_trials(directory):
    """Every file's bytes, but the study by its trials and attrs: in WAL mode SQLite may move committed
    pages from study.db-wal into study.db (a checkpoint) whenever the file is opened, which changes both
    files' bytes and nothing they hold."""
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    study = load_run(directory).study
    files["study"] = ([(t.number, t.state, t.values, t.params, t.user_attrs) for t in study.get_trials()], study.user_attrs)
    return files


def test_resuming_with_another_data_dir_that_changes_a_source_is_refused(tmp_path, edited_data_dir):
    objectives = ["accuracy:max", "latency@raspi4:min"]
    Run.open(tmp_path / "r", RunConfig(**SEARCH, objectives=objectives, budget=4)).search()
    before = _files_and_trials(tmp_path / "r")
    with pytest.raises(RunConfigError) as info:
        Run.open(tmp_path / "r", RunConfig(**SEARCH, objectives=objectives, budget=8, data_dir=str(edited_data_dir)))
    message = str(info.value)
    assert "\n" not in message and "refusing to mix them" in message and "pass the --data-dir / NAS_DATA_DIR the run used" in message
    assert "latency@raspi4 came from measured table nb201/latency_ms/raspi4 (shipped with nas" in message
    assert "now from measured table nb201/latency_ms/raspi4 (data directory, sha256" in message
    assert _files_and_trials(tmp_path / "r") == before
    assert yaml.safe_load(before["config.yaml"])["budget"] == 4 and Run.open(tmp_path / "r").n_spent() == 4
    assert load_run(tmp_path / "r").study.user_attrs["nas:config"]["budget"] == 4  # the refusal changed the storage in nothing


def test_every_trial_says_where_each_metric_came_from(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", RunConfig(**FBNET_LUT, budget=3))
    run.search()
    lut = run.provenance()["latency@raspi4"]
    for trial in run.study.get_trials():
        sources = trial.user_attrs["provenance"]
        assert sources["params"]["source"].startswith("analytic count") and not sources["params"]["estimate"]
        assert sources["latency@raspi4"]["estimate"] and sources["latency@raspi4"]["lut_sha256"] == lut["lut_sha256"]
        assert sources["latency@raspi4"]["source"] == describe(lut)


def test_pareto_json_beside_pareto_csv_labels_the_estimates(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", RunConfig(**FBNET_LUT, budget=6))
    run.search()
    front = pd.read_csv(tmp_path / "r" / "pareto.csv")
    meta = json.loads((tmp_path / "r" / "pareto.json").read_text())
    assert meta["architectures"] == len(front) and meta["trials"] == front["trial"].tolist()
    assert meta["objectives"] == ["params:min", "latency@raspi4:min"]
    latency = meta["metrics"]["latency@raspi4"]
    assert latency["estimate"] is True and "held-out on 4900" in latency["source"]
    assert latency["provenance"]["lut_sha256"] == run.provenance()["latency@raspi4"]["lut_sha256"]
    assert meta["metrics"]["params"]["estimate"] is False


def test_an_accuracy_bound_no_table_entry_meets_warns_before_the_search(tmp_path, no_data_dir):
    config = RunConfig(**SEARCH, objectives=["accuracy:max", "flops:min"], constraints=["accuracy>=99"], budget=3)
    with pytest.warns(UnsatisfiableConstraintWarning, match=r"satisfies accuracy>=99.* \(best accuracy: 9[0-9.]+\); the front will be empty"):
        run = Run.open(tmp_path / "r", config)
    assert run.search().empty


def test_a_satisfiable_accuracy_bound_does_not_warn(tmp_path, no_data_dir, recwarn):
    Run.open(tmp_path / "r", RunConfig(**SEARCH, objectives=["accuracy:max", "flops:min"], constraints=["accuracy>=90"], budget=3))
    assert not [w for w in recwarn if issubclass(w.category, UnsatisfiableConstraintWarning)]
