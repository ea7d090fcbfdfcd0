"""A LUT of another machine, calibrated here with 10 networks, against the same LUT uncalibrated.

Why: the shipped `epyc_zen5__*` LUTs were measured on a Zen 5 VM; on a Zen 4 VM they rank networks well
but miss their latency by a machine-wide factor. `nas lut calibrate LUT --archs 10` refits them to 10
networks measured here (`nas.cost.calibrate`). This script measures, once, through each backend:
50 fresh NB201 networks (validation, seed 11) and one pool of 10 calibration networks per seed, none of
them used to fit any shipped LUT (CIFAR-10 network, 1x3x32x32, batch 1, 1 thread, the LUT builder's
timing: minimum of 200 thread-CPU-time samples of ~0.5 ms (60 for torch, whose networks take ~10 ms), minimum of 3 fresh processes). Then, side by side
on the same 50 networks, it compares per LUT: uncalibrated, and each transfer model (`scale`, `affine`,
`types`) fitted on each seed's 10 networks. This machine's own LUT (`--reference`) is the yardstick.

Writes benchmarks/results/calibrate.{csv,md} and the measurements to calibrate_measured.csv
(`--measured` reuses such a file instead of measuring again).

    OMP_NUM_THREADS=1 python benchmarks/calibrate.py [--backends onnxruntime,torch] [--seeds 21,22,23]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tvm_vs_torch import _markdown

from nas._io import write_atomic
from nas.cost.build import DEFAULT_TIMING, load_average, measure_archs
from nas.cost.calibrate import TRANSFER_MODELS, calibrated_lut
from nas.cost.lut import LUT, luts_dir
from nas.cost.machine import cpu_info
from nas.cost.validate import accuracy_figures, random_archs, used_archs
from nas.spaces import get_space

RESULTS = Path(__file__).resolve().parent / "results"
#: LUTs whose calibration archs no measured network may be (they are training data of the shipped files).
SHIPPED = ("epyc_zen5__onnxruntime", "epyc_zen5__torch", "epyc_zen5__tvm", "epyc_zen4__onnxruntime", "epyc_zen4__torch")
VALIDATION_SEED = 11
N_VALIDATION = 50
N_CALIBRATION = 10
LAYER_KWARGS = {"dataset": "cifar10"}


def design(space, seeds: list[int]) -> list[tuple[str, str]]:
    """(set, arch string) for the validation networks and each seed's calibration pool, all distinct and fresh."""
    used: set[str] = set()
    for name in SHIPPED:
        path = luts_dir() / f"{name}.csv"
        if path.is_file():
            used |= set(used_archs(LUT.load(path), space.name))
    rows = [("val", space.to_string(a)) for a in random_archs(space, N_VALIDATION, VALIDATION_SEED, exclude=sorted(used))]
    used |= {a for _, a in rows}
    for seed in seeds:
        pool = [space.to_string(a) for a in random_archs(space, N_CALIBRATION, seed, exclude=sorted(used))]
        used |= set(pool)
        rows += [(f"cal{seed}", a) for a in pool]
    return rows


def measure(space, backends: list[str], seeds: list[int], repeats: dict[str, int], out: Path) -> pd.DataFrame:
    """Every network of `design` through each backend; written to `out` after each backend (a long run keeps what it has)."""
    rows = design(space, seeds)
    archs = [space.from_string(a) for _, a in rows]
    frames = []
    for backend in backends:
        started, load_before = time.time(), load_average()
        timing = {**DEFAULT_TIMING, **({"repeats": repeats[backend]} if backend in repeats else {})}
        combined, per_process = measure_archs(space, archs, backend, processes=3, timing=timing, seed=5, **LAYER_KWARGS)
        frame = pd.DataFrame({"backend": backend, "set": [s for s, _ in rows], "arch": [a for _, a in rows], "measured_ms": combined})
        for p in range(per_process.shape[0]):
            frame[f"process{p}_ms"] = per_process[p]
        frame["repeats"], frame["load_before"], frame["load_after"] = timing["repeats"], str(load_before), str(load_average())
        frames.append(frame)
        write_atomic(out, pd.concat(frames, ignore_index=True).to_csv(index=False))
        print(f"{backend}: {len(archs)} networks x 3 processes in {time.time() - started:.0f} s, load {load_before} -> {load_average()}", flush=True)
    return pd.concat(frames, ignore_index=True)


def compare(space, measured: pd.DataFrame, luts: dict[str, list[str]], seeds: list[int]) -> pd.DataFrame:
    """Figures on the validation networks of every LUT: uncalibrated, then each model on each seed's pool."""
    out = []
    for backend, names in luts.items():
        rows = measured[measured["backend"] == backend]
        if rows.empty:
            continue
        val = rows[rows["set"] == "val"]
        val_archs = [space.from_string(a) for a in val["arch"]]
        truth = val["measured_ms"].to_numpy()
        for name in names:
            lut = LUT.load(luts_dir() / f"{name}.csv")
            base = {"backend": backend, "lut": name, "built_on": f"family {lut.meta.get('cpu', {}).get('cpu_family')} model {lut.meta.get('cpu', {}).get('model')}"}
            out.append({**base, "model": "uncalibrated", "seed": None, **accuracy_figures(lut.predict(space, val_archs, **LAYER_KWARGS), truth)})
            for seed in seeds:
                pool = rows[rows["set"] == f"cal{seed}"]
                if pool.empty:
                    continue
                pool_archs = [space.from_string(a) for a in pool["arch"]]
                for model in TRANSFER_MODELS:
                    fitted = calibrated_lut(lut, space, pool_archs, pool["measured_ms"].to_numpy(), model=model, **LAYER_KWARGS)
                    out.append({**base, "model": model, "seed": seed, **accuracy_figures(fitted.predict(space, val_archs, **LAYER_KWARGS), truth)})
    return pd.DataFrame(out)


def report(table: pd.DataFrame, measured: pd.DataFrame) -> str:
    cols = ["within_10pct", "within_5pct", "mape_pct", "bias", "spearman", "worst_ape_pct"]
    grouped = table.groupby(["backend", "lut", "built_on", "model"], sort=False)[cols]
    mean, low, high = grouped.mean(), grouped.min(), grouped.max()
    lines = []
    for key in mean.index:
        n = int(grouped.size()[key])
        span = "-" if n == 1 else f"{low.loc[key, 'within_10pct']:.0f}-{high.loc[key, 'within_10pct']:.0f}"
        lines.append({"backend": key[0], "LUT": key[1], "built on": key[2], "calibration": key[3], "seeds": n,
                      "% within +-10 %": float(mean.loc[key, "within_10pct"]), "range over seeds": span,
                      "% within +-5 %": float(mean.loc[key, "within_5pct"]), "MAPE %": float(mean.loc[key, "mape_pct"]),
                      "bias": float(mean.loc[key, "bias"]), "Spearman": float(mean.loc[key, "spearman"]), "worst %": float(mean.loc[key, "worst_ape_pct"])})
    frame = pd.DataFrame(lines)
    spread = []
    for backend, rows in measured.groupby("backend"):
        per = rows.filter(like="process").to_numpy()
        rel = (per.max(axis=1) - per.min(axis=1)) / np.median(per, axis=1) * 100
        spread.append(f"{backend}: median network {rows['measured_ms'].median():.3f} ms, between-process spread median {np.median(rel):.1f} % "
                      f"(max {rel.max():.1f} %), load {rows['load_before'].iloc[0]} -> {rows['load_after'].iloc[0]}")
    cpu = cpu_info()
    return "\n".join([
        "# Calibrating another machine's LUT here with 10 networks (NB201, CIFAR-10 network, batch 1, 1 thread)",
        "",
        f"This machine: {cpu.get('model_name')}, vendor {cpu.get('vendor_id')}, family {cpu.get('cpu_family')} model {cpu.get('model')} "
        f"(Zen 4 is family 25, Zen 5 family 26), flags {cpu.get('flags')}. Validation: the same {N_VALIDATION} fresh networks "
        f"(seed {VALIDATION_SEED}) for every row; calibration: {N_CALIBRATION} other fresh networks per seed, a figure is the mean "
        "(min-max) over seeds. Models (`nas.cost.calibrate`): `scale` one factor, `affine` factor + constant, `types` a factor "
        "per operator type pulled towards a shared one. Every network: minimum over 3 fresh processes of the minimum of "
        f"thread-CPU-time samples of ~0.5 ms ({', '.join(f'{b}: {int(r)}' for b, r in measured.groupby('backend')['repeats'].first().items())} samples); "
        "the load average before and after each backend's measurement is below.",
        "",
        _markdown(frame),
        "",
        "`epyc_zen4__*` are this machine's LUTs (every operator row measured here, calibrated by `nas lut build --calibrate` "
        "on networks none of which is measured above; their sidecars say when and on how many), so their uncalibrated rows "
        "say what a LUT of this machine reaches on the same 50 networks; their per-seed rows refit them again on each seed's 10.",
        "",
        *[f"- {line}" for line in spread],
        "",
        f"Reproduce: `OMP_NUM_THREADS=1 python benchmarks/calibrate.py` ({dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}).",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="onnxruntime,torch")
    parser.add_argument("--seeds", default="21,22,23")
    parser.add_argument("--repeats", default="torch=60", help="BACKEND=N timed samples per network and process (default: the LUT builder's 200)")
    parser.add_argument("--measured", type=Path, help="reuse this calibrate_measured.csv instead of measuring")
    parser.add_argument("--reference", default="onnxruntime=epyc_zen4__onnxruntime,torch=epyc_zen4__torch", help="BACKEND=LUT of this machine, comma-separated")
    args = parser.parse_args()
    space = get_space("nb201")
    backends = args.backends.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.measured:
        measured = pd.read_csv(args.measured, dtype={"arch": str})
    else:
        repeats = {b: int(n) for b, _, n in (item.partition("=") for item in filter(None, args.repeats.split(",")))}
        measured = measure(space, backends, seeds, repeats, RESULTS / "calibrate_measured.csv")
    luts = {b: [f"epyc_zen5__{b}"] for b in backends}
    for item in filter(None, args.reference.split(",")):
        backend, _, name = item.partition("=")
        if backend in luts and (luts_dir() / f"{name}.csv").is_file():
            luts[backend].append(name)
    table = compare(space, measured, luts, seeds)
    write_atomic(RESULTS / "calibrate.csv", table.to_csv(index=False))
    write_atomic(RESULTS / "calibrate.md", report(table, measured))
    print(report(table, measured))


if __name__ == "__main__":
    main()
