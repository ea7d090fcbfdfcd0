"""How repeatable is a whole-network measurement here, and how many fresh processes does it need?

Why: a LUT's validation figure ("share within +-10 %") is read against one measurement of each network,
so it can be no better than the measurement repeats. On this VM ONNX Runtime's fresh processes differ by
a median 13 % (`lut_repeat_onnxruntime.md`), and the same networks measured twice agreed within +-10 % for
only 88 % of them with the default 3 processes. This script measures the same random NB201 networks
(CIFAR-10 network, batch 1, 1 thread, `nas.cost.build.DEFAULT_TIMING`) in two passes of `--processes`
fresh processes each, one pass after the other, and reports for k = 1, 2, 3, ... processes (the minimum
over the first k of each pass, as `measure_archs` combines them):

- repeat: the share of networks whose two passes agree within +-10 % and +-5 %, and the largest gap;
- LUT: the share within +-10 % of this machine's shipped LUT (`latency_luts/epyc_zen4__BACKEND.csv`)
  against each pass (networks it was calibrated on are never drawn).

Writes benchmarks/results/lut_repeat.{csv,md} and the per-process times to lut_repeat_measured.csv.

    OMP_NUM_THREADS=1 python benchmarks/lut_repeat.py [--backends onnxruntime,torch] [--archs 50] [--processes 6]
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
from nas.cost.lut import LUT, luts_dir
from nas.cost.machine import cpu_info
from nas.cost.validate import accuracy_figures, random_archs, used_archs
from nas.spaces import get_space

RESULTS = Path(__file__).resolve().parent / "results"
LAYER_KWARGS = {"dataset": "cifar10"}


def measure(space, archs, backend: str, processes: int, seed: int) -> pd.DataFrame:
    """Per-process times (ms) of each arch in two passes: rows (pass, process), columns archs."""
    frames = []
    for run in (1, 2):
        started, load = time.perf_counter(), load_average()
        _, per_process = measure_archs(space, archs, backend, processes=processes, timing=DEFAULT_TIMING, seed=seed + run, **LAYER_KWARGS)
        print(f"{backend} pass {run}: {len(archs)} networks x {processes} processes in {time.perf_counter() - started:.0f} s, load {load} -> {load_average()}", flush=True)
        frame = pd.DataFrame(per_process, columns=[space.to_string(a) for a in archs])
        frame.insert(0, "process", range(processes))
        frame.insert(0, "pass", run)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def figures(space, archs, times: pd.DataFrame, lut: LUT | None) -> list[dict]:
    """Repeat and LUT agreement for the minimum over the first k processes of each pass."""
    predicted = lut.predict(space, archs, **LAYER_KWARGS) if lut is not None else None
    strings = [space.to_string(a) for a in archs]
    rows = []
    for k in range(1, int(times["process"].max()) + 2):
        passes = [times[(times["pass"] == run) & (times["process"] < k)][strings].to_numpy().min(axis=0) for run in (1, 2)]
        repeat = accuracy_figures(passes[1], passes[0])
        row = {"processes": k, "n_archs": len(strings), "repeat_within_10pct": repeat["within_10pct"], "repeat_within_5pct": repeat["within_5pct"],
               "repeat_median_gap_pct": float(np.median(np.abs(passes[1] / passes[0] - 1.0)) * 100.0), "repeat_max_gap_pct": repeat["worst_ape_pct"]}
        if predicted is not None:
            for run, measured in zip((1, 2), passes):
                lut_figures = accuracy_figures(predicted, measured)
                row[f"lut_within_10pct_pass{run}"] = lut_figures["within_10pct"]
                row[f"lut_bias_pass{run}"] = lut_figures["bias"]
                # what one machine-wide factor (`nas lut calibrate --model scale`) leaves: fitted on these same networks
                row[f"lut_within_10pct_rescaled_pass{run}"] = accuracy_figures(predicted / lut_figures["bias"], measured)["within_10pct"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="onnxruntime,torch")
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument("--measured", type=Path, help="reuse this lut_repeat_measured.csv instead of measuring")
    args = parser.parse_args()
    space = get_space("nb201")
    old = pd.read_csv(args.measured) if args.measured else None
    results, measured = [], []
    for backend in args.backends.split(","):
        path = luts_dir() / f"epyc_zen4__{backend}.csv"
        lut = LUT.load(path) if path.is_file() else None
        archs = random_archs(space, args.archs, args.seed, exclude=used_archs(lut, space.name) if lut is not None else ())
        if old is not None:
            times = old[old["backend"] == backend].drop(columns="backend").dropna(axis=1)
        else:
            times = measure(space, archs, backend, args.processes, args.seed)
        measured.append(times.assign(backend=backend))
        for row in figures(space, archs, times, lut):
            results.append({"backend": backend, "lut": path.stem if lut is not None else "-", **row})
    frame = pd.DataFrame(results)
    RESULTS.mkdir(exist_ok=True)
    write_atomic(RESULTS / "lut_repeat.csv", frame.to_csv(index=False))
    if old is None:
        write_atomic(RESULTS / "lut_repeat_measured.csv", pd.concat(measured, ignore_index=True).to_csv(index=False))
    cpu = cpu_info()
    lines = [
        "# Whole-network measurements measured twice: repeatability against the number of fresh processes",
        "",
        f"{args.archs} random NB201 networks per backend (seed {args.seed}; CIFAR-10 network, batch 1, 1 thread; never a calibration "
        f"network of the LUT), each timed in two passes of {args.processes} fresh processes, one pass after the other, with "
        f"`DEFAULT_TIMING` ({DEFAULT_TIMING['repeats']} thread-CPU-time samples of ~{DEFAULT_TIMING['target_s'] * 1000:g} ms, minimum per "
        "process). A row takes the minimum over the first k processes of each pass, as `nas lut validate --processes k` would: "
        "`repeat_*` compares the two passes (the share of networks within +-10 % / +-5 % of each other), `lut_*` the "
        "machine's LUT with each pass: its share within +-10 %, its bias (median predicted / measured), and its share "
        "within +-10 % after dividing by that bias (one factor fitted on the same networks, in sample). "
        f"Machine: {cpu.get('model_name')}, family {cpu.get('cpu_family')} model {cpu.get('model')}, flags {cpu.get('flags')}.",
        "",
        _markdown(frame),
        "",
        f"Reproduce: `OMP_NUM_THREADS=1 python benchmarks/lut_repeat.py --archs {args.archs} --processes {args.processes}` "
        f"({dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}).",
        "",
    ]
    write_atomic(RESULTS / "lut_repeat.md", "\n".join(lines))
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
