"""Graph hypernetwork (GHN) on digits: does scoring NB201 cells with generated weights rank them like
training them, better than zero-cost proxies, and what does a search with it find?

Steps (one process, 1 thread):

1. `nas hypernet train --space nb201 --data digits` with its defaults (600 steps, 4 cells per step,
   networks of 8 channels and one cell per stage at 8 x 8, 500 training digits).
2. `--n-archs` (32) NB201 cells spanning the 200-epoch CIFAR-10 table: evenly spaced over its sorted
   validation accuracy (deterministic).
3. Each scored with the GHN (`ghn:PATH` provider, fresh, so the time per arch includes building the
   network and generating its weights), trained stand-alone from scratch on the same data view and
   network sizes with the project's training recipe (20 epochs SGD; seeds 0 and 1: their mutual Kendall
   tau is the noise floor), and scored by every zero-cost proxy of `nas.accuracy.zero_cost` (untrained
   network of the same sizes, 64 training digits).
4. Kendall tau of each score with the stand-alone accuracy (mean of seeds) and with the table.
5. Searches (`evolution`, `--budget`, objectives accuracy:max, params:min) with `ghn:PATH` and with the
   table's accuracy; the GHN run's front re-scored with the table; hypervolumes with the table run's
   reference point (worst table accuracy and params of the space).

Writes `benchmarks/results/ghn.csv` (per arch) and `benchmarks/results/ghn.md`.

    python benchmarks/ghn.py            # about 10-12 minutes here
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau

from nas import tables
from nas.accuracy.hypernet import GHNSettings, HypernetAccuracy, train_ghn
from nas.accuracy.training import Recipe, load_prepared, train_arch
from nas.accuracy.zero_cost import PROXIES, arch_proxies
from nas.pareto import hypervolume, pareto_mask
from nas.spaces import get_space
from nas.spaces.nb201 import NB201Space

RESULTS = Path(__file__).resolve().parent / "results"


def spanning_archs(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """`n` rows of the table evenly spaced over its sorted CIFAR-10 validation accuracy."""
    ordered = table.sort_values("cifar10_val_acc_mean", kind="stable")
    rows = ordered.iloc[np.linspace(0, len(ordered) - 1, n).round().astype(int)]
    return rows.drop_duplicates("arch_str")


def tau(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(kendalltau(a[ok], b[ok])[0])


def search_hv(ghn_dir: Path, data_dir: Path, table: pd.DataFrame, budget: int, seed: int, work: Path) -> dict[str, float]:
    """HV of the table search's front and of the GHN search's front re-scored with the table (same reference)."""
    from nas.run import Run, RunConfig

    space = get_space("nb201")
    acc = dict(zip(table["arch_str"], table["cifar10_val_acc_mean"]))
    base = {"space": "nb201", "objectives": ["accuracy:max", "params:min"], "strategy": "evolution", "budget": budget, "seed": seed, "data_dir": str(data_dir)}
    started = time.perf_counter()
    ghn_run = Run.open(work / f"ghn_{seed}", RunConfig(**base, accuracy=f"ghn:{ghn_dir}"))
    ghn_run.search()
    ghn_seconds = time.perf_counter() - started
    table_run = Run.open(work / f"table_{seed}", RunConfig(**base, accuracy="table"))
    table_run.search()
    ref = table_run.reference
    front = ghn_run.pareto()
    rescored = np.column_stack([-np.array([acc[space.to_string(space.from_string(a))] for a in front["arch"]]), front["params"].to_numpy()])
    table_front = table_run.pareto()
    table_points = np.column_stack([-table_front["accuracy"].to_numpy(), table_front["params"].to_numpy()])
    return {
        "seed": seed, "budget": budget, "ghn_search_seconds": round(ghn_seconds, 1),
        "hv_table_search": hypervolume(table_points, ref), "hv_ghn_search_rescored": hypervolume(rescored[pareto_mask(rescored)], ref),
        "ghn_front": len(front), "table_front": len(table_front), "reference": [float(r) for r in ref],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-archs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2, help="stand-alone training seeds")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--search-seeds", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="keep the GHN and runs here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_dir = tables.require_data_dir(args.data_dir, needed="nb201/accuracy_200ep.csv.gz")
    table = tables.load_nb201_accuracy_200ep(data_dir)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ghn_bench_"))
    space = get_space("nb201")
    settings = GHNSettings()
    ghn_dir = work / "ghn"
    manifest = train_ghn(space, "digits", ghn_dir, settings, steps=args.steps, seed=0)
    print(f"GHN: {manifest['steps']} steps in {manifest['seconds']:.0f} s, loss {manifest['training']}", flush=True)

    picks = spanning_archs(table, args.n_archs)
    archs = [space.from_string(s) for s in picks["arch_str"]]
    frame = pd.DataFrame({"arch": picks["arch_str"].to_numpy(), "table_accuracy": picks["cifar10_val_acc_mean"].to_numpy()})
    provider = HypernetAccuracy(space, ghn_dir)
    provider.evaluate(archs[:1])  # first call pays one-off start-up (allocator, kernels), not an arch's cost
    provider._cache.clear()
    provider.networks = type(provider.networks)(space, provider.ghn)
    started = time.perf_counter()
    frame["ghn_accuracy"] = provider.evaluate(archs)
    ms_per_arch = 1000 * (time.perf_counter() - started) / len(archs)
    print(f"GHN scoring: {ms_per_arch:.1f} ms per arch", flush=True)

    data = load_prepared("digits", settings.recipe())
    small = NB201Space("nb201", channels=settings.channels, cells_per_stage=settings.cells_per_stage)
    recipe = Recipe(max_train=settings.max_train, input_size=settings.input_size, threads=1)
    started = time.perf_counter()
    runs = np.array([[train_arch(small, a, data, recipe, seed=s).accuracy for a in archs] for s in range(args.seeds)])
    standalone_seconds = (time.perf_counter() - started) / runs.size
    for s in range(args.seeds):
        frame[f"standalone_seed{s}"] = runs[s]
    frame["standalone_accuracy"] = runs.mean(axis=0)
    print(f"stand-alone: {standalone_seconds:.1f} s per arch and seed", flush=True)

    x, y = data.train_x[:64], data.train_y[:64]
    started = time.perf_counter()
    proxies = pd.DataFrame([arch_proxies(small, a, x, y, PROXIES, seed=0, num_classes=10) for a in archs])
    proxy_ms = 1000 * (time.perf_counter() - started) / len(archs)
    for name in PROXIES:
        frame[f"zc_{name}"] = proxies[name].to_numpy()
    frame.to_csv(RESULTS / "ghn.csv", index=False)

    scores = {"ghn": frame["ghn_accuracy"]} | {f"zero_cost:{n}": frame[f"zc_{n}"] for n in PROXIES}
    if args.seeds > 1:
        scores["standalone seed 1 (noise floor)"] = frame["standalone_seed1"]
    rows = []
    for name, values in scores.items():
        v = values.to_numpy(dtype=float)
        against = frame["standalone_seed0"] if name.startswith("standalone") else frame["standalone_accuracy"]
        rows.append((name, tau(v, against.to_numpy()), tau(v, frame["table_accuracy"].to_numpy())))
    rows.append(("standalone (mean of seeds)", float("nan"), tau(frame["standalone_accuracy"].to_numpy(), frame["table_accuracy"].to_numpy())))

    searches = [search_hv(ghn_dir, data_dir, table, args.budget, s, work) for s in range(args.search_seeds)]
    print(json.dumps(searches), flush=True)
    write_md(frame, rows, searches, manifest, ms_per_arch, proxy_ms, standalone_seconds, args)


def write_md(frame: pd.DataFrame, rows: list, searches: list, manifest: dict, ms: float, proxy_ms: float, standalone_s: float, args: argparse.Namespace) -> None:
    sa = frame["standalone_accuracy"]
    g = frame["ghn_accuracy"]
    lines = [
        "# Graph hypernetwork on NB201 cells, digits (`benchmarks/ghn.py`)",
        "",
        f"GHN: {manifest['steps']} steps ({manifest['settings']['archs_per_step']} cells x {manifest['settings']['batch_size']} digits each) in "
        f"{manifest['seconds']:.0f} s; training loss {manifest['training']['first_loss']:.3f} -> {manifest['training']['last_loss']:.3f}; "
        f"{manifest['parameters']:,} parameters; networks of {manifest['network']['channels']} channels, {manifest['network']['cells_per_stage']} cell per stage, 8 x 8 inputs.",
        "",
        f"{len(frame)} cells evenly spaced over the NB201 200-epoch CIFAR-10 table's accuracy. Stand-alone: the same network sizes and data "
        f"view, 20 epochs SGD (the project's recipe), seeds 0..{args.seeds - 1}, {standalone_s:.1f} s per arch and seed. "
        f"Zero-cost proxies: untrained network of the same sizes, 64 training digits, {proxy_ms:.0f} ms per arch for all of them.",
        "",
        "## Kendall tau",
        "",
        "| score | vs stand-alone | vs table |",
        "|---|---|---|",
        *[f"| {name} | {'' if np.isnan(a) else f'{a:.3f}'} | {b:.3f} |" for name, a, b in rows],
        "",
        "(the noise-floor row is seed 1 against seed 0.)",
        "",
        f"Accuracy spread (%): stand-alone min {sa.min():.1f}, median {sa.median():.1f}, max {sa.max():.1f}; GHN min {g.min():.1f}, median {g.median():.1f}, max {g.max():.1f}.",
        "",
        f"## Cost: {ms:.1f} ms per GHN-scored architecture (uncached: build the network, generate its weights, run the 359 validation digits; 1 thread)",
        "",
        "## Search: evolution, objectives accuracy:max, params:min",
        "",
        "Hypervolume of the front in table accuracy (CIFAR-10, 200 epochs) x params, reference = the table run's (worst of the space).",
        "",
        "| seed | budget | HV table-accuracy search | HV ghn search, front re-scored with the table | ghn search seconds |",
        "|---|---|---|---|---|",
        *[f"| {s['seed']} | {s['budget']} | {s['hv_table_search']:.2f} | {s['hv_ghn_search_rescored']:.2f} | {s['ghn_search_seconds']} |" for s in searches],
        "",
        "## Against the issue's aims",
        "",
        f"- Kendall tau >= 0.5 against stand-alone: {'met' if rows[0][1] >= 0.5 else 'missed'} ({rows[0][1]:.3f}, short by {max(0.0, 0.5 - rows[0][1]):.3f}); "
        f"above every zero-cost proxy: {'yes' if all(rows[0][1] > r[1] for r in rows if r[0].startswith('zero_cost')) else 'no'} "
        f"(best proxy {max((r for r in rows if r[0].startswith('zero_cost')), key=lambda r: r[1])[0]} at {max(r[1] for r in rows if r[0].startswith('zero_cost')):.3f}).",
        f"- Under 50 ms per scored architecture: {'met' if ms < 50 else 'missed'} ({ms:.1f} ms).",
        *([f"- The stand-alone reference itself does not rank these cells here: its two seeds agree at tau {rows[-2][1]:.3f}, so a score is unlikely to "
           "reach 0.5 against it; the accuracies bunch near the top (see the spread above)."] if args.seeds > 1 and rows[-2][1] < 0.5 else []),
        "- Pilots before this run (23 of these cells, stand-alone only): shorter training (2-5 epochs, 100-500 digits, 4-8 channels) spread "
        "the accuracies (medians 18-38 %) but ranked against the table at tau -0.07 to -0.38 (cells of skips and pools learn fastest); "
        "3 cells per stage x 12 epochs: seeds agree at 0.53, table tau 0.13, 6 s per arch. A task on which small networks rank "
        "NB201 cells the way CIFAR-10 does was not found within this work's time; the GHN's settings were not tuned.",
        "",
        "## Reproduce",
        "",
        "    python benchmarks/ghn.py    # GHN training, 32 archs x (GHN, 2 stand-alone seeds, zero-cost), 2 x 2 searches",
        "",
    ]
    (RESULTS / "ghn.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
