"""Per-trial overhead of every strategy against the number of trials, on one SQLite storage.

A table-backed NB201 search (CIFAR-10 validation accuracy x measured Pixel 3 latency, both table lookups)
costs an evaluation next to nothing, so the time between two trials' completions is what the search loop,
the storage and the strategy spend per trial. Each cell is one `nas` run (`Run.open` + `search`, the same
path as `nas search`, a fresh SQLite study in WAL mode) in its own process, so the code of another checkout
(`--code DIR`, e.g. a `git worktree` of the commit before a change) runs beside this one; cells run one
after another, never two at once. Per trial it records the search process's CPU ms and the wall-clock ms
from one trial's end to the next's; the tables give their means over windows of trial numbers. Optuna's NSGA-II and TPE run through the same loop and storage as baselines.

    OMP_NUM_THREADS=1 python benchmarks/overhead.py --label after --strategies random,evolution,aging,rl,local,optuna-nsga2,optuna-tpe --seeds 0 1
    OMP_NUM_THREADS=1 python benchmarks/overhead.py --label before --code /tmp/overhead_base --strategies evolution --seeds 0
    python benchmarks/overhead.py --summary      # rewrite overhead.csv / .md / .png from the overhead_curves_*.csv.gz
Writes benchmarks/results/overhead_curves_LABEL.csv.gz (every trial's interval), overhead.csv, overhead.md, overhead.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OBJECTIVES = ["accuracy:max", "latency@pixel3:min"]
WINDOWS = [(0, 100), (500, 600), (1000, 1100), (1900, 2000)]
DATA = Path(os.environ.get("NAS_DATA_DIR", ROOT.parent / "shared" / "data"))


def cell(code: Path, strategy: str, seed: int, budget: int) -> dict[str, list[float]]:
    """Run one search with the `nas` package found in `code`; per trial (claim, ask, evaluate, record), the
    wall-clock ms and this process's CPU ms (SQLite runs in-process: robust to other processes' load)."""
    sys.path.insert(0, str(code))
    from nas.run import Run, RunConfig  # the checkout under test, imported after the path is set
    from nas.run.loop import SearchLoop

    assert Path(sys.modules["nas"].__file__).resolve().is_relative_to(code.resolve()), "imported nas from the wrong checkout"
    ends: list[tuple[float, float]] = []
    run_trial = SearchLoop.run_trial

    def timed(self: SearchLoop, *args: object, **kwargs: object) -> object:
        state = run_trial(self, *args, **kwargs)
        ends.append((time.perf_counter(), time.process_time()))
        return state

    SearchLoop.run_trial = timed  # type: ignore[method-assign]  # both checkouts' loops call it once per trial
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.open(Path(tmp) / "run", RunConfig(space="nb201", objectives=OBJECTIVES, strategy=strategy, budget=budget, seed=seed, data_dir=str(DATA)))
        start = (time.perf_counter(), time.process_time())
        run.search(pareto_every=25)
    if len(ends) != budget:
        raise RuntimeError(f"{strategy} seed {seed}: {len(ends)} trials of {budget}")
    marks = np.array([start, *ends])
    return {"wall_ms": (1000.0 * np.diff(marks[:, 0])).tolist(), "cpu_ms": (1000.0 * np.diff(marks[:, 1])).tolist()}


def curves_path(label: str) -> Path:
    """Every trial's interval of one code label (one file per label: a `before` and an `after` run may overlap)."""
    return RESULTS / f"overhead_curves_{label}.csv.gz"


def run_cells(code: Path, label: str, strategies: list[str], seeds: list[int], budget: int, budgets: dict[str, int]) -> None:
    """Each (strategy, seed) in a fresh process, one at a time, seed by seed through the strategies (a shared
    machine's load drifts over minutes: interleaved, it lands on every strategy alike); every finished cell is
    added to its label's curves."""
    for seed in seeds:
        for strategy in strategies:
            n = budgets.get(strategy, budget)
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(
                [sys.executable, __file__, "--cell", str(code), strategy, str(seed), str(n)], env=env, capture_output=True, text=True, check=False
            )
            if out.returncode != 0:
                print(f"{label} {strategy} seed {seed} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            ms = json.loads(out.stdout.strip().splitlines()[-1])
            frame = pd.DataFrame(
                {"code": label, "strategy": strategy, "seed": seed, "trial": np.arange(n), "ms": np.round(ms["wall_ms"], 3), "cpu_ms": np.round(ms["cpu_ms"], 3)}
            )
            path = curves_path(label)
            if path.is_file():
                old = pd.read_csv(path)
                old = old[~((old.strategy == strategy) & (old.seed == seed))]
                frame = pd.concat([old, frame], ignore_index=True)
            frame.to_csv(path, index=False)
            print(f"{label} {strategy} seed {seed}: {np.mean(ms['cpu_ms'][-100:]):.1f} CPU ms/trial over the last 100 of {n}", flush=True)


def windows(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean ms/trial per window of trial numbers, per (code, strategy): CPU ms of the search process (where
    recorded) and wall-clock ms, each the mean of the seeds' means, with the seeds' min-max for CPU."""
    rows = []
    for (code, strategy), g in curves.groupby(["code", "strategy"], sort=False):
        row: dict[str, object] = {"code": code, "strategy": strategy, "seeds": g.seed.nunique(), "trials": int(g.groupby("seed").trial.max().min()) + 1}
        for lo, hi in WINDOWS:
            window = g[(g.trial >= lo) & (g.trial < hi)]
            cpu = window.dropna(subset=["cpu_ms"]).groupby("seed").cpu_ms.mean() if "cpu_ms" in window else pd.Series(dtype=float)
            wall = window.groupby("seed").ms.mean()
            row[f"cpu {lo}-{hi}"] = round(float(cpu.mean()), 1) if len(cpu) else float("nan")
            row[f"cpu {lo}-{hi} seeds"] = f"{cpu.min():.1f}-{cpu.max():.1f}" if len(cpu) > 1 else ""
            row[f"wall {lo}-{hi}"] = round(float(wall.mean()), 1) if len(wall) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    styles = {"after": "-", "before": ":"}
    for i, ((code, strategy), g) in enumerate(curves.groupby(["code", "strategy"], sort=False)):
        column = "cpu_ms" if "cpu_ms" in g and g.cpu_ms.notna().all() else "ms"
        mean = g.groupby("trial")[column].mean()
        smooth = mean.rolling(50, min_periods=1).mean()
        colour = f"C{sorted(curves.strategy.unique()).index(strategy) % 10}"
        ax.plot(smooth.index, smooth.values, styles.get(code, "--"), color=colour, label=f"{strategy} ({code}{', wall' if column == 'ms' else ''})")
    ax.set_xlabel("trial")
    ax.set_ylabel("CPU ms per trial (wall where marked; rolling mean of 50, mean over seeds)")
    ax.set_yscale("log")
    ax.set_title("Per-trial overhead, table-backed NB201 search on SQLite")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary() -> None:
    from tvm_vs_torch import _markdown as markdown  # the benchmarks' one table writer

    curves = pd.concat([pd.read_csv(p) for p in sorted(RESULTS.glob("overhead_curves_*.csv.gz"))], ignore_index=True)
    table = windows(curves)
    table.to_csv(RESULTS / "overhead.csv", index=False)
    plot(curves, RESULTS / "overhead.png")
    lines = [
        "# Per-trial overhead against the number of trials (table-backed NB201, SQLite)",
        "",
        "`python benchmarks/overhead.py` (see its docstring for the exact commands). Each cell is one `nas` run of a table-backed",
        f"search ({', '.join(OBJECTIVES)}: table lookups, so evaluation costs almost nothing) on a fresh SQLite study, in its own",
        "process, one at a time, `OMP_NUM_THREADS=1`, on a shared 2-core machine. Per trial (claim, ask, evaluate, record): `cpu`",
        "= CPU ms of the search process (SQLite runs in it; robust to other processes' load), `wall` = wall-clock ms; each the mean",
        "over the window, mean over seeds (`seeds` = min-max of the seeds' means where there are several). `before` is the code",
        "before the change (a `git worktree` of it), `after` this checkout; `before-wall` an earlier run of the old code that",
        "recorded wall-clock intervals only, under heavy load; `optuna-*` are Optuna's samplers through the same loop.",
        "",
        markdown(table),
        "",
        "![ms per trial](overhead.png)",
        "",
    ]
    (RESULTS / "overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--cell":
        code, strategy, seed, budget = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(cell(code, strategy, seed, budget)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose nas package runs (default: this one)")
    parser.add_argument("--label", default="after", help="name of that code in the results (after, before, ...)")
    parser.add_argument("--strategies", default="random,evolution,aging,rl,local,optuna-nsga2,optuna-tpe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--budgets", default="", help="per-strategy budgets, e.g. bo=300 (strategies slow by nature)")
    parser.add_argument("--summary", action="store_true", help="only rewrite the tables and the plot from the curves")
    args = parser.parse_args()
    if not args.summary:
        budgets = {k: int(v) for k, v in (item.split("=") for item in args.budgets.split(",") if item)}
        run_cells(args.code, args.label, args.strategies.split(","), args.seeds, args.budget, budgets)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    summary()


if __name__ == "__main__":
    main()
