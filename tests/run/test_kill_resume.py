"""kill -9 or Ctrl-C at any moment, start-up included, then the same command: nothing lost, nothing stuck,
exactly the budget, and for a seeded strategy the same architectures as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from optuna.trial import TrialState

from nas.run import Run, RunConfig, load_run

OBJECTIVES = ["accuracy:max", "latency@raspi4:min"]
BUDGET = 60


def _command(out: Path) -> list[str]:
    return [
        sys.executable, "-m", "nas.cli", "search", "--objectives", ",".join(OBJECTIVES), "--strategy", "evolution",
        "--budget", str(BUDGET), "--seed", "3", "--out", str(out), "--no-progress",
    ]  # fmt: skip


def _completed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _start_then_interrupt(out: Path, sig: int, until: callable) -> bool:
    """Start the search command, wait until `until()` holds (or the command ends), then send `sig`;
    returns whether the signal reached a running search."""
    env = {**os.environ, "NAS_DATA_DIR": "none"}
    proc = subprocess.Popen(_command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while proc.poll() is None and not until() and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(sig)
    proc.wait()
    return interrupted


def _interrupt_three_times(out: Path, last_kill_at: int) -> bool:
    """kill -9 at start-up, Ctrl-C after 12 trials, kill -9 after `last_kill_at`; returns whether the last kill
    left the run unfinished (on a loaded machine the search can finish between the poll and the kill)."""
    db = out / "study.db"
    # start-up: as soon as the directory has its config (the whole space is being priced, no study yet or an empty one)
    assert _start_then_interrupt(out, signal.SIGKILL, lambda: (out / "config.yaml").is_file())
    assert _completed(db) == 0
    assert _start_then_interrupt(out, signal.SIGINT, lambda: _completed(db) >= 12)
    assert 12 <= _completed(db) < BUDGET
    assert _start_then_interrupt(out, signal.SIGKILL, lambda: _completed(db) >= last_kill_at)
    return last_kill_at <= _completed(db) < BUDGET


def test_kills_at_start_up_and_mid_search_then_the_same_command_finish_the_uninterrupted_run(tmp_path, no_data_dir):
    reference = Run.open(tmp_path / "ref", RunConfig(space="nb201", objectives=OBJECTIVES, strategy="evolution", budget=BUDGET, seed=3))
    reference.search(pareto_every=0)
    for attempt, last_kill_at in enumerate((35, 25, 20)):
        out = tmp_path / f"r{attempt}"
        if _interrupt_three_times(out, last_kill_at):
            break
    else:
        raise AssertionError("the last kill -9 never reached an unfinished search in 3 attempts")
    env = {**os.environ, "NAS_DATA_DIR": "none"}
    done = subprocess.run(_command(out), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    trials = load_run(out).study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == BUDGET and states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0, states
    resumed = [t.user_attrs["arch"] for t in sorted(trials, key=lambda t: t.number) if t.state == TrialState.COMPLETE]
    uninterrupted = [t.user_attrs["arch"] for t in reference.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    assert resumed == uninterrupted  # the same architectures, in the same order
    assert load_run(out).pareto()["arch"].tolist() == reference.pareto()["arch"].tolist()
