"""Training NB201 architectures on scikit-learn's digits: what it costs, whether it ranks, early stopping.

Four parts, each writing `benchmarks/results/training_PART.csv`; `summary` writes `training.md` from them.

- `cost`: seconds per epoch and per trained architecture with the default recipe (`Recipe()`: 20 epochs,
  500 training samples, native 8 x 8 input), with 1 and 2 threads, and at 16 x 16 for comparison; peak
  resident memory of the process. Three archs (fewest, median and most parameters among NB201's), each
  in a fresh process.
- `ranking`: at least 60 NB201 archs spanning the table's accuracy range (half at evenly spaced ranks of
  the 200-epoch CIFAR-10 validation accuracy, half nearest to evenly spaced accuracy values), each
  trained with seeds 0 and 1: Kendall tau between the seeds (the noise floor), between digits accuracy
  and the table, and the spread of the accuracies. Two worker processes, 1 thread each.
- `halving`: the same search (NB201, accuracy:max,latency@raspi4:min, random strategy, default recipe)
  with full training (24 trials) and with `--pruner pareto-halving` (72 trials, eta 3), seeds 0-2, the two
  arms side by side (one process each). Compute = epochs trained. Hypervolume of the front of fully
  trained trials (reference: accuracy 0 %, the worst raspi4 latency of the space), as compute grows.
- `demo`: the README's training demo, timed as a user runs it (fresh process, no data directory).

    python benchmarks/training.py cost ranking halving demo summary   # everything, ~1.5 h here
    python benchmarks/training.py ranking --archs 20                  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(os.environ.get("NAS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
ACCURACY_TABLE = SHARED / "nb201" / "accuracy_200ep.csv.gz"
DEMO = ["search", "--space", "nb201", "--accuracy", "train:digits", "--objectives", "accuracy:max,latency@raspi4:min", "--budget", "40"]


def _need_table() -> pd.DataFrame:
    if not ACCURACY_TABLE.is_file():
        sys.exit(f"needs the NB201 accuracy table at {ACCURACY_TABLE} (set NAS_DATA_DIR)")
    return pd.read_csv(ACCURACY_TABLE)


# --- one training in this process (children run this) ------------------------------------------------
def train_one(arch: str, seed: int, recipe: dict, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from nas.accuracy.training import Recipe, load_prepared, train_arch
    from nas.spaces import get_space

    space = get_space("nb201")
    r = Recipe.from_mapping({**recipe, "threads": threads})
    data = load_prepared("digits", r)
    start = time.perf_counter()
    result = train_arch(space, space.from_string(arch), data, r, seed=seed)
    wall = time.perf_counter() - start
    return {
        "arch": arch, "seed": seed, "threads": threads, "accuracy": result.accuracy, "test_accuracy": result.test_accuracy,
        "epochs": result.epochs, "train_seconds": result.seconds, "seconds_per_epoch": result.seconds / result.epochs, "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "curve": [round(c.val_accuracy, 3) for c in result.curve],
    }


def _child(args: argparse.Namespace) -> None:
    jobs = json.loads(Path(args.jobs).read_text())
    out = []
    for job in jobs:
        out.append(train_one(job["arch"], job["seed"], job.get("recipe", {}), job.get("threads", 1)))
        print(json.dumps({k: v for k, v in out[-1].items() if k != "curve"}), flush=True)
    Path(args.out).write_text(json.dumps(out))


def run_jobs(jobs: list[dict], workers: int) -> list[dict]:
    """Run training jobs in `workers` fresh processes (round-robin split), one thread each unless a job says."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for w in range(workers):
            mine = jobs[w::workers]
            if not mine:
                continue
            jpath, opath = Path(tmp) / f"jobs{w}.json", Path(tmp) / f"out{w}.json"
            jpath.write_text(json.dumps(mine))
            env = {**os.environ, "OMP_NUM_THREADS": str(max(j.get("threads", 1) for j in mine))}
            procs.append((subprocess.Popen([sys.executable, __file__, "_child", "--jobs", str(jpath), "--out", str(opath)], env=env), opath))
        rows: list[dict] = []
        for proc, opath in procs:
            if proc.wait() != 0:
                raise SystemExit(f"training worker failed ({proc.returncode})")
            rows += json.loads(opath.read_text())
    return rows


# --- cost --------------------------------------------------------------------------------------------
def cost() -> pd.DataFrame:
    table = _need_table().sort_values("cifar10_params_M").reset_index(drop=True)
    picks = {"fewest params": table.arch_str.iloc[0], "median params": table.arch_str.iloc[len(table) // 2], "most params": table.arch_str.iloc[-1]}
    rows = []
    for label, arch in picks.items():
        for threads, recipe in ((1, {}), (2, {}), (1, {"input_size": 16})):
            (row,) = run_jobs([{"arch": arch, "seed": 0, "recipe": recipe, "threads": threads}], 1)
            row.update(which=label, input_size=recipe.get("input_size", 8), params_M=float(table.loc[table.arch_str == arch, "cifar10_params_M"].iloc[0]))
            row.pop("curve")
            rows.append(row)
            print(label, threads, row["input_size"], round(row["seconds_per_epoch"], 3), round(row["peak_rss_mb"]), flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(RESULTS / "training_cost.csv", index=False)
    return frame


# --- ranking -----------------------------------------------------------------------------------------
def spanning_archs(table: pd.DataFrame, n: int) -> list[str]:
    """`n` archs over the table's accuracy range: half at evenly spaced ranks, half nearest to evenly
    spaced accuracy values (so the sparse low-accuracy tail is represented too); duplicates replaced by
    the next rank."""
    t = table.sort_values("cifar10_val_acc_mean").reset_index(drop=True)
    acc = t.cifar10_val_acc_mean.to_numpy()
    picked: list[int] = []
    for r in np.linspace(0, len(t) - 1, n // 2).round().astype(int):
        picked.append(int(r))
    for v in np.linspace(acc.min(), acc.max(), n - n // 2):
        i = int(np.abs(acc - v).argmin())
        while i in picked:
            i = i + 1 if i + 1 < len(t) else i - 1
        picked.append(i)
    return [t.arch_str[i] for i in dict.fromkeys(picked)]


def ranking(n_archs: int) -> pd.DataFrame:
    table = _need_table()
    archs = spanning_archs(table, n_archs)
    jobs = [{"arch": a, "seed": s} for a in archs for s in (0, 1)]
    rows = run_jobs(jobs, 2)
    frame = pd.DataFrame(rows)
    frame["table_accuracy"] = frame["arch"].map(table.set_index("arch_str")["cifar10_val_acc_mean"])
    frame["curve"] = frame["curve"].map(json.dumps)
    frame.to_csv(RESULTS / "training_ranking.csv", index=False)
    return frame


# --- halving -----------------------------------------------------------------------------------------
def _search_arm(arm: str, seed: int, budget: int, workdir: str) -> None:
    """One arm of one seed, in this process; writes `workdir/ARM_SEED.csv` (trial order, compute, HV)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.trial import TrialState

    from nas.pareto import hypervolume
    from nas.run import Run, RunConfig

    config = RunConfig(
        space="nb201", objectives=["accuracy:max", "latency@raspi4:min"], accuracy="train:digits", strategy="random", budget=budget, seed=seed,
        pruner="pareto-halving" if arm == "pareto-halving" else "none", data_dir=str(SHARED),
    )
    run = Run.open(Path(workdir) / f"{arm}_{seed}", config)
    start = time.perf_counter()
    run.search()
    wall = time.perf_counter() - start
    ref = run.reference
    rows, compute, done = [], 0, []
    for t in sorted(run.study.get_trials(deepcopy=False), key=lambda t: t.number):
        compute += len(t.intermediate_values)
        if t.state == TrialState.COMPLETE:
            done.append([t.values[0], t.values[1]])
        F = np.array(done, dtype=float).reshape(-1, 2) * np.array([-1.0, 1.0])
        hv = hypervolume(F, ref) if len(F) else 0.0
        rows.append({"arm": arm, "seed": seed, "trial": t.number, "state": t.state.name, "epochs": len(t.intermediate_values), "compute": compute, "hv": hv})
    frame = pd.DataFrame(rows)
    frame["wall_seconds"] = wall
    frame.to_csv(Path(workdir) / f"{arm}_{seed}.csv", index=False)


def halving(seeds: list[int], full_budget: int, factor: int) -> pd.DataFrame:
    frames = []
    with tempfile.TemporaryDirectory() as workdir:
        for seed in seeds:
            procs = [
                subprocess.Popen([sys.executable, __file__, "_arm", "--arm", arm, "--seed", str(seed), "--budget", str(budget), "--workdir", workdir], env={**os.environ, "OMP_NUM_THREADS": "1"})
                for arm, budget in (("full", full_budget), ("pareto-halving", full_budget * factor))
            ]
            if any(p.wait() != 0 for p in procs):
                raise SystemExit("a search arm failed")
            for arm in ("full", "pareto-halving"):
                frames.append(pd.read_csv(Path(workdir) / f"{arm}_{seed}.csv"))
            print("seed", seed, "done", flush=True)
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(RESULTS / "training_halving.csv", index=False)
    return frame


# --- demo --------------------------------------------------------------------------------------------
def demo() -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NAS_DATA_DIR": "none"}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nas.cli", *DEMO, "--out", str(Path(tmp) / "own"), "--no-progress"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        front = pd.read_csv(Path(tmp) / "own" / "pareto.csv")
    print(done.stdout)
    frame = pd.DataFrame([{"command": "nas " + " ".join(DEMO) + " --out runs/own", "wall_seconds": wall, "front_size": len(front), "best_accuracy": front["accuracy"].max()}])
    frame.to_csv(RESULTS / "training_demo.csv", index=False)
    return frame


# --- summary -----------------------------------------------------------------------------------------
def _tau(a: pd.Series, b: pd.Series) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b)[0])


def summary() -> str:
    lines = ["# Training NB201 architectures on digits (`benchmarks/training.py`)", ""]
    path = RESULTS / "training_cost.csv"
    if path.is_file():
        c = pd.read_csv(path)
        lines += ["## Cost (default recipe: 20 epochs, 500 training samples, 359 validation, batch 64)", "",
                  "| arch | params (M, CIFAR) | input | threads | s / epoch | s / arch (train) | peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
        for r in c.itertuples():
            lines.append(f"| {r.which} | {r.params_M:.3f} | {r.input_size}x{r.input_size} | {r.threads} | {r.seconds_per_epoch:.3f} | {r.train_seconds:.1f} | {r.peak_rss_mb:.0f} |")
        lines.append("")
    path = RESULTS / "training_ranking.csv"
    if path.is_file():
        r = pd.read_csv(path)
        p = r.pivot_table(index=["arch", "table_accuracy"], columns="seed", values="accuracy").reset_index()
        mean = (p[0] + p[1]) / 2
        top = p[p.table_accuracy >= p.table_accuracy.quantile(0.5)]
        q = mean.quantile([0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
        lines += [
            f"## Does it rank? {len(p)} NB201 archs spanning the table's range, seeds 0 and 1", "",
            "| | Kendall tau |", "|---|---|",
            f"| seed 0 vs seed 1 (noise floor) | {_tau(p[0], p[1]):.3f} |",
            f"| digits (mean of seeds) vs NB201 200-epoch CIFAR-10 validation | {_tau(mean, p.table_accuracy):.3f} |",
            f"| seed 0 vs seed 1, the upper half by table accuracy ({len(top)} archs, table >= {top.table_accuracy.min():.1f} %) | {_tau(top[0], top[1]):.3f} |",
            f"| digits vs table, the upper half | {_tau((top[0] + top[1]) / 2, top.table_accuracy):.3f} |", "",
            "Validation accuracy on digits (%, mean of seeds): " + ", ".join(f"{k} {v:.1f}" for k, v in zip(["min", "p10", "p25", "median", "p75", "p90", "max"], q))
            + f"; mean |seed 0 - seed 1| = {np.abs(p[0] - p[1]).mean():.2f} points.", "",
        ]
    path = RESULTS / "training_halving.csv"
    if path.is_file():
        h = pd.read_csv(path)
        lines += ["## Early stopping: pareto-halving vs full training", "",
                  "Hypervolume of the front of fully trained trials (accuracy x raspi4 latency; reference accuracy 0 %, worst latency of the space). "
                  "Compute = epochs trained.", "",
                  "| seed | full: trials, compute, HV | pareto-halving: trials (pruned), compute, HV | pareto-halving HV at 1/3 of full's compute | compute pareto-halving needed to reach full's HV |",
                  "|---|---|---|---|---|"]
        for seed, g in h.groupby("seed"):
            full, ph = g[g.arm == "full"], g[g.arm == "pareto-halving"]
            C, hv_full = int(full.compute.max()), float(full.hv.iloc[-1])
            at_third = ph[ph.compute <= C / 3].hv.max() if (ph.compute <= C / 3).any() else 0.0
            reach = ph[ph.hv >= hv_full - 1e-9].compute.min()
            reach_text = f"{int(reach)} ({reach / C:.2f} of full)" if pd.notna(reach) else f"not reached (ends at {ph.hv.iloc[-1] / hv_full:.3f} of full's HV)"
            lines.append(
                f"| {seed} | {len(full)}, {C}, {hv_full:.1f} | {len(ph)} ({int((ph.state == 'PRUNED').sum())}), {int(ph.compute.max())}, {ph.hv.iloc[-1]:.1f} | "
                f"{at_third:.1f} ({at_third / hv_full:.3f} of full) | {reach_text} |"
            )
        lines.append("")
    path = RESULTS / "training_demo.csv"
    if path.is_file():
        d = pd.read_csv(path).iloc[0]
        lines += ["## End to end", "", f"`{d.command}` on a fresh machine (no data directory: raspi4 latency from the shipped LUT): "
                  f"{d.wall_seconds / 60:.1f} min, front of {d.front_size}, best validation accuracy {d.best_accuracy:.1f} %.", ""]
    text = "\n".join(lines)
    (RESULTS / "training.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", choices=["cost", "ranking", "halving", "demo", "summary", "_child", "_arm"])
    parser.add_argument("--archs", type=int, default=64, help="archs in the ranking part")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the halving part")
    parser.add_argument("--full-budget", type=int, default=24, help="trials of the full-training arm")
    parser.add_argument("--factor", type=int, default=3, help="the pareto-halving arm gets this many times the trials")
    parser.add_argument("--jobs"), parser.add_argument("--out"), parser.add_argument("--arm"), parser.add_argument("--seed", type=int)
    parser.add_argument("--budget", type=int), parser.add_argument("--workdir")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for part in args.parts:
        if part == "_child":
            _child(args)
        elif part == "_arm":
            _search_arm(args.arm, args.seed, args.budget, args.workdir)
        elif part == "cost":
            cost()
        elif part == "ranking":
            ranking(args.archs)
        elif part == "halving":
            halving(args.seeds, args.full_budget, args.factor)
        elif part == "demo":
            demo()
        elif part == "summary":
            print(summary())


if __name__ == "__main__":
    main()
