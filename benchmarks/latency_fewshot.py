"""Few-shot latency: how well do K measured networks on a new device rank all the others?

Leave-one-device-out over the devices of a measurement table (NB201: 18 devices, HELP's table): each
device in turn is the "new" one; K random networks are its only measurements; the other devices' whole
tables are the known references. Side by side, in one process, on the same K networks per seed:

- `flops`, `params`: analytic proxies (no measurement used);
- `nearest`: the known device whose latencies rank the K networks best (Spearman on those K), its full
  table taken as the prediction (the simplest transfer baseline);
- `lut_nnls`: per-operator LUT by NNLS with a FLOPs/memory prior (`fit_lut(method="nnls")`);
- `lut_terms`: the same plus topology terms (`method="nnls+terms"`);
- `transfer_prev`: `TransferModel` with the members it had before the Bayesian device mixture
  (`PREVIOUS_MEMBERS`: six regressions averaged), kept as the baseline the current model must beat;
- `transfer`: `TransferModel` (needs the reference tables at predict time);
- `transfer_lut`: the transfer model distilled into a standalone LUT (`method="transfer"`).

Scores: Spearman and Kendall tau-b on every network not used for fitting. Writes
`benchmarks/results/latency_fewshot[_SPACE].csv` and `.md`.

    OMP_NUM_THREADS=1 python benchmarks/latency_fewshot.py                 # NB201, K 5..100, 5 seeds
    python benchmarks/latency_fewshot.py --ks 10 --seeds 2 --devices raspi4,pixel3     # quick
    python benchmarks/latency_fewshot.py --space fbnet                     # FBNet table (5,000 nets)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from nas._io import write_atomic
from nas.cost.counts import CountProvider
from nas.cost.fit import PREVIOUS_MEMBERS, ArchPool, ReferenceTables, TransferModel, fit_lut, fit_with_model, nearest_device
from nas.cost.measurements import read_measurements
from nas.spaces import get_space
from nas.tables import find_data_dir

RESULTS = Path(__file__).resolve().parent / "results"
KS = (5, 10, 20, 50, 100)
METHODS = ("flops", "params", "nearest", "lut_nnls", "lut_terms", "transfer_prev", "transfer", "transfer_lut")
ANCHORS = (
    "Published anchors on NB201 (HELP, Lee et al. 2021, 10 samples): HELP 0.932 mean Spearman; "
    "FLOPs 0.787. The nearest-device baseline is reported there at about 0.95 on devices with a close "
    "sibling and 0.89 on those without."
)


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return float(spearmanr(pred, truth)[0]), float(kendalltau(pred, truth)[0])


def run(space_name: str, path: Path, ks: list[int], seeds: int, devices: list[str] | None) -> pd.DataFrame:
    space = get_space(space_name)
    table = read_measurements(path, space)
    all_devices = table.devices
    targets = devices or all_devices
    latency = np.column_stack([table.column(d) for d in all_devices])
    started = time.time()
    pool = ArchPool(space, table.archs)
    references = ReferenceTables(pool, latency, tuple(all_devices))
    references.smoothed  # every device's smoothed table once; select() keeps the columns
    proxies = {kind: CountProvider(kind, space).evaluate(table.archs) for kind in ("flops", "params")}  # type: ignore[arg-type]
    print(f"features of {len(pool)} archs: {time.time() - started:.1f} s", flush=True)
    rows = []
    for device in targets:
        truth = latency[:, all_devices.index(device)]
        others = references.select([d for d in all_devices if d != device])
        for k in ks:
            for seed in range(seeds):
                fit_rows = np.sort(np.random.default_rng(seed).choice(len(pool), size=k, replace=False))
                held = np.ones(len(pool), dtype=bool)
                held[fit_rows] = False
                y = truth[fit_rows]
                archs = [table.archs[i] for i in fit_rows]
                preds: dict[str, np.ndarray] = dict(proxies)
                preds["nearest"] = others.latencies_ms[:, others.devices.index(nearest_device(others, fit_rows, y)[0])]
                preds["lut_nnls"] = pool.predict(fit_lut(space, archs, y, device=device, method="nnls", seed=seed, pool=pool))
                preds["lut_terms"] = pool.predict(fit_lut(space, archs, y, device=device, method="nnls+terms", seed=seed, pool=pool))
                fitted = fit_with_model(space, archs, y, device=device, method="transfer", seed=seed, reference=others)
                assert isinstance(fitted.model, TransferModel)
                preds["transfer"] = fitted.model.predict()
                preds["transfer_prev"] = TransferModel(others, weights=PREVIOUS_MEMBERS).fit(fit_rows, y).predict()
                preds["transfer_lut"] = pool.predict(fitted.lut)
                for method in METHODS:
                    rho, tau = _scores(preds[method][held], truth[held])
                    rows.append(
                        {"space": space.name, "device": device, "k": k, "seed": seed, "method": method,
                         "spearman": rho, "kendall": tau, "n_heldout": int(held.sum())}
                    )
            done = pd.DataFrame(rows)
            cur = done[(done.device == device) & (done.k == k)].groupby("method")["spearman"].mean()
            print(f"{device:15s} K={k:3d}  " + "  ".join(f"{m}={cur[m]:.3f}" for m in METHODS), flush=True)
    print(f"total {time.time() - started:.0f} s", flush=True)
    return pd.DataFrame(rows)


def _table_md(frame: pd.DataFrame, index: str, columns: str, value: str, fmt: str = "{:.3f}") -> str:
    pivot = frame.pivot_table(index=index, columns=columns, values=value, aggfunc="mean", observed=True)
    if columns == "method":
        pivot = pivot[[m for m in METHODS if m in pivot.columns]]
    if index == "method":
        pivot = pivot.loc[[m for m in METHODS if m in pivot.index]]
    header = f"| {index} | " + " | ".join(str(c) for c in pivot.columns) + " |"
    lines = [header, "|" + "---|" * (len(pivot.columns) + 1)]
    for idx, row in pivot.iterrows():
        lines.append(f"| {idx} | " + " | ".join(fmt.format(v) for v in row) + " |")
    return "\n".join(lines)


def report(frame: pd.DataFrame, space: str, source: Path, seeds: int) -> str:
    per_device = frame.groupby(["method", "k", "device"], as_index=False)[["spearman", "kendall"]].mean()
    mean = per_device.groupby(["method", "k"], as_index=False)[["spearman", "kendall"]].mean()
    n_dev = frame["device"].nunique()
    out = [
        f"# Few-shot latency prediction, {space} (leave one device out)",
        "",
        f"Source: `{source.name}`; {n_dev} devices; each device in turn is new, its K measured networks are random",
        f"(seeds 0..{seeds - 1}), the other devices' full tables are the references. Scores on every network not",
        "used for fitting; mean over seeds, then over devices. Reproduce: `OMP_NUM_THREADS=1 python benchmarks/latency_fewshot.py"
        + ("" if space == "nb201" else f" --space {space}") + "`.",
        "",
        *([ANCHORS, ""] if space == "nb201" else []),
        "## Mean Spearman over devices",
        "",
        _table_md(mean, "method", "k", "spearman", "{:.4f}"),
        "",
        "## Mean Kendall tau-b over devices",
        "",
        _table_md(mean, "method", "k", "kendall"),
        "",
    ]
    k10 = per_device[per_device["k"] == (10 if 10 in set(frame["k"]) else int(frame["k"].min()))]
    k_shown = int(k10["k"].iloc[0])
    out += [f"## Spearman per device at K={k_shown}", "", _table_md(k10, "device", "method", "spearman"), ""]
    wide = per_device.pivot_table(index=["k", "device"], columns="method", values="spearman")
    lines = [
        "## Transfer vs the nearest-device baseline, and the cost of distillation",
        "",
        "| K | devices where transfer > nearest | transfer_lut > nearest | transfer_prev > nearest | transfer > transfer_prev "
        "| mean distillation loss (transfer - transfer_lut) | worst device loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, sub in wide.groupby(level="k"):
        loss = sub["transfer"] - sub["transfer_lut"]
        wins = {m: f"{int((sub[m] > sub['nearest']).sum())}/{len(sub)}" for m in ("transfer", "transfer_lut", "transfer_prev") if m in sub}
        gain = f"{int((sub['transfer'] > sub['transfer_prev']).sum())}/{len(sub)}" if "transfer_prev" in sub else "-"
        lines.append(
            f"| {k} | {wins['transfer']} | {wins['transfer_lut']} | {wins.get('transfer_prev', '-')} | {gain} "
            f"| {loss.mean():.4f} | {loss.max():.4f} ({loss.idxmax()[1]}) |"
        )
    out += lines + [""]
    flops = frame[frame["method"] == "flops"]["spearman"].to_numpy()
    params = frame[frame["method"] == "params"]["spearman"].to_numpy()
    if np.allclose(flops, params):
        out += ["FLOPs and params score identically here: they rank this space's networks the same way "
                "(every stage repeats the same cell, and the conv edges dominate both counts).", ""]
    k_rows = wide.xs(k_shown, level="k")
    behind = k_rows[k_rows["transfer"] <= k_rows["nearest"]]
    if len(behind):
        out += [f"At K={k_shown} the transfer model does not beat the nearest device on: "
                + ", ".join(f"{d} ({r['transfer']:.4f} vs {r['nearest']:.4f})" for d, r in behind.iterrows()) + ".", ""]
    closest = (k_rows["transfer"] - k_rows["nearest"]).sort_values().head(3)
    out += [f"Smallest margins of transfer over nearest at K={k_shown}: "
            + ", ".join(f"{d} {m:+.5f}" for d, m in closest.items()) + " (mean over the seeds).", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201", choices=["nb201", "fbnet"])
    parser.add_argument("--measurements", type=Path, default=None, help="measurement CSV (default: the shared table of the space)")
    parser.add_argument("--ks", default=",".join(map(str, KS)))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--devices", default=None, help="comma list of target devices (default: all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="results stem (default: benchmarks/results/latency_fewshot[_SPACE])")
    parser.add_argument("--from-csv", action="store_true", help="rewrite the .md from the stored .csv without rerunning")
    args = parser.parse_args()
    stem = args.out or RESULTS / ("latency_fewshot" if args.space == "nb201" else f"latency_fewshot_{args.space}")
    path = args.measurements
    if path is None:
        data = find_data_dir(args.data_dir)
        if data is None:
            raise SystemExit("shared data directory not found: pass --data-dir or set NAS_DATA_DIR")
        path = data / args.space / "latency_ms.csv.gz"
    if args.from_csv:
        frame = pd.read_csv(stem.with_suffix(".csv"))
        write_atomic(stem.with_suffix(".md"), report(frame, args.space, path, int(frame["seed"].nunique())) + "\n")
        print(f"wrote {stem.with_suffix('.md')}")
        return
    ks = [int(k) for k in args.ks.split(",")]
    devices = args.devices.split(",") if args.devices else None
    frame = run(args.space, path, ks, args.seeds, devices)
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(stem.with_suffix(".csv"), frame.to_csv(index=False))
    write_atomic(stem.with_suffix(".md"), report(frame, args.space, path, args.seeds) + "\n")
    print(f"wrote {stem.with_suffix('.csv')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
