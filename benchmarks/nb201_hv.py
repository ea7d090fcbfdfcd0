"""Hypervolume of strategies vs the TRUE NB201 front on measured device latency (the spine's benchmark).

A preset of `benchmarks/strategies.py` (same engine, same reference point and metrics): CIFAR-10
validation accuracy x latency on raspi4, pixel3, eyeriss, fpga, gold_6226 and titan_rtx_1; random, our
evolution, Optuna's NSGAIISampler, TPESampler and GPSampler (GP at budget 100 only: ~0.2-0.3 s per
trial); budgets 100 and 300; 10 seeds (GP: 3). Writes benchmarks/results/nb201_hv.{csv,md,png}.

    python benchmarks/nb201_hv.py [--seeds 10] [--workers 2]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategies import DEVICES, main  # noqa: E402

PRESET = [
    "--cases", ",".join(DEVICES),
    "--strategies", "random,evolution,optuna-nsga2,optuna-tpe,optuna-gp",
    "--budgets", "100,300",
    "--seeds", "10",
    "--slow-seeds", "3",
    "--slow-budget", "100",
]

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main(PRESET + sys.argv[1:], default_out="nb201_hv", title="NB201: strategies vs Optuna's samplers, HV gap to the true front")
