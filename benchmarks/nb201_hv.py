"""Hypervolume of strategies vs the TRUE NB201 front, on measured device latency.

For each device: the true front of the whole table (CIFAR-10 200-epoch validation accuracy x measured
latency), then each strategy for `max(budgets)` queries per seed, side by side in one process (seeds run
in two worker processes). The HV at a smaller budget is read off the prefix of the same run: no sampler
here knows the budget, so the first 100 trials of a 300-trial run are exactly a 100-trial run.

Reference point: worst accuracy and worst latency of the whole table. Writes
`benchmarks/results/nb201_hv.csv` and `benchmarks/results/nb201_hv.md`.

    python benchmarks/nb201_hv.py                       # full: 6 devices, budgets 100/300, 10 seeds
    python benchmarks/nb201_hv.py --seeds 2 --devices raspi4 --strategies random,evolution   # quick
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nas import tables
from nas.objectives import ObjectiveSet
from nas.pareto import hypervolume, pareto_mask
from nas.spaces import get_space
from nas.strategies import make_strategy, space_distributions

DEVICES = ["raspi4", "pixel3", "eyeriss", "fpga", "gold_6226", "titan_rtx_1"]
STRATEGIES = ["random", "evolution", "optuna-nsga2", "optuna-tpe", "optuna-gp"]
RESULTS = Path(__file__).resolve().parent / "results"

_TABLE: pd.DataFrame | None = None


def _table(data_dir: str | None) -> pd.DataFrame:
    global _TABLE
    if _TABLE is None:
        _TABLE = tables.nb201(dataset="cifar10", devices=DEVICES, data_dir=data_dir)
    return _TABLE


def true_front(device: str, data_dir: str | None) -> dict:
    frame = _table(data_dir)
    objset = ObjectiveSet.parse(f"accuracy:max,latency@{device}:min")
    F = objset.to_minimisation(frame[objset.names].to_numpy(dtype=float))
    ref = F.max(axis=0)
    mask = pareto_mask(F)
    return {"F": F, "ref": ref, "hv": hypervolume(F[mask], ref), "pareto": set(np.flatnonzero(mask).tolist())}


def run_one(args: tuple[str, str, int, list[int], str | None]) -> list[dict]:
    device, strategy, seed, budgets, data_dir = args
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space("nb201")
    frame = _table(data_dir)
    truth = true_front(device, data_dir)
    row_of = {a: i for i, a in enumerate(frame["arch"])}
    options = {"n_startup_trials": 10} if strategy == "optuna-gp" else {}
    sampler = make_strategy(strategy, space, seed=seed, **options)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    dists = space_distributions(space)
    rows_seen: list[int] = []
    t_sampler = 0.0
    for _ in range(max(budgets)):
        t0 = time.perf_counter()
        trial = study.ask(fixed_distributions=dists)
        t_sampler += time.perf_counter() - t0
        row = row_of[space.to_string(space.validate(trial.params))]
        rows_seen.append(row)
        t0 = time.perf_counter()
        study.tell(trial, truth["F"][row].tolist())
        t_sampler += time.perf_counter() - t0
    out = []
    for b in budgets:
        found = np.array(rows_seen[:b])
        F = truth["F"][found]
        hv = hypervolume(F[pareto_mask(F)], truth["ref"])
        hit = len(truth["pareto"] & set(found.tolist()))
        out.append(
            {
                "device": device,
                "strategy": strategy,
                "seed": seed,
                "budget": b,
                "hv": hv,
                "hv_true": truth["hv"],
                "hv_ratio": hv / truth["hv"],
                "hv_gap": 1 - hv / truth["hv"],
                "pareto_found": hit,
                "pareto_total": len(truth["pareto"]),
                "share_found": hit / len(truth["pareto"]),
                "unique_archs": len(set(found.tolist())),
                "ms_per_trial": 1000 * t_sampler / max(budgets),
            }
        )
    return out


def summarise(df: pd.DataFrame) -> str:
    g = df.groupby(["device", "budget", "strategy"])
    summary = g.agg(
        hv_ratio=("hv_ratio", "median"),
        hv_gap=("hv_gap", "median"),
        gap_q1=("hv_gap", lambda s: s.quantile(0.25)),
        gap_q3=("hv_gap", lambda s: s.quantile(0.75)),
        share_found=("share_found", "median"),
        unique=("unique_archs", "median"),
        ms_per_trial=("ms_per_trial", "median"),
        seeds=("seed", "nunique"),
    ).reset_index()
    lines = [
        "# NB201 hypervolume vs the true front (CIFAR-10 val. accuracy x measured latency)",
        "",
        "Median over seeds; HV ratio = found / true (reference point: worst accuracy and worst latency of the",
        "whole table); gap = 1 - ratio (IQR in brackets); share = fraction of the true Pareto set found.",
        "Reproduce: `python benchmarks/nb201_hv.py`.",
        "",
    ]
    for (device, budget), part in summary.groupby(["device", "budget"]):
        n_true = int(df[(df.device == device)].pareto_total.iloc[0])
        lines += [f"## {device}, budget {budget} (true Pareto set: {n_true} archs)", ""]
        lines += ["| strategy | HV ratio | HV gap [IQR] | share of true front | unique archs | ms/trial | seeds |", "|---|---|---|---|---|---|---|"]
        for r in part.sort_values("hv_gap").itertuples():
            lines.append(
                f"| {r.strategy} | {r.hv_ratio:.4f} | {r.hv_gap:.4f} [{r.gap_q1:.4f}, {r.gap_q3:.4f}] | {r.share_found:.3f} | {r.unique:.0f} | {r.ms_per_trial:.1f} | {r.seeds} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default=",".join(DEVICES))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--budgets", default="100,300")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--gp-budget", type=int, default=100, help="GPSampler is slow per trial: run it only to this budget")
    parser.add_argument("--gp-seeds", type=int, default=10)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "nb201_hv"))
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    tables.require_data_dir(args.data_dir, needed="the measured NB201 latency table (nb201/latency_ms.csv.gz)")
    jobs = []
    for device in args.devices.split(","):
        for strategy in args.strategies.split(","):
            is_gp = strategy == "optuna-gp"
            b = [x for x in budgets if x <= args.gp_budget] if is_gp else budgets
            for seed in range(args.gp_seeds if is_gp else args.seeds):
                if b:
                    jobs.append((device, strategy, seed, b, args.data_dir))
    rows: list[dict] = []
    start = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, result in enumerate(pool.map(run_one, jobs), start=1):
            rows.extend(result)
            if i % 10 == 0 or i == len(jobs):
                print(f"{i}/{len(jobs)} runs done ({time.time() - start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    text = summarise(df)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
