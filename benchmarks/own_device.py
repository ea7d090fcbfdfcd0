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
VARIANTS = ("params", "lut30", "loop10", "loop20", "loop30", "loop30_blackbox", "loop30_priced", "true")
BASE = dict(space="nb201", dataset="cifar10", strategy="bo")
NOTES = """Notes
- `params` does not depend on the device: one bo run per seed, its front re-scored on each device.
- `lut30` fits `fit_lut(method="transfer")` on 30 archs drawn at random from the table (seeded), references = the 17 other
  devices; the LUT is then a known cost (bo prices every architecture with it). `loopK` is a tier-estimate metric: bo models
  it from the trials' stored values, and 100 - K trials keep the estimate they were given when they ran.
- The rows are what finished before the deadline: see the `seeds` column and the device list; devices not listed were not run.
- Where loop30 loses (the code before commit 966a558; one look, gold_6226 seed 0: loop30 0.985 vs lut30 0.997): every point of its reported front was measured,
  and the 70 estimated trials' median error was 1.2 %; its front has 12 points against lut30's 18. The gap is the strategy's, not
  the estimate's: bo aims each proposal at the front at a candidate's exact known cost, and caches the pool's known costs once
  per run, so a cost model that is refitted during the search can only enter it as a black-box objective.
- `loop30_priced` (11:11-11:26 UTC, commit 966a558, seed 0 only, all 18 devices): bo prices the whole space with the device's
  current model (`SearchContext.priced`, re-priced once per refit) and aims at the front at those prices, as lut30 does with its
  LUT. `loop30_blackbox` (11:26-11:31 UTC, seed 0, the devices listed in its column) is the same code with the prices withheld, to
  separate the fix from the other change since the loop30 rows (the uncertainty from `predict_distribution`); it reproduces
  loop30's gap. lut30 of the 7 devices that had no row (1080ti_256, 1080ti_32, 2080ti_1, 2080ti_32, pixel2, titan_rtx_1,
  titan_rtx_256) ran at 11:20-11:26 UTC with the same code. These runs shared the 2-core machine with a CI run of the whole
  test suite (load average 4-5.3); one seed, so a device's gap of a few 1e-4 is within what another seed could change.
  loop30_priced trails lut30 on 1080ti_32, 2080ti_1 and fpga (seed 0), so the issue's 16 of 18 is missed by one device there;
  its median 0.9983 meets the >= 0.99 aim. Seeds 1-2 were not run.
- Code versions: the loop30 runs (09:38-10:40 UTC) used the spread of the transfer model's members as the
  uncertainty; the loop10 / loop20 runs (10:40 UTC on) used `TransferModel.predict_distribution`, which another helper was adding
  to `nas/cost/fit.py` (uncommitted then). Every run imported `nas/cost/fit.py` from the working tree as it was when its process
  started, other helpers' uncommitted changes included."""


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
    parser.add_argument("--summary", action="store_true", help="only rewrite the .md from the .csv")
    args = parser.parse_args()
    csv_path = RESULTS / "own_device.csv"
    if args.summary:
        write_summary(pd.read_csv(csv_path))
        return
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
    for device in devices:
        column = truth[f"latency@{device}"]
        ref = np.array([-truth["accuracy"].min(), column.max()])
        true_points = np.column_stack([-truth["accuracy"].to_numpy(), column.to_numpy()])
        true_hv = hypervolume(true_points[ParetoFront(true_points).mask], ref)
        for seed in seeds:
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
    columns = [v for v in VARIANTS if v in per_device.columns]
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
    for loop in ("loop30", "loop30_priced"):
        if {loop, "lut30"} <= set(per_device.columns):
            both = per_device.dropna(subset=[loop, "lut30"])
            wins = int((both[loop] > both["lut30"]).sum())
            lines += [
                f"{loop} median over the {len(both)} devices it ran on: {both[loop].median():.4f} (aim >= 0.99; lut30 on them: {both['lut30'].median():.4f}); "
                f"{loop} above lut30 on {wins} of {len(both)} devices (aim: 16 of 18).",
                "",
            ]
    summary = frame.groupby("variant")[["hv_ratio", "seconds", "measurements"]].median().reindex([v for v in VARIANTS if v in set(frame["variant"])])
    summary.insert(0, "runs", frame.groupby("variant").size().reindex(summary.index))
    lines += ["Median over every device and seed run (`seconds`: wall time of one search on a shared 2-core machine, load average 8-14 before 11:00 UTC, 4-5.3 for the loop30_priced, loop30_blackbox and new lut30 runs; `params` 0 where its one run per seed was re-scored):", "", _markdown(summary.reset_index()), ""]
    lines += [NOTES, ""]
    (RESULTS / "own_device.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
