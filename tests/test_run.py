from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import optuna
import yaml
from optuna.trial import TrialState

import nas
from nas.pareto import pareto_mask
from nas.run import Run, RunConfig, RunConfigError, load_run

FLOPS = dict(space="nb201", dataset="cifar10", objectives=["accuracy:max", "flops:min"], strategy="evolution")


def completed(run: Run) -> int:
    return len(run.study.get_trials(states=(TrialState.COMPLETE,)))


def test_search_writes_a_front_of_nondominated_feasible_archs(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=40, seed=0))
    front = run.search()
    assert completed(run) == 40
    assert list(front.columns[:3]) == ["arch", "accuracy", "flops"]
    on_disk = pd.read_csv(tmp_path / "r" / "pareto.csv")
    assert on_disk["arch"].tolist() == front["arch"].tolist()
    trials = run.trials()
    F = np.c_[-trials["accuracy"], trials["flops"]]
    assert set(trials.loc[pareto_mask(F), "arch"]) == set(front["arch"])
    assert (tmp_path / "r" / "config.yaml").is_file() and (tmp_path / "r" / "study.db").is_file()
    assert optuna.load_study(study_name=run.study.study_name, storage=run.store.storage_url).metric_names == ["accuracy", "flops"]


def test_each_trial_stores_arch_metrics_and_provenance(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=3, seed=0))
    run.search()
    t = run.study.get_trials(states=(TrialState.COMPLETE,))[0]
    assert run.space.from_string(t.user_attrs["arch"]) == run.space.validate(t.params)
    assert set(t.user_attrs["metrics"]) == {"accuracy", "flops"}
    assert "accuracy" in t.user_attrs["provenance"]
    assert "nas:provenance" in run.study.user_attrs


def test_resume_finishes_exactly_the_remaining_budget(tmp_path, no_data_dir):
    Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=20, seed=1)).search()
    run = Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=35, seed=1))
    run.search()
    assert completed(run) == 35
    Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=35, seed=1)).search()
    assert completed(load_run(tmp_path / "r")) == 35
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["budget"] == 35


def test_resume_after_a_kill_fails_the_orphan_and_completes_the_budget(tmp_path, no_data_dir):
    """A trial left RUNNING by a killed process is failed on resume and does not eat the budget."""
    run = Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=10, seed=2))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = run.study.ask()
    run.study._storage.set_trial_system_attr(orphan._trial_id, "nas:worker", f"{os.uname().nodename}:{dead.pid}")
    run.search()
    states = [t.state for t in run.study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 10 and states.count(TrialState.FAIL) == 1


def test_killed_search_process_resumes_from_an_intact_study(tmp_path, no_data_dir):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "nas.cli", "search", "--objectives", "accuracy:max,flops:min", "--budget", "400", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "study.db"
    n = 0
    for _ in range(3000):  # start-up is slow on a loaded machine; the loop leaves as soon as 15 trials are done
        time.sleep(0.1)
        if db.is_file():
            try:
                with sqlite3.connect(db) as con:
                    n = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if n >= 15:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 15 <= n < 400, proc.stderr.read().decode()[-2000:]
    run = Run.open(out, RunConfig.from_file(out / "config.yaml"))
    run.config.budget = 60 if completed(run) < 60 else completed(run) + 5
    run.search()
    assert completed(run) == run.config.budget


def test_different_config_on_an_existing_run_is_refused_and_nothing_is_overwritten(tmp_path, no_data_dir):
    Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=5, seed=0)).search()
    before = (tmp_path / "r" / "config.yaml").read_text()
    other = {**FLOPS, "objectives": ["accuracy:max", "params:min"]}
    with pytest.raises(RunConfigError, match="different search"):
        Run.open(tmp_path / "r", RunConfig(**other, budget=5, seed=0))
    assert (tmp_path / "r" / "config.yaml").read_text() == before


@pytest.mark.parametrize(
    "config, message",
    [
        ({"strategy": "annealing"}, "unknown strategy 'annealing'"),
        ({"space": "nb999"}, "unknown search space 'nb999'"),
        ({"objectives": ["accuracy:max", "latency@toaster:min"]}, "unknown device 'toaster'"),
        ({"objectives": ["acc:max"]}, "does not parse"),
        ({"dataset": "mnist"}, "mnist"),
        ({"strategy_options": {"populaton_size": 3}}, "unknown option"),
    ],
)
def test_bad_inputs_fail_before_anything_is_written(tmp_path, no_data_dir, config, message):
    with pytest.raises((ValueError, KeyError)) as info:
        Run.open(tmp_path / "r", RunConfig.from_mapping({**FLOPS, "budget": 5, **config}))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()


def test_latency_without_data_dir_or_luts_is_the_shipped_measured_table(tmp_path, no_data_dir, monkeypatch):
    monkeypatch.setenv("NAS_LUTS_DIR", str(tmp_path / "no-luts"))
    run = Run.open(tmp_path / "r", RunConfig.from_mapping({**FLOPS, "objectives": "accuracy:max,latency@raspi4:min"}))
    info = run.providers["latency@raspi4"].provenance()
    assert info["source"] == str(nas.tables.shipped_latency_table("nb201")) and info["estimate"] is False


def test_constrained_search_on_device_tables_keeps_only_feasible_archs(tmp_path, shared_data):
    config = RunConfig.from_mapping(
        {**FLOPS, "objectives": "accuracy:max,latency@raspi4:min", "constraints": ["latency@pixel3<=12"], "budget": 40, "data_dir": str(shared_data)}
    )
    run = Run.open(tmp_path / "r", config)
    front = run.search()
    assert list(front.columns[:4]) == ["arch", "accuracy", "latency@raspi4", "latency@pixel3"]
    assert (front["latency@pixel3"] <= 12).all() and len(front) > 0
    table = nas.tables.nb201(devices=["raspi4", "pixel3"], data_dir=shared_data).set_index("arch")
    assert np.allclose(table.loc[front["arch"], "latency@raspi4"].to_numpy(), front["latency@raspi4"].to_numpy())
    assert run.hypervolume() > 0


def test_load_run_reads_results_without_the_data_dir(tmp_path, shared_data, monkeypatch):
    config = RunConfig.from_mapping({**FLOPS, "objectives": "accuracy:max,latency@pixel3:min", "budget": 10, "data_dir": str(shared_data)})
    Run.open(tmp_path / "r", config).search()
    monkeypatch.setenv("NAS_DATA_DIR", "none")
    front = nas.load_run(tmp_path / "r").pareto()
    assert list(front.columns[:3]) == ["arch", "accuracy", "latency@pixel3"] and len(front) >= 1


def test_two_workers_share_one_study_and_stop_at_the_budget(tmp_path, no_data_dir):
    Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=40, seed=3))
    env = {**os.environ}
    workers = [
        subprocess.Popen([sys.executable, "-m", "nas.cli", "worker", str(tmp_path / "r"), "--no-progress"], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read().decode()[-2000:]
    run = load_run(tmp_path / "r")
    n = completed(run)
    assert 40 <= n <= 41  # each worker checks the shared budget before asking; at most one overlaps
    archs = run.trials()["arch"]
    assert archs.nunique() >= n - 2


@pytest.mark.parametrize("strategy", ["evolution", "aging", "local", "rl", "random"])
def test_known_constraints_are_enforced_at_proposal_time(tmp_path, shared_data, strategy):
    """No query is spent on an arch whose (table-known) latency breaks the constraint."""
    config = RunConfig.from_mapping(
        {**FLOPS, "strategy": strategy, "objectives": "accuracy:max,latency@raspi4:min", "constraints": ["latency@pixel3<=8"], "budget": 25, "data_dir": str(shared_data)}
    )
    run = Run.open(tmp_path / "r", config)
    run.search()
    trials = run.trials()
    assert len(trials) == 25 and trials["feasible"].all() and (trials["latency@pixel3"] <= 8).all()


def test_bo_strategy_runs_through_the_run_with_a_predictor_surrogate(tmp_path, no_data_dir):
    config = RunConfig.from_mapping(
        {**FLOPS, "strategy": "bo", "strategy_options": {"surrogate": "rf", "n_initial": 6, "surrogate_options": {"n_estimators": 20}}, "budget": 9}
    )
    run = Run.open(tmp_path / "r", config)
    front = run.search()
    assert len(run.trials()) == 9 and run.trials()["arch"].nunique() == 9 and len(front) >= 1


def test_a_run_on_a_space_too_large_to_list_searches_and_prices_by_sampling(tmp_path, no_data_dir):
    """FBNet (9**22 archs) with counted costs and a constraint: no reference point over the whole space,
    no pool; evolution samples, and every trial satisfies the known constraint."""
    config = RunConfig(space="fbnet", dataset="cifar100", objectives=["params:min", "flops:max"], constraints=["params<=3"], strategy="evolution", budget=12, seed=0)
    run = Run.open(tmp_path / "r", config)
    front = run.search()
    trials = run.trials()
    assert len(trials) == 12 and trials["feasible"].all() and len(front) >= 1
    assert run.reference is None and run.hypervolume() is None


def test_scalarized_product_mode_ranks_feasible_archs_by_the_mnasnet_reward(tmp_path, no_data_dir):
    config = RunConfig(**{**FLOPS, "strategy": "random"}, budget=12, seed=0, mode="scalarized", mode_options={"kind": "product", "targets": [None, 50.0], "exponent": -0.07})
    run = Run.open(tmp_path / "r", config)
    run.search()
    column, ranked = run.ranked()
    assert column == "reward" and len(ranked) == run.trials()["arch"].nunique()
    expected = ranked["accuracy"] * (ranked["flops"] / 50.0) ** -0.07
    np.testing.assert_allclose(ranked["reward"], expected)
    assert ranked["reward"].is_monotonic_decreasing


def test_lexicographic_mode_orders_by_the_first_objective_then_the_next(tmp_path, no_data_dir):
    config = RunConfig(**{**FLOPS, "strategy": "random"}, budget=12, seed=0, mode="lexicographic", mode_options={"order": ["flops", "accuracy"]})
    run = Run.open(tmp_path / "r", config)
    run.search()
    column, ranked = run.ranked()
    assert column == "order" and ranked["order"].tolist() == list(range(1, len(ranked) + 1))
    expected = ranked.sort_values(["flops", "accuracy"], ascending=[True, False], kind="stable")["arch"].tolist()
    assert ranked["arch"].tolist() == expected
    assert Run.open(tmp_path / "p", RunConfig(**FLOPS, budget=2, seed=0)).ranked() is None


def test_true_front_of_a_config_and_of_its_run_agree_and_dominate_the_search(tmp_path, no_data_dir):
    config = RunConfig(**FLOPS, budget=20, seed=0)
    run = Run.open(tmp_path / "r", config)
    run.search()
    front = nas.true_front(config)
    assert front.equals(run.true_front())
    assert front["accuracy"].is_monotonic_decreasing and front["accuracy"].iloc[0] >= run.pareto()["accuracy"].max()
    table = run.space_table()
    assert len(table) == 15625 and set(front["arch"]) <= set(table["arch"])
    assert run.hypervolume_trace()[-1] == pytest.approx(run.hypervolume())


def test_space_table_refuses_slow_metrics_large_spaces_and_moved_sources(tmp_path, no_data_dir, monkeypatch):
    from nas.run import SpaceTableUnavailable

    trained = Run.open(tmp_path / "t", RunConfig(space="nb201", objectives=["accuracy:max", "flops:min"], accuracy="train:digits", strategy="random", budget=1, training={"epochs": 1, "max_train": 40}))
    with pytest.raises(SpaceTableUnavailable, match="accuracy cannot price the whole space cheaply"):
        trained.space_table()
    assert len(trained.space_table(["flops"])) == 15625
    ofa = Run.open(tmp_path / "o", RunConfig(space="ofa_mbv3_small", dataset="digits", objectives=["flops:min", "params:min"], strategy="random", budget=1))
    with pytest.raises(SpaceTableUnavailable, match="too large to list"):
        ofa.true_front()
    table_run = Run.open(tmp_path / "l", RunConfig(**{**FLOPS, "objectives": ["accuracy:max", "latency@raspi4:min"]}, budget=2, seed=0))
    table_run.search()
    edited = pd.read_csv(nas.tables.shipped_latency_table("nb201"))
    edited.loc[0, "raspi4"] *= 2
    (tmp_path / "edited" / "nb201").mkdir(parents=True)
    edited.to_csv(tmp_path / "edited" / "nb201" / "latency_ms.csv.gz", index=False)
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "edited"))  # a table with other numbers (another sha256): another source
    with pytest.raises(SpaceTableUnavailable, match="latency@raspi4 now resolve"):
        load_run(tmp_path / "l").true_front()


def test_opening_a_run_prints_no_optuna_log_lines(tmp_path, no_data_dir, capsys):
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        Run.open(tmp_path / "r", RunConfig(**FLOPS, budget=2, seed=0)).search()
        load_run(tmp_path / "r").pareto()
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    captured = capsys.readouterr()
    assert "A new study created" not in captured.err + captured.out
