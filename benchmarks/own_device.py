"""The user's own device in the loop: leave one NB201 device out and search as if it were new.

For each left-out device of `nb201/latency_ms.csv.gz` (its column is the device; the other 17 are the
known ones) and each seed, `bo` searches accuracy:max + latency:min for 100 accuracy queries with the
device's latency from:

- (a) `params`: params as the cost (no device at all);
- (b) `lut30`: a LUT fitted (`nas.cost.fit.fit_lut`, transfer from the 17 known devices) on 30 random
  measurements of the device, used as `latency@DEVICE` (known: bo prices the space with it);
- (c) `loopK`: the device measured in the loop (`--measure latency@DEV=csv:TABLE:DEVICE`,
  `nas.cost.in_loop`) with a budget of K = 10, 20, 30 measurements; `loop30_priced` is loop30 run by the
  code where bo prices the space with the device's current model (`SearchContext.priced`), kept as its own
  variant so the rows of the code before stay in the table (the run's config is loop30's); `loop30_blackbox` is the
  same code with the device's prices withheld from bo (`MeasuredLatency.repriced` off for that run), as before the fix;
- (d) `true`: the device's true latency (the table).

Every run's reported front is re-scored with the device's TRUE latency (an under-estimated point loses
its place) and its hypervolume divided by the true front's (reference point: worst accuracy and worst
true latency over the table). Searches run in-process through `Run.open(...).search()`, the code
`nas search` runs. Single-threaded; runs live on /dev/shm when it exists.

    python benchmarks/own_device.py                                  # every device, seeds 0-2
    python benchmarks/own_device.py --devices raspi4,pixel3 --seeds 0  # quick
    python benchmarks/own_device.py --summary                         # rewrite the .md from the .csv
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import optuna
import pandas as pd

from nas import tables
from nas.cost.fit import fit_lut
from nas.cost.in_loop import MeasuredLatency, reference_tables
from nas.pareto import ParetoFront, hypervolume
from nas.run import Run, RunConfig
from nas.spaces import get_space

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tvm_vs_torch import _markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201" / "latency_ms.csv.gz"
VARIANTS = ("params", "lut30", "loop10", "loop20", "loop30", "true")
ABLATIONS = ("loop30_blackbox",)  # run only when named in --variants
BASE = dict(space="nb201", dataset="cifar10", strategy="bo")
NOTES = """Notes
- Every row ran at commit 5ded4b9's code (2026-11-26 12:27-13:32 UTC, two searches side by side on the 2-core machine, load
  average about 2): all 18 devices, seeds 0-2, every variant. The rows of earlier code (one seed: loop30 before bo priced the
  device's model, loop30_blackbox, loop10/20 of older uncertainty code) are kept in `own_device_seed0_dev.csv`.
- `params` does not depend on the device: one bo run per seed, its front re-scored on each device.
- `lut30` fits `fit_lut(method="transfer")` on 30 archs drawn at random from the table (seeded), references = the 17 other
  devices; the LUT is then a known cost (bo prices every architecture with it).
- `loopK` measures in the loop (`--measure latency@own_DEVICE=csv:TABLE:DEVICE --measure-budget K`): the device's latency
  starts as the few-shot estimate, the first 5 trials are measured, then front candidates and paced uncertain ones, and bo
  prices the whole space with the device's current model (re-priced once per refit), as it does with lut30's LUT.
- "above lut30" compares medians over 3 seeds per device; most per-device differences are a few 1e-4, within what another
  seed changes (`own_device.csv` has every run)."""


def rescored_hv(front_archs: list[str], truth: pd.DataFrame, device: str, ref: np.ndarray) -> float:
    """HV (minimisation: -accuracy, true latency) of the non-dominated archs of a reported front."""
    if not front_archs:
        return 0.0
    rows = truth.loc[front_archs]
    points = np.column_stack([-rows["accuracy"].to_numpy(), rows[f"latency@{device}"].to_numpy()])
    return hypervolume(points[ParetoFront(points).mask], ref)


def config_of(variant: str, device: str, seed: int, budget: int, lut_name: str) -> RunConfig:
    if variant == "params":
        return RunConfig(**BASE, objectives=["accuracy:max", "params:min"], budget=budget, seed=seed)
    if variant == "true":
        return RunConfig(**BASE, objectives=["accuracy:max", f"latency@{device}:min"], budget=budget, seed=seed)
    if variant == "lut30":
        return RunConfig(**BASE, objectives=["accuracy:max", f"latency@{lut_name}:min"], budget=budget, seed=seed)
    k = int(variant.removeprefix("loop").split("_")[0])
    metric = f"latency@own_{device}"
    return RunConfig(**BASE, objectives=["accuracy:max", f"{metric}:min"], budget=budget, seed=seed, measure={metric: f"csv:{TABLE}:{device}"}, measure_budget=k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--csv", type=Path, default=RESULTS / "own_device.csv",
                        help="rows file (resumed from); give each parallel worker its own, then --summary --csv with all of them")
    parser.add_argument("--summary", action="store_true", help="only rewrite the .md from the .csv")
    args, more_csvs = parser.parse_known_args()
    csv_path = args.csv
    if args.summary:
        frame = pd.concat([pd.read_csv(path) for path in [csv_path, *map(Path, more_csvs)]], ignore_index=True)
        frame = frame.drop_duplicates(subset=["device", "seed", "variant"], keep="last")
        frame.to_csv(RESULTS / "own_device.csv", index=False)
        write_summary(frame)
        return
    if more_csvs:
        parser.error(f"unrecognised arguments: {' '.join(more_csvs)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space("nb201")
    truth = tables.nb201(devices="all", data_dir=str(TABLE.parents[1])).set_index("arch")
    devices = list(tables.NB201_DEVICES) if args.devices == "all" else args.devices.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    done = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame(columns=["device", "seed", "variant"])
    have = set(zip(done["device"], done["seed"].astype(int), done["variant"]))
    root = Path(tempfile.mkdtemp(prefix="own_device-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    luts = root / "luts"
    luts.mkdir()
    os.environ["NAS_LUTS_DIR"] = str(luts)
    params_fronts: dict[int, list[str]] = {}
    for seed in seeds:  # every device at one seed before the next seed: a run cut short still covers all devices
        for device in devices:
            column = truth[f"latency@{device}"]
            ref = np.array([-truth["accuracy"].min(), column.max()])
            true_points = np.column_stack([-truth["accuracy"].to_numpy(), column.to_numpy()])
            true_hv = hypervolume(true_points[ParetoFront(true_points).mask], ref)
            lut_name = f"lut_{device}_{seed}"
            for variant in variants:
                if (device, seed, variant) in have:
                    continue
                start = time.perf_counter()
                if variant == "lut30":
                    reference = reference_tables(space, exclude=[device], data_dir=str(TABLE.parents[1]))
                    rng = np.random.default_rng(seed)
                    picked = rng.choice(len(truth), size=30, replace=False)
                    archs = [reference.pool.archs[i] for i in picked]
                    measured = column.loc[[space.to_string(a) for a in archs]].to_numpy()
                    fit_lut(space, archs, measured, device=lut_name, method="transfer", seed=seed, reference=reference).save(luts / f"{lut_name}.csv")
                if variant == "params" and seed in params_fronts:
                    front, measured_n = params_fronts[seed], 0
                else:
                    MeasuredLatency.repriced = variant != "loop30_blackbox"  # the code before the fix: bo models the device's latency from the trials
                    run = Run.open(root / f"{variant}-{device}-{seed}", config_of(variant, device, seed, args.budget, lut_name))
                    front = run.search(pareto_every=0)["arch"].tolist()
                    spent = [t for t in run.study.get_trials(deepcopy=False) if t.user_attrs.get("latency_measure_spent")]
                    measured_n = len(spent)
                    if variant == "params":
                        params_fronts[seed] = front
                hv = rescored_hv(front, truth, device, ref)
                row = {"device": device, "seed": seed, "variant": variant, "hv_ratio": hv / true_hv, "front_size": len(front),
                       "measurements": measured_n if variant.startswith("loop") else (30 if variant == "lut30" else 0),
                       "seconds": round(time.perf_counter() - start, 1)}
                print(row, flush=True)
                done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                done.to_csv(csv_path, index=False)
    write_summary(done)


def write_summary(frame: pd.DataFrame) -> None:
    frame = frame.copy()
    per_device = frame.groupby(["device", "variant"])["hv_ratio"].median().unstack("variant")
    columns = [v for v in VARIANTS + ABLATIONS if v in per_device.columns]
    per_device = per_device[columns]
    seeds = frame.groupby("device")["seed"].nunique()
    table = per_device.reset_index()
    table.insert(1, "seeds", table["device"].map(seeds).astype(int))
    table[columns] = table[columns].astype(object).where(table[columns].notna(), "not run")
    lines = [
        "# Own device in the loop: leave one NB201 device out (bo, accuracy:max + latency:min)",
        "",
        "Each row: one of the 18 devices of `nb201/latency_ms.csv.gz` treated as a new device (the other 17 are the known",
        "ones). Cells: median over seeds of the HV of the run's reported front re-scored with the device's TRUE latency,",
        "divided by the true front's HV (reference point: worst accuracy and worst true latency of the table).",
        "`params` = params as the cost; `lut30` = LUT fitted (transfer) on 30 random measurements; `loopK` = measured in",
        "the loop (`--measure`, budget K); `true` = the table's latency. Every run: bo, "
        f"{int(frame.get('budget', pd.Series([100])).iloc[0]) if 'budget' in frame else 100} accuracy queries.",
        "",
        _markdown(table),
        "",
    ]
    for loop in ("loop10", "loop20", "loop30"):
        if {loop, "lut30"} <= set(per_device.columns):
            both = per_device.dropna(subset=[loop, "lut30"])
            wins = int((both[loop] > both["lut30"]).sum())
            lines += [
                f"{loop} median over the {len(both)} devices it ran on: {both[loop].median():.4f} (aim >= 0.99; lut30 on them: {both['lut30'].median():.4f}); "
                f"{loop} above lut30 on {wins} of {len(both)} devices (aim: 16 of 18).",
                "",
            ]
    summary = frame.groupby("variant")[["hv_ratio", "seconds", "measurements"]].median().reindex([v for v in VARIANTS + ABLATIONS if v in set(frame["variant"])])
    summary.insert(0, "runs", frame.groupby("variant").size().reindex(summary.index))
    lines += ["Median over every device and seed run (`seconds`: wall time of one search, two searches side by side on a 2-core machine; "
              "`params` 0 where its one run per seed was re-scored):", "", _markdown(summary.reset_index()), ""]
    lines += [NOTES, ""]
    (RESULTS / "own_device.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
