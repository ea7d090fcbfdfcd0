"""Graph hypernetwork (GHN) on digits: does scoring NB201 cells with generated weights rank them like
training them, better than zero-cost proxies, and what does a search with it find?

Reference: `benchmarks/results/training_ranking.csv` (`benchmarks/training.py ranking`): 64 NB201 cells
spanning the 200-epoch CIFAR-10 table, each trained stand-alone on digits with the project's default
recipe (`Recipe()`: 20 epochs SGD, 500 training digits at 8 x 8, 359 validation digits) on the space's
own network (16 channels, 5 cells per stage), seeds 0 and 1. Why that reference: at that size stand-alone
training ranks the cells (its seeds agree at Kendall tau 0.82), so a score can be judged against it; at
the GHN's earlier tiny size (8 channels, 1 cell per stage) it did not (tau 0.09). Nothing is retrained here.

Steps (one process, 1 thread):

1. For each `--variant` (GHN options as KEY=VALUE,...; the first is the main one): train a GHN with
   `train_ghn` on `digits` for the space's network size (`channels`, `cells_per_stage` of `nb201`) and
   the default recipe's data view (`max_train` 500, same split seed, so its validation split is the
   stand-alone runs' 359 digits), `--steps` steps. A GHN already in `--workdir` is reused (its manifest
   keeps its training time).
2. Score the 64 reference cells with each GHN through a fresh `ghn:PATH` provider (`HypernetAccuracy`),
   so the time per cell includes building its network and generating its weights.
3. Every zero-cost proxy of `nas.accuracy.zero_cost` on the same cells: the space's network, untrained
   (seed 0), 64 training digits of the same data view.
4. Kendall tau of each score with the stand-alone accuracy (mean of the two seeds) and with the table;
   seed 1 against seed 0 is the noise floor.
5. Searches (`evolution`, `--budget`, objectives accuracy:max, params:min) with the main variant's
   `ghn:PATH` and with the table's accuracy; the GHN run's front re-scored with the table; hypervolumes
   with the table run's reference point (worst table accuracy and params of the space).

Writes `benchmarks/results/ghn.csv` (per cell) and `benchmarks/results/ghn.md` (a section of the old
`ghn.md` titled "Earlier setting" is carried over as it is).

    python benchmarks/ghn.py          # one GHN (7.5 min of training), 100-digit scoring, proxies, 2 x 2 searches: ~12 min here
    python benchmarks/ghn.py --variant '' --variant 'archs_per_step=8,batch_size=32' --steps 600 --val-samples 100 --val-samples 50   # the committed results
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau

from nas import tables
from nas.accuracy.hypernet import GHNSettings, HypernetAccuracy, train_ghn
from nas.accuracy.hypernet.train import read_manifest
from nas.accuracy.training import load_prepared
from nas.accuracy.zero_cost import PROXIES, arch_proxies
from nas.pareto import hypervolume, pareto_mask
from nas.spaces import get_space

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = RESULTS / "training_ranking.csv"
EARLIER = "## Earlier setting"


def tau(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(kendalltau(a[ok], b[ok])[0])


def parse_variant(text: str) -> dict[str, Any]:
    """`KEY=VALUE,...` (values as JSON where they parse, else strings); empty = the defaults."""
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = pair.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def label(options: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def reference() -> pd.DataFrame:
    """One row per reference cell: stand-alone accuracy per seed, their mean, and the table's accuracy."""
    raw = pd.read_csv(REFERENCE)
    seeds = raw.pivot(index="arch", columns="seed", values="accuracy")
    frame = pd.DataFrame({"arch": seeds.index})
    for s in seeds.columns:
        frame[f"standalone_seed{s}"] = seeds[s].to_numpy()
    frame["standalone_accuracy"] = seeds.mean(axis=1).to_numpy()
    frame["table_accuracy"] = frame["arch"].map(raw.groupby("arch")["table_accuracy"].first()).to_numpy()
    return frame.sort_values("table_accuracy", kind="stable").reset_index(drop=True)


def ghn_scores(space: Any, ghn_dir: Path, archs: list[Any], val_samples: int | None = None) -> tuple[np.ndarray, float]:
    """Accuracy per arch from a fresh `ghn:PATH` provider and ms per arch (uncached: network build,
    weight generation and the validation pass; one warm-up arch first so one-off start-up is not counted)."""
    provider = HypernetAccuracy(space, ghn_dir, val_samples=val_samples)
    provider.evaluate(archs[:1])
    provider._cache.clear()
    provider.networks = type(provider.networks)(space, provider.ghn)
    started = time.perf_counter()
    scores = provider.evaluate(archs)
    return scores, 1000 * (time.perf_counter() - started) / len(archs)


def search_hv(ghn_dir: Path, data_dir: Path, table: pd.DataFrame, budget: int, seed: int, work: Path) -> dict[str, Any]:
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
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--variant", action="append", default=None, help="GHN options KEY=VALUE,... (repeat for more GHNs; the first is the main one); default: one GHN with the defaults")
    parser.add_argument("--val-samples", type=int, action="append", default=None, help="also score with the main GHN on only this many validation digits (repeatable; default 100)")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--search-seeds", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="keep the GHNs and runs here, and reuse GHNs found here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_dir = tables.require_data_dir(args.data_dir, needed="nb201/accuracy_200ep.csv.gz")
    table = tables.load_nb201_accuracy_200ep(data_dir)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ghn_bench_"))
    space = get_space("nb201")
    size = {"channels": space.channels, "cells_per_stage": space.cells_per_stage}  # type: ignore[attr-defined]
    frame = reference()
    archs = [space.from_string(a) for a in frame["arch"]]

    variants: list[dict[str, Any]] = []
    for i, text in enumerate(args.variant or [""]):
        options = parse_variant(text)
        settings = GHNSettings.from_mapping({**size, **options})
        ghn_dir = work / f"ghn_{i}_{re.sub(r'[^A-Za-z0-9]+', '_', label(options))}_{args.steps}"
        if (ghn_dir / "manifest.json").is_file():
            manifest = read_manifest(ghn_dir)
        else:
            manifest = train_ghn(space, "digits", ghn_dir, settings, steps=args.steps, seed=0)
        print(f"GHN {label(options)}: {manifest['steps']} steps in {manifest['seconds']:.0f} s, loss {manifest['training']}", flush=True)
        scores, ms = ghn_scores(space, ghn_dir, archs)
        column = "ghn_accuracy" if i == 0 else f"ghn_accuracy[{label(options)}]"
        frame[column] = scores
        variants.append({"label": label(options), "dir": ghn_dir, "manifest": manifest, "ms": ms, "column": column})
        print(f"  {ms:.1f} ms per arch; tau vs stand-alone {tau(scores, frame['standalone_accuracy']):.3f}, vs table {tau(scores, frame['table_accuracy']):.3f}", flush=True)

    subsets = []
    for n in args.val_samples or [100]:
        scores, ms = ghn_scores(space, variants[0]["dir"], archs, val_samples=n)
        frame[f"ghn_accuracy[val_samples={n}]"] = scores
        subsets.append({"n": n, "ms": ms, "column": f"ghn_accuracy[val_samples={n}]"})
        print(f"  main GHN on {n} validation digits: {ms:.1f} ms per arch", flush=True)

    data = load_prepared("digits", GHNSettings.from_mapping(size).recipe())
    x, y = data.train_x[:64], data.train_y[:64]
    started = time.perf_counter()
    proxies = pd.DataFrame([arch_proxies(space, a, x, y, PROXIES, seed=0, num_classes=data.input_spec.classes) for a in archs])
    proxy_ms = 1000 * (time.perf_counter() - started) / len(archs)
    for name in PROXIES:
        frame[f"zc_{name}"] = proxies[name].to_numpy()
    frame.to_csv(RESULTS / "ghn.csv", index=False)

    scores = {f"ghn ({v['label']})": frame[v["column"]] for v in variants}
    scores |= {f"ghn ({variants[0]['label']}), {x['n']} validation digits": frame[x["column"]] for x in subsets}
    scores |= {f"zero_cost:{n}": frame[f"zc_{n}"] for n in PROXIES}
    # the upper half by table accuracy: no broken (10 %) cells whose agreement is easy, and the cells a search must tell apart
    upper = (frame["table_accuracy"] >= frame["table_accuracy"].median()).to_numpy()
    sa = frame["standalone_accuracy"].to_numpy()
    rows = [(name, tau(v, sa), tau(v, frame["table_accuracy"]), tau(v.to_numpy()[upper], sa[upper])) for name, v in scores.items()]
    s0, s1 = frame["standalone_seed0"].to_numpy(), frame["standalone_seed1"].to_numpy()
    rows.append(("standalone seed 1 vs seed 0 (noise floor)", tau(s1, s0), tau(s1, frame["table_accuracy"]), tau(s1[upper], s0[upper])))
    rows.append(("standalone (mean of seeds)", float("nan"), tau(sa, frame["table_accuracy"]), float("nan")))

    searches = [search_hv(variants[0]["dir"], data_dir, table, args.budget, s, work) for s in range(args.search_seeds)]
    print(json.dumps(searches), flush=True)
    write_md(frame, rows, searches, variants, subsets, proxy_ms, args)


def write_md(frame: pd.DataFrame, rows: list, searches: list, variants: list, subsets: list, proxy_ms: float, args: argparse.Namespace) -> None:
    main_v = variants[0]
    m = main_v["manifest"]
    net = m["network"]
    sa, g = frame["standalone_accuracy"], frame["ghn_accuracy"]
    ghn_rows = [r for r in rows if r[0].startswith("ghn")]
    zc_rows = [r for r in rows if r[0].startswith("zero_cost")]
    best_zc = max(zc_rows, key=lambda r: r[1])
    main_tau = ghn_rows[0][1]
    noise = rows[-2][1]
    lines = [
        "# Graph hypernetwork on NB201 cells, digits (`benchmarks/ghn.py`)",
        "",
        f"Reference: the 64 cells of `training_ranking.csv` (spanning the NB201 200-epoch CIFAR-10 table), trained stand-alone on digits with the "
        f"default recipe on the space's network ({net['channels']} channels, {net['cells_per_stage']} cells per stage, 8 x 8 inputs, 500 training / "
        "359 validation digits), seeds 0 and 1; compared against the mean of the two seeds. Nothing was retrained for this page.",
        "",
        "GHNs: the same network size and data view (their validation split is the stand-alone runs'), 1 thread:",
        "",
        "| GHN setting | steps | cells x digits per step | training seconds | loss first -> last tenth | parameters | ms per scored cell |",
        "|---|---|---|---|---|---|---|",
        *[f"| {v['label']} | {v['manifest']['steps']} | {v['manifest']['settings']['archs_per_step']} x {v['manifest']['settings']['batch_size']} | "
          f"{v['manifest']['seconds']:.0f} | {v['manifest']['training']['first_loss']:.3f} -> {v['manifest']['training']['last_loss']:.3f} | "
          f"{v['manifest']['parameters']:,} | {v['ms']:.1f} |" for v in variants],
        "",
        "ms per scored cell: a fresh `ghn:PATH` provider, uncached (build the network, generate its weights, run the 359 validation digits). "
        f"Zero-cost proxies: the space's network untrained (seed 0), 64 training digits, {proxy_ms:.0f} ms per cell for all of them.",
        "",
        "Fewer validation digits (`ghn:PATH` option `val_samples`, the first N of the shuffled split), main GHN: "
        + "; ".join(f"{x['n']} digits {x['ms']:.1f} ms per cell" for x in subsets) + ".",
        "",
        "## Kendall tau (64 cells)",
        "",
        "| score | vs stand-alone (mean of seeds) | vs table | vs stand-alone, upper half by table (32 cells) |",
        "|---|---|---|---|",
        *[f"| {name} | {'' if np.isnan(a) else f'{a:.3f}'} | {b:.3f} | {'' if np.isnan(c) else f'{c:.3f}'} |" for name, a, b, c in rows],
        "",
        f"(Upper half: table accuracy >= {frame['table_accuracy'].median():.1f} %; no cell there is broken, so it is the harder test.)",
        "",
        f"Accuracy spread (%): stand-alone min {sa.min():.1f}, median {sa.median():.1f}, max {sa.max():.1f}; GHN ({main_v['label']}) "
        f"min {g.min():.1f}, median {g.median():.1f}, max {g.max():.1f}.",
        "",
        "## Search: evolution, objectives accuracy:max, params:min",
        "",
        f"GHN: {main_v['label']}. Hypervolume of the front in table accuracy (CIFAR-10, 200 epochs) x params, reference = the table run's (worst of the space).",
        "",
        "| seed | budget | HV table-accuracy search | HV ghn search, front re-scored with the table | ghn search seconds |",
        "|---|---|---|---|---|",
        *[f"| {s['seed']} | {s['budget']} | {s['hv_table_search']:.2f} | {s['hv_ghn_search_rescored']:.2f} | {s['ghn_search_seconds']} |" for s in searches],
        "",
        "## Against the issue's aims",
        "",
        f"- Kendall tau >= 0.5 against stand-alone training: {'met' if main_tau >= 0.5 else 'missed'} ({main_tau:.3f}"
        f"{'' if main_tau >= 0.5 else f', short by {0.5 - main_tau:.3f}'}; the reference's own noise floor, seed 1 vs seed 0, is {noise:.3f}).",
        f"- Above every zero-cost proxy: {'yes' if main_tau > best_zc[1] else 'no'} (best proxy {best_zc[0]} at {best_zc[1]:.3f}); "
        f"on the upper half {ghn_rows[0][3]:.3f} against the best proxy's {max(r[3] for r in zc_rows):.3f} and the noise floor's {rows[-2][3]:.3f}.",
        f"- Under 50 ms per scored cell: {'met' if main_v['ms'] < 50 else 'missed'} with the whole validation split ({main_v['ms']:.1f} ms); "
        + "; ".join(f"{'met' if x['ms'] < 50 else 'missed'} with {x['n']} digits ({x['ms']:.1f} ms, tau vs stand-alone "
                    f"{tau(frame[x['column']], frame['standalone_accuracy']):.3f})" for x in subsets) + ".",
        "",
        "## Reproduce",
        "",
        "    python benchmarks/ghn.py " + " ".join(f"--variant '{v}'" for v in (args.variant or [])) + f" --steps {args.steps}"
        + "".join(f" --val-samples {x['n']}" for x in subsets),
        "",
        "Timings were taken while other processes shared the 2-core machine.",
        "",
    ]
    path = RESULTS / "ghn.md"
    old = path.read_text() if path.is_file() else ""
    if EARLIER in old:
        lines += [old[old.index(EARLIER):].rstrip(), ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
