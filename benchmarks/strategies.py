"""Strategies side by side on NB201: hypervolume gap to the TRUE front per query, in one process.

Cases: CIFAR-10 validation accuracy x measured latency on six devices, one 3-objective case (accuracy x
latency@pixel3 x params) and one constrained case (accuracy x latency@raspi4, latency@pixel3 <= 10).
Every strategy runs `max(budgets)` queries per seed; the gap at a smaller budget is read off the prefix
of the same run (no sampler here is told the budget, so a prefix IS a shorter run). Only accuracy
queries count: our strategies know each candidate's latency/params before evaluating it (that is the
point); Optuna's samplers are black-box. Reference point: the worst value of each objective over the
whole table. Seeds run in `--workers` processes.

    python benchmarks/strategies.py                         # the full comparison (long: BO/GP are slow)
    # the committed results/strategies.*: --strategies random,evolution,aging,rl,local,bo,optuna-nsga2,optuna-tpe,optuna-gp
    #     --limits bo=10:100,optuna-gp=5:100 (26 min); results/strategies_bo300.*: the 2-objective cases, --strategies bo
    #     --limits bo=3:300 --budgets 100,300 --out benchmarks/results/strategies_bo300; results/strategies_ehvi3d.*:
    #     --cases 3obj --strategies bo,bo-parego,optuna-gp,optuna-tpe --seeds 5 --budgets 100,300
    #     --limits bo=5:300,bo-parego=5:300,optuna-gp=5:100 (each ~5 min on 16 cores); results/strategies_bananas.*: the six
    #     devices, --strategies bananas --seeds 3 --budgets 50,100 --limits bananas=3:100 --workers 1 (15 min)
    python benchmarks/strategies.py --cases raspi4 --strategies random,evolution --seeds 2   # quick
Writes benchmarks/results/strategies.csv, strategies_curves.csv, strategies.md and strategies.png.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nas import tables
from nas.cost.counts import CountProvider
from nas.objectives import ObjectiveSet
from nas.pareto import hypervolume, pareto_mask
from nas.spaces import get_space
from nas.strategies import CONSTRAINTS_ATTR, SearchContext, make_strategy, space_distributions

RESULTS = Path(__file__).resolve().parent / "results"
DEVICES = ["raspi4", "pixel3", "eyeriss", "fpga", "gold_6226", "titan_rtx_1"]
STRATEGIES = ["random", "evolution", "aging", "rl", "local", "bo", "bananas", "optuna-nsga2", "optuna-tpe", "optuna-gp"]
#: Strategies whose per-trial cost (surrogate fits) limits them to the budgets/seeds given by --slow-*.
SLOW = {"bo", "bananas", "optuna-gp"}
OPTIONS = {"optuna-gp": {"n_startup_trials": 10}}
#: Labelled variants of a strategy (label -> (registered strategy, its options)), so a change and what it
#: replaced run side by side in one process: `--strategies bo,bo-parego`.
VARIANTS: dict[str, tuple[str, dict]] = {
    "bo-parego": ("bo", {"exact_3d": False, "hunt_below": 0.0}),  # bo before the 3-D EHVI: ParEGO on 3 objectives
    "bo-exact": ("bo", {"hunt_below": 0.0}),  # 3-D EHVI without the late switch to P(non-dominated)
    "bo-hunt1e-3": ("bo", {"hunt_below": 1e-3}),  # the switch to P(non-dominated) earlier than the default 1e-4
    "bo-hunt1e-2": ("bo", {"hunt_below": 1e-2}),
}


@dataclass(frozen=True)
class Case:
    name: str
    objectives: str
    constraints: tuple[str, ...] = ()


def all_cases() -> dict[str, Case]:
    cases = {d: Case(d, f"accuracy:max,latency@{d}:min") for d in DEVICES}
    cases["3obj"] = Case("3obj", "accuracy:max,latency@pixel3:min,params:min")
    cases["constrained"] = Case("constrained", "accuracy:max,latency@raspi4:min", ("latency@pixel3<=10",))
    return cases


_TABLE: pd.DataFrame | None = None


def table(data_dir: str | None) -> pd.DataFrame:
    """The NB201 table with every device and counted params (one row per arch, in enumerate() order)."""
    global _TABLE
    if _TABLE is None:
        space = get_space("nb201")
        frame = tables.nb201(dataset="cifar10", devices="all", data_dir=data_dir)
        archs = space.enumerate()
        order = pd.Index(frame["arch"]).get_indexer([space.to_string(a) for a in archs])
        frame = frame.iloc[order].reset_index(drop=True)
        frame["params"] = CountProvider("params", space, dataset="cifar10").evaluate(archs)
        _TABLE = frame
    return _TABLE


def truth(case: Case, data_dir: str | None) -> dict:
    frame = table(data_dir)
    objset = ObjectiveSet.parse(case.objectives, list(case.constraints))
    F = objset.to_minimisation(frame[objset.names].to_numpy(dtype=float))
    G = objset.violations({m: frame[m].to_numpy(dtype=float) for m in objset.metrics})
    feasible = (G <= 0).all(axis=1)
    ref = F.max(axis=0)
    mask = np.zeros(len(F), dtype=bool)
    mask[np.flatnonzero(feasible)[pareto_mask(F[feasible])]] = True
    return {"objset": objset, "F": F, "G": G, "feasible": feasible, "ref": ref, "hv": hypervolume(F[mask], ref), "pareto": set(np.flatnonzero(mask).tolist())}


def run_one(job: tuple[Case, str, int, list[int], str | None]) -> tuple[list[dict], list[dict]]:
    case, strategy, seed, budgets, data_dir = job
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space("nb201")
    frame = table(data_dir)
    t = truth(case, data_dir)
    objset = t["objset"]
    row_of = {a: i for i, a in enumerate(space.enumerate())}
    known_metrics = tuple(m for m in objset.metrics if m != "accuracy")

    def known(archs: Sequence) -> dict[str, np.ndarray]:
        rows = [row_of[a] for a in archs]
        return {m: frame[m].to_numpy(dtype=float)[rows] for m in known_metrics}

    def surrogate(name: str, encoding: str | None, options: dict) -> object:
        from nas.accuracy.predictors import make_predictor

        return make_predictor(name, space, encoding, **options)

    context = SearchContext(objset, known_metrics, known, None, surrogate)
    base, options = VARIANTS.get(strategy, (strategy, OPTIONS.get(strategy, {})))
    sampler = make_strategy(base, space, seed=seed, constrained=bool(case.constraints), context=context, **options)
    study = optuna.create_study(directions=["minimize"] * len(objset.names), sampler=sampler)
    dists = space_distributions(space)
    rows: list[int] = []
    gaps: list[float] = []
    overhead = 0.0
    for _ in range(max(budgets)):
        t0 = time.perf_counter()
        trial = study.ask(fixed_distributions=dists)
        overhead += time.perf_counter() - t0
        r = row_of[space.validate(trial.params)]
        rows.append(r)
        if case.constraints:
            trial.set_user_attr(CONSTRAINTS_ATTR, t["G"][r].tolist())
        t0 = time.perf_counter()
        study.tell(trial, t["F"][r].tolist())
        overhead += time.perf_counter() - t0
        found = np.array([x for x in rows if t["feasible"][x]], dtype=np.int64)
        P = t["F"][found]
        hv = hypervolume(P[pareto_mask(P)], t["ref"]) if len(P) else 0.0
        gaps.append(1 - hv / t["hv"])
    gaps_arr = np.array(gaps)
    reach = np.flatnonzero(gaps_arr <= 0.01)
    out = []
    for b in budgets:
        hit = len(t["pareto"] & set(rows[:b]))
        out.append(
            {
                "case": case.name,
                "strategy": strategy,
                "seed": seed,
                "budget": b,
                "hv_gap": gaps_arr[b - 1],
                "hv_ratio": 1 - gaps_arr[b - 1],
                "pareto_found": hit,
                "pareto_total": len(t["pareto"]),
                "share_found": hit / len(t["pareto"]),
                "unique_archs": len(set(rows[:b])),
                "queries_to_gap_0.01": int(reach[0] + 1) if len(reach) and reach[0] < b else np.nan,
                "ms_per_trial": 1000 * overhead / max(budgets),
            }
        )
    curve = [{"case": case.name, "strategy": strategy, "seed": seed, "queries": q + 1, "hv_gap": g} for q, g in enumerate(gaps)]
    return out, curve


def compared(df: pd.DataFrame, before: pd.DataFrame, label: str) -> str:
    """Median HV gap and share of the true Pareto set per case, budget and strategy, this run beside an
    earlier run's rows (`before`, e.g. the committed results of older code), for the strategies and
    seeds both ran: so a change of the strategies' code shows where search quality moved."""
    keys = ["case", "budget", "strategy", "seed"]
    both = df.merge(before, on=keys, suffixes=("", "_before"))
    if both.empty:
        return f"No case, budget, strategy and seed in common with {label}.\n"
    g = both.groupby(["case", "budget", "strategy"], sort=False)
    s = g.agg(seeds=("seed", "nunique"), gap_before=("hv_gap_before", "median"), gap=("hv_gap", "median"),
              share_before=("share_found_before", "median"), share=("share_found", "median")).reset_index()
    worse = s[(s.gap > s.gap_before * 1.1 + 1e-4) | (s.share < s.share_before - 0.05)]
    lines = [f"# This run beside {label}", "",
             "Same cases, budgets, strategies and seeds; medians over those seeds. `worse` marks a gap more than 10 % (+1e-4) "
             "above the earlier run's or a share of the true Pareto set more than 0.05 below it.", "",
             "| case | budget | strategy | seeds | HV gap before | HV gap now | share before | share now | worse |", "|---|---|---|---|---|---|---|---|---|"]
    for r in s.itertuples():
        flag = "yes" if r.Index in worse.index else ""
        lines.append(f"| {r.case} | {r.budget} | {r.strategy} | {r.seeds} | {r.gap_before:.4f} | {r.gap:.4f} | {r.share_before:.3f} | {r.share:.3f} | {flag} |")
    lines += ["", f"{len(worse)} of {len(s)} rows worse.", ""]
    return "\n".join(lines)


def summarise(df: pd.DataFrame, title: str) -> str:
    g = df.groupby(["case", "budget", "strategy"])
    s = g.agg(
        gap=("hv_gap", "median"),
        q1=("hv_gap", lambda x: x.quantile(0.25)),
        q3=("hv_gap", lambda x: x.quantile(0.75)),
        share=("share_found", "median"),
        reach=("queries_to_gap_0.01", "median"),
        ms=("ms_per_trial", "median"),
        seeds=("seed", "nunique"),
    ).reset_index()
    lines = [
        f"# {title}",
        "",
        "Median over seeds of the HV gap (1 - HV found / HV of the true front; reference point = worst value of",
        "each objective over the whole table), its IQR, the share of the true Pareto set found, the median",
        "number of queries needed to reach gap <= 0.01 (blank: not reached by that budget in most seeds) and",
        "the sampler's overhead per trial. Only accuracy queries are counted.",
        "",
    ]
    for (case, budget), part in s.groupby(["case", "budget"], sort=False):
        n_true = int(df[df.case == case].pareto_total.iloc[0])
        lines += [f"## {case}, {budget} queries (true Pareto set: {n_true})", ""]
        lines += ["| strategy | HV gap [IQR] | share of true front | queries to gap 0.01 | ms/trial | seeds |", "|---|---|---|---|---|---|"]
        for r in part.sort_values("gap").itertuples():
            reach = "" if np.isnan(r.reach) else f"{r.reach:.0f}"
            lines.append(f"| {r.strategy} | {r.gap:.4f} [{r.q1:.4f}, {r.q3:.4f}] | {r.share:.3f} | {reach} | {r.ms:.1f} | {r.seeds} |")
        lines.append("")
    return "\n".join(lines)


def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(curves["case"]))
    cols = min(4, len(cases))
    rows = (len(cases) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, case in zip(axes.ravel(), cases):
        part = curves[curves.case == case]
        for strategy, sub in part.groupby("strategy"):
            med = sub.groupby("queries")["hv_gap"].median()
            ax.plot(med.index, np.maximum(med.to_numpy(), 1e-5), label=strategy, lw=1.2)
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_title(case)
        ax.set_xlabel("queries")
        ax.set_ylabel("median HV gap")
        ax.grid(alpha=0.3, which="both")
    for ax in axes.ravel()[len(cases) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_limits(text: str) -> dict[str, tuple[int, int]]:
    """'bo=10:300,bananas=3:100' -> {'bo': (10, 300), 'bananas': (3, 100)}."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            name, spec = item.split("=")
            seeds, budget = spec.split(":")
            out[name] = (int(seeds), int(budget))
        except ValueError:
            raise SystemExit(f"bad --limits item {item!r}; expected STRATEGY=SEEDS:BUDGET, e.g. bo=10:300") from None
    return out


def goals(df: pd.DataFrame) -> str:
    """The issue's two goals, read off the results: ours vs Optuna at 100 queries, share found at 300."""
    lines = ["## Goals", ""]
    med = df.groupby(["case", "budget", "strategy"])["hv_gap"].median()
    both = df.strategy.str.startswith("optuna-").any() and (~df.strategy.str.startswith("optuna-")).any()
    at100 = med.xs(100, level="budget") if 100 in df.budget.values and both else None
    if at100 is not None:
        lines += [
            "At 100 queries: best median gap of our strategies vs the best Optuna sampler's (goal: at most half).",
            "",
            "| case | ours (best) | gap | Optuna (best) | gap | ratio | at most half |",
            "|---|---|---|---|---|---|---|",
        ]
        met = 0
        cases = [c for c in DEVICES if c in at100.index.get_level_values(0)]
        for case in cases:
            part = at100.loc[case]
            ours = part[[s for s in part.index if not s.startswith("optuna-") and s != "random"]]
            theirs = part[[s for s in part.index if s.startswith("optuna-")]]
            if ours.empty or theirs.empty:
                continue
            ratio = ours.min() / theirs.min() if theirs.min() > 0 else np.inf
            met += ratio <= 0.5
            lines.append(f"| {case} | {ours.idxmin()} | {ours.min():.4f} | {theirs.idxmin()} | {theirs.min():.4f} | {ratio:.2f} | {'yes' if ratio <= 0.5 else 'no'} |")
        lines += ["", f"Met on {met} of {len(cases)} devices (goal: 5 of 6).", ""]
    if 300 in df.budget.values:
        share = df[df.budget == 300].groupby(["case", "strategy"])["share_found"].median()
        lines += ["At 300 queries: median share of the true Pareto set found by the best strategy (goal: >= 30 %).", ""]
        lines += ["| case | best strategy | share | best Optuna | share |", "|---|---|---|---|---|"]
        for case in dict.fromkeys(df.case):
            if case not in share.index.get_level_values(0):
                continue
            part = share.loc[case]
            theirs = part[[s for s in part.index if s.startswith("optuna-")]]
            o = f"{theirs.idxmax()} | {theirs.max():.3f}" if len(theirs) else "- | -"
            lines.append(f"| {case} | {part.idxmax()} | {part.max():.3f} | {o} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default_out: str = "strategies", title: str = "Strategies on NB201 vs the true front") -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(all_cases()))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--budgets", default="50,100,300")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--slow-budget", type=int, default=100, help="largest budget for the slow strategies (BO, BANANAS, Optuna GP)")
    parser.add_argument("--slow-seeds", type=int, default=3)
    parser.add_argument(
        "--limits",
        default="",
        help="per-strategy seeds and largest budget, e.g. 'bo=10:300,bananas=3:100' (overrides --slow-* for those)",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / default_out))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--compare", type=Path, help="an earlier run's CSV (e.g. a committed strategies.csv at an older commit): "
                        "also write OUT_compared.md, this run beside it")
    parser.add_argument("--compare-label", default="the earlier run")
    args = parser.parse_args(argv)
    tables.require_data_dir(args.data_dir, needed="the measured NB201 latency table (nb201/latency_ms.csv.gz)")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    cases = all_cases()
    unknown = [c for c in args.cases.split(",") if c not in cases]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {list(cases)}")
    limits = parse_limits(args.limits)
    jobs = []
    for name in args.cases.split(","):
        for strategy in args.strategies.split(","):
            slow = VARIANTS.get(strategy, (strategy,))[0] in SLOW
            n_seeds, max_budget = limits.get(strategy, (min(args.seeds, args.slow_seeds), args.slow_budget) if slow else (args.seeds, max(budgets)))
            b = [x for x in budgets if x <= max_budget]
            for seed in range(n_seeds):
                if b:
                    jobs.append((cases[name], strategy, seed, b, args.data_dir))
    # slow ones first, so the pool stays busy; seed-major within, so strategies compared side by side finish together
    jobs.sort(key=lambda j: (VARIANTS.get(j[1], (j[1],))[0] not in SLOW, j[2]))
    rows, curves = [], []
    start = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, (res, curve) in enumerate(pool.map(run_one, jobs), start=1):
            rows.extend(res)
            curves.extend(curve)
            if i % 10 == 0 or i == len(jobs):
                print(f"{i}/{len(jobs)} runs ({time.time() - start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    curves_df = pd.DataFrame(curves)
    curves_df.to_csv(out.parent / f"{out.name}_curves.csv.gz", index=False)
    text = summarise(df, title) + "\n" + goals(df)
    out.with_suffix(".md").write_text(text + "\n")
    if args.compare:
        (out.parent / f"{out.name}_compared.md").write_text(compared(df, pd.read_csv(args.compare), args.compare_label))
    if not args.no_plot:
        plot(curves_df, out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
