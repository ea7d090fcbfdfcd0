"""Throughput of 1, 2 and 4 workers on one run, on SQLite and PostgreSQL, and what they evaluated.

Two workloads: a table-backed search (NB201, accuracy and raspi4 latency from the measured tables: an
evaluation costs a lookup, so the storage and the strategy are the cost) and a training search
(`train:digits` with a small recipe: about a second per architecture, the regime where workers should pay
off). Each cell starts the run in this process (so start-up pricing is not timed), then launches N real
`nas worker` processes at once and reads the study afterwards: trials per second between the first
trial's start and the last trial's end, completed trials against the budget, architectures evaluated
twice. PostgreSQL comes from `$NAS_TEST_POSTGRES` (scripts/postgres.sh starts one); each cell gets a
fresh database.

    python benchmarks/workers.py [--workers 1 2 4] [--storages sqlite postgresql] [--repeats 2]
writes benchmarks/results/workers.csv and workers.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.run import Run, RunConfig, load_run  # noqa: E402
from tvm_vs_torch import _markdown as markdown  # noqa: E402  (the benchmarks' one table writer)

RESULTS = ROOT / "benchmarks" / "results"
WORKLOADS = {
    "table": dict(objectives=["accuracy:max", "latency@raspi4:min"], budget=300),
    "train": dict(
        objectives=["accuracy:max", "latency@raspi4:min"],
        accuracy="train:digits",
        training={"epochs": 2, "max_train": 200, "threads": 1},
        budget=24,
    ),
}


def _postgres_database(server: str) -> tuple[str, object]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from nas.run.storage import normalised

    admin = create_engine(normalised(server), isolation_level="AUTOCOMMIT")
    name = f"nas_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(server).set(database=name).render_as_string(hide_password=False), drop


def cell(workload: str, storage_kind: str, workers: int, strategy: str, seed: int) -> dict[str, object]:
    """One run with `workers` worker processes; returns its throughput and what it evaluated."""
    drop = None
    storage = None
    if storage_kind == "postgresql":
        server = os.environ.get("NAS_TEST_POSTGRES")
        if not server:
            raise SystemExit("set NAS_TEST_POSTGRES (eval \"$(bash scripts/postgres.sh start)\") to benchmark PostgreSQL")
        storage, drop = _postgres_database(server)
    spec = dict(WORKLOADS[workload])
    budget = spec.pop("budget")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            Run.open(out, RunConfig(space="nb201", strategy=strategy, budget=budget, seed=seed, storage=storage, **spec))
            env = {**os.environ, "NAS_DATA_DIR": "none", "OMP_NUM_THREADS": "1"}
            procs = [
                subprocess.Popen([sys.executable, "-m", "nas.cli", "worker", str(out), "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for _ in range(workers)
            ]
            for p in procs:
                _, err = p.communicate()
                if p.returncode != 0:
                    raise RuntimeError(err.decode()[-1500:])
            trials = load_run(out).study.get_trials(deepcopy=False)
    finally:
        if drop is not None:
            drop()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    seconds = (end - start).total_seconds()
    archs = Counter(t.user_attrs.get("arch") for t in done)
    eval_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done) / len(done)
    return {
        "workload": workload,
        "storage": storage_kind,
        "strategy": strategy,
        "workers": workers,
        "seed": seed,
        "budget": budget,
        "completed": len(done),
        "running_left": sum(t.state == TrialState.RUNNING for t in trials),
        "repeats": sum(n - 1 for n in archs.values()),
        "seconds": round(seconds, 2),
        "trials_per_s": round(len(done) / seconds, 3) if seconds > 0 else float("nan"),
        "mean_trial_s": round(eval_s, 3),
        "workers_used": len({t.system_attrs.get("nas:worker") for t in done}),
    }


def summary(frame: pd.DataFrame) -> str:
    g = frame.groupby(["workload", "storage", "strategy", "workers"]).agg(
        trials_per_s=("trials_per_s", "median"), completed=("completed", "min"), budget=("budget", "first"), repeats=("repeats", "max"),
        running_left=("running_left", "max"), mean_trial_s=("mean_trial_s", "median"), runs=("seed", "count"),
    ).reset_index()
    base = g[g.workers == 1].set_index(["workload", "storage", "strategy"])["trials_per_s"]
    g["speedup_vs_1"] = [round(r.trials_per_s / base.get((r.workload, r.storage, r.strategy), float("nan")), 2) for r in g.itertuples()]
    lines = [
        "# Workers sharing one run: throughput and exactness",
        "",
        "`python benchmarks/workers.py` (real `nas worker` processes, NB201; 2-core machine). Throughput is completed",
        "trials per second between the first trial's start and the last one's end (start-up not timed); `repeats` counts",
        "architectures evaluated more than once; `completed` must equal `budget` and `running_left` be 0. Medians over runs.",
        "",
        markdown(g),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--storages", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--strategies", nargs="+", default=["evolution", "bo"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for workload in args.workloads:
        for storage in args.storages:
            for strategy in args.strategies:
                for workers in args.workers:
                    for seed in range(args.repeats):
                        row = cell(workload, storage, workers, strategy, seed)
                        print(row, flush=True)
                        rows.append(row)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "workers.csv", index=False)
    (RESULTS / "workers.md").write_text(summary(frame))
    print(summary(frame))


if __name__ == "__main__":
    main()
