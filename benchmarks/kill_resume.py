"""kill -9 and Ctrl-C at random moments (start-up included), then the same command, until the run ends.

For each seed: an uninterrupted run in this process is the reference; then `nas search` is started and
interrupted after a uniformly random delay (SIGKILL or SIGINT, by coin) again and again, each time
restarted with the same command, until a start finishes on its own. Recorded: interruptions (and how many
landed before the first trial), completed trials lost (a count that went down between interruptions),
trials left RUNNING, completed against the budget, and whether the evaluated architectures and the front
equal the uninterrupted run's.

    python benchmarks/kill_resume.py [--seeds 0 1 2] [--kills 8] [--budget 150]
writes benchmarks/results/kill_resume.csv and kill_resume.md.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.run import Run, RunConfig, load_run  # noqa: E402
from tvm_vs_torch import _markdown as markdown  # noqa: E402  (the benchmarks' one table writer)

RESULTS = ROOT / "benchmarks" / "results"
OBJECTIVES = ["accuracy:max", "latency@raspi4:min"]


def _completed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def one_seed(seed: int, kills: int, budget: int, strategy: str, max_delay: float) -> dict[str, object]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        reference = Run.open(Path(tmp) / "ref", RunConfig(space="nb201", objectives=OBJECTIVES, strategy=strategy, budget=budget, seed=seed))
        reference.search(pareto_every=0)
        out = Path(tmp) / "run"
        command = [
            sys.executable, "-m", "nas.cli", "search", "--objectives", ",".join(OBJECTIVES), "--strategy", strategy,
            "--budget", str(budget), "--seed", str(seed), "--out", str(out), "--no-progress",
        ]  # fmt: skip
        env = {**os.environ, "NAS_DATA_DIR": "none"}
        interrupts = before_first = lost = sigints = 0
        seen = 0
        starts = 0
        while True:
            starts += 1
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if interrupts < kills:
                deadline = time.monotonic() + rng.uniform(0.2, max_delay)
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                if proc.poll() is None:
                    sig = signal.SIGINT if rng.random() < 0.5 else signal.SIGKILL
                    proc.send_signal(sig)
                    interrupts += 1
                    sigints += sig == signal.SIGINT
                    before_first += _completed(out / "study.db") == 0
            _, err = proc.communicate()
            now = _completed(out / "study.db")
            lost += max(0, seen - now)
            seen = max(seen, now)
            if proc.returncode == 0 and now >= budget:
                break
            if starts > kills + 5:
                raise RuntimeError(f"run did not finish after {starts} starts: {err.decode()[-800:]}")
        trials = load_run(out).study.get_trials(deepcopy=False)
        states = Counter(t.state for t in trials)
        resumed = [t.user_attrs["arch"] for t in sorted(trials, key=lambda t: t.number) if t.state == TrialState.COMPLETE]
        clean = [t.user_attrs["arch"] for t in reference.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        return {
            "strategy": strategy,
            "seed": seed,
            "budget": budget,
            "starts": starts,
            "interruptions": interrupts,
            "sigint": sigints,
            "before_first_trial": before_first,
            "completed": states[TrialState.COMPLETE],
            "lost": lost,
            "stuck_running": states[TrialState.RUNNING],
            "interrupted_trials": states[TrialState.FAIL],
            "same_archs_same_order": resumed == clean,
            "same_front": load_run(out).pareto()["arch"].tolist() == reference.pareto()["arch"].tolist(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--strategies", nargs="+", default=["evolution", "bo"])
    parser.add_argument("--max-delay", type=float, default=12.0, help="longest wait before an interruption (s); start-up takes several")
    parser.add_argument("--summary", action="store_true", help="only rewrite kill_resume.md from kill_resume.csv")
    args = parser.parse_args()
    if args.summary:
        write_summary(pd.read_csv(RESULTS / "kill_resume.csv"))
        return
    rows = []
    for strategy in args.strategies:
        for seed in args.seeds:
            row = one_seed(seed, args.kills, args.budget, strategy, args.max_delay)
            print(row, flush=True)
            rows.append(row)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "kill_resume.csv", index=False)
    write_summary(frame)


def write_summary(frame: pd.DataFrame) -> None:
    text = "\n".join([
        "# kill -9 / Ctrl-C at random moments, then the same command",
        "",
        "`python benchmarks/kill_resume.py` (NB201, accuracy and raspi4 latency from the tables). Each row is one seed: the",
        "search was interrupted `interruptions` times after a random delay (SIGINT or SIGKILL by coin; `before_first_trial`",
        "landed during start-up) and restarted with the same command. `lost` counts completed trials that disappeared,",
        "`stuck_running` trials left RUNNING; the last two columns compare with an uninterrupted run of the same seed.",
        "",
        markdown(frame),
        "",
    ])  # fmt: skip
    (RESULTS / "kill_resume.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
