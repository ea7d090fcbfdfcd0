"""Several workers on one study, on SQLite and on PostgreSQL: each architecture at most once, the budget exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from nas.run import Run, RunConfig, load_run

FLOPS = dict(space="nb201", objectives=["accuracy:max", "latency@raspi4:min"])  # the shipped measured table: cheap to price
#: Our strategies never re-query an architecture; optuna-random repeats by design and is left out.
NO_REPEAT = ["random", "evolution", "aging", "rl", "local", "bo", "bananas"]


def _storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | None:
    return None if kind == "sqlite" else request.getfixturevalue("postgres_url")


def _threads(directory: Path, n: int) -> None:
    """`n` workers as threads, each opening the run as `nas worker` does; the first error is raised."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            Run.open(directory).search(pareto_every=0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _check_exact_and_unique(directory: Path, budget: int) -> None:
    trials = load_run(directory).study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == budget, states
    assert states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0, states
    archs = Counter(t.user_attrs.get("arch") for t in trials if t.state == TrialState.COMPLETE)
    assert max(archs.values()) == 1, [a for a, n in archs.items() if n > 1]


@pytest.mark.parametrize("strategy", NO_REPEAT)
def test_four_workers_on_sqlite_evaluate_each_arch_once_and_stop_at_the_budget(tmp_path, no_data_dir, strategy):
    options = {"n_initial": 4} if strategy in ("bo", "bananas") else {}
    Run.open(tmp_path / "r", RunConfig(**FLOPS, strategy=strategy, strategy_options=options, budget=24, seed=0))
    _threads(tmp_path / "r", 4)
    _check_exact_and_unique(tmp_path / "r", 24)


@pytest.mark.parametrize("strategy", ["evolution", "bo"])
def test_four_workers_on_postgresql_evaluate_each_arch_once_and_stop_at_the_budget(tmp_path, no_data_dir, postgres_url, strategy):
    options = {"n_initial": 4} if strategy == "bo" else {}
    Run.open(tmp_path / "r", RunConfig(**FLOPS, strategy=strategy, strategy_options=options, budget=24, seed=0, storage=postgres_url))
    _threads(tmp_path / "r", 4)
    _check_exact_and_unique(tmp_path / "r", 24)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_four_worker_processes_share_one_run_exactly(tmp_path, no_data_dir, request, kind):
    """`nas search` and three `nas worker` processes (as a user starts them) on one run directory."""
    storage = _storage(kind, tmp_path, request)
    out = tmp_path / "r"
    env = {**os.environ, "NAS_DATA_DIR": "none"}
    search = [sys.executable, "-m", "nas.cli", "search", "--objectives", "accuracy:max,latency@raspi4:min", "--budget", "60", "--out", str(out), "--no-progress"]
    if storage:
        search += ["--storage", storage]
    Run.open(out, RunConfig(**FLOPS, budget=60, seed=0, storage=storage))  # the directory exists before the workers join
    procs = [subprocess.Popen(search, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    procs += [subprocess.Popen([sys.executable, "-m", "nas.cli", "worker", str(out), "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err.decode()[-2000:]
    _check_exact_and_unique(out, 60)
    workers = {t.system_attrs.get("nas:worker") for t in load_run(out).study.get_trials(deepcopy=False)}
    assert len(workers) >= 2  # the work was shared


def test_a_worker_on_another_machine_joins_from_the_storage_alone(tmp_path, no_data_dir, postgres_url):
    """On a second machine there is no run directory: `nas worker DIR --storage URL` takes the config from the study."""
    first = Run.open(tmp_path / "a", RunConfig(**FLOPS, budget=12, seed=0, storage=postgres_url))
    first.search(pareto_every=0)
    first.config.budget = 20
    Run.open(tmp_path / "a", first.config)
    from typer.testing import CliRunner

    from nas.cli import app

    result = CliRunner().invoke(app, ["worker", str(tmp_path / "b"), "--storage", postgres_url, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "config.yaml").is_file()
    _check_exact_and_unique(tmp_path / "a", 20)
