"""Label-free zero-cost features of the effective cell, computed once per cell and cached on disk.

Why: a predictor trained on 100 labelled archs learns the cell's structure from data; zero-cost proxies
(nwot, jacob_cov, synflow of the untrained network on one mini-batch) carry a ranking signal of their
own (Spearman 0.73-0.84 with the 200-epoch accuracy on NB201) that costs no labels. Appended to the
`effective` encoding they lift gradient boosting at 100 training archs (benchmarks/predictors.py).

Why the effective cell and a small network: archs that share an effective cell compute the same function,
so NB201's 15,625 cells need only 9,445 scorings; the proxies are taken on a short copy of the network
(`cells_per_stage=1`) at 16x16 digits, which keeps their ranking signal at about a tenth of the full
network's CPU cost (see `ProxySettings`).

Features per arch (`n_archs x 3`, all increasing with predicted quality, finite): nwot; -log(-jacob_cov);
log1p(synflow). A cell with no input-to-output route has degenerate scores (nwot -inf, jacob_cov NaN,
synflow 0); they become fixed values below every real score.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.accuracy.predictors._base import PredictorInputError
from nas.spaces.base import Arch, SearchSpace

#: Proxies used as features, in column order.
FEATURE_PROXIES: tuple[str, ...] = ("nwot", "jacob_cov", "synflow")
CACHE_ENV = "NAS_ZERO_COST_CACHE"
# value of a degenerate cell's feature, below every real score (nwot of a live cell is > 100 for a
# batch of 32; -log(-jacob_cov) > -10 as jacob_cov > -2e4; log1p(synflow) >= 0)
_DEGENERATE = {"nwot": 0.0, "jacob_cov": -20.0, "synflow": -1.0}


class ZeroCostFeatureError(PredictorInputError):
    """A space whose networks the zero-cost features cannot be taken on, or an unusable cache file."""


def default_cache_dir() -> Path:
    """`$NAS_ZERO_COST_CACHE`, else `~/.cache/nas/zero_cost`."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "nas" / "zero_cost"


@dataclass(frozen=True)
class ProxySettings:
    """How the proxies are taken: `batch` digits at `size` x `size`, a network of `cells_per_stage` cells
    per stage, initial weights from `seed`.

    On the 725 NB201 archs of benchmarks/zero_cost.py, the short network at 16x16 kept each proxy's
    Spearman with the 200-epoch accuracy within 0.03 of the full network's at 32x32 (nwot 0.79-0.84,
    jacob_cov 0.76-0.79, synflow 0.73-0.76) at about 0.09 instead of 0.7-0.8 CPU s per arch (busy 2-core
    AMD EPYC box): the 9,445 effective NB201 cells take about 14 CPU minutes once, then come from the cache.
    """

    batch: int = 32
    size: int = 16
    cells_per_stage: int = 1
    seed: int = 0

    def key(self) -> str:
        return f"b{self.batch}_s{self.size}_c{self.cells_per_stage}_seed{self.seed}"


def _proxy_space(space: SearchSpace, settings: ProxySettings) -> SearchSpace:
    """The same space with `settings.cells_per_stage` cells per stage (the network the proxies score)."""
    needed = ("ops", "nodes", "channels", "cells_per_stage")
    if not all(hasattr(space, attr) for attr in needed):
        raise ZeroCostFeatureError(f"zero-cost features need an NB201-family cell space; space {space.name!r} has none of cells_per_stage/channels")
    return type(space)(space.name, ops=space.ops, nodes=space.nodes, channels=space.channels, cells_per_stage=settings.cells_per_stage)  # type: ignore[call-arg]


def effective_archs(space: SearchSpace, archs: Sequence[Arch]) -> list[Arch]:
    """Each arch with every op that cannot reach the output set to `none` (the network it computes)."""
    from nas.accuracy.predictors._encoder import effective_ops

    ops = effective_ops(space, archs)
    names = [d.name for d in space.decisions]
    return [space.validate(dict(zip(names, (space.ops[i] for i in row)))) for row in ops]


def to_features(raw: np.ndarray) -> np.ndarray:
    """`n x 3` raw (nwot, jacob_cov, synflow) -> finite features that increase with predicted quality."""
    nwot, jacov, syn = (np.asarray(raw[:, j], dtype=np.float64) for j in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = [nwot, -np.log(-jacov), np.log1p(syn)]
    out = np.stack(cols, axis=1)
    floor = np.array([_DEGENERATE[p] for p in FEATURE_PROXIES])
    bad = ~np.isfinite(out)
    out[bad] = np.broadcast_to(floor, out.shape)[bad]
    return out


class _Cache:
    """Raw proxy scores by effective-arch string, mirrored in one CSV file per (space, settings).

    New rows are appended line by line, so workers sharing the directory add to it; a row another worker
    already wrote is only recomputed (same seed, same value), never lost.
    """

    _lock = threading.Lock()
    _loaded: dict[Path, dict[str, tuple[float, ...]]] = {}

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> dict[str, tuple[float, ...]]:
        with self._lock:
            if self.path not in self._loaded:
                self._loaded[self.path] = self._read()
            return self._loaded[self.path]

    def _read(self) -> dict[str, tuple[float, ...]]:
        if not self.path.exists():
            return {}
        out: dict[str, tuple[float, ...]] = {}
        with self.path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != ["arch", *FEATURE_PROXIES]:
                raise ZeroCostFeatureError(f"zero-cost cache {self.path} has columns {header}; expected {['arch', *FEATURE_PROXIES]} (delete it to rebuild)")
            for row in reader:
                if len(row) == len(FEATURE_PROXIES) + 1:  # a line cut by a killed writer is skipped
                    try:
                        out[row[0]] = tuple(float(v) for v in row[1:])
                    except ValueError:
                        continue
        return out

    def add(self, new: dict[str, tuple[float, ...]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fresh = not self.path.exists()
            with self.path.open("a", newline="") as handle:
                writer = csv.writer(handle)
                if fresh:
                    writer.writerow(["arch", *FEATURE_PROXIES])
                writer.writerows([key, *(repr(v) for v in values)] for key, values in new.items())
            self._loaded.setdefault(self.path, {}).update(new)


def zero_cost_features(
    space: SearchSpace,
    archs: Sequence[Arch],
    *,
    settings: ProxySettings | None = None,
    cache_dir: str | Path | None = None,
    progress: Any = None,
) -> np.ndarray:
    """`n_archs x 3` zero-cost features (see the module docstring), computed for unseen effective cells
    and cached under `cache_dir` (default `default_cache_dir()`).

    Args:
        space: an NB201-family cell space.
        archs: validated archs of `space`.
        settings: batch, input size, cells per stage, seed.
        cache_dir: folder of the cache CSV files.
        progress: optional callable `(done, total)` called while scoring new cells.
    """
    from nas.accuracy.zero_cost import arch_proxies, digits_batch

    chosen = settings or ProxySettings()
    small = _proxy_space(space, chosen)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache = _Cache(folder / f"{space.name}__{chosen.key()}.csv")
    keys = [space.to_string(a) for a in effective_archs(space, archs)]
    known = cache.rows()
    todo = sorted({k for k in keys if k not in known})
    if todo:
        inputs, targets = digits_batch(chosen.batch, size=chosen.size, seed=chosen.seed)
        new: dict[str, tuple[float, ...]] = {}
        for i, key in enumerate(todo):
            scores = arch_proxies(small, space.from_string(key), inputs, targets, FEATURE_PROXIES, seed=chosen.seed, num_classes=10)
            new[key] = tuple(float(scores[p]) for p in FEATURE_PROXIES)
            if len(new) >= 256:
                cache.add(new)
                new = {}
            if progress is not None:
                progress(i + 1, len(todo))
        if new:
            cache.add(new)
        known = cache.rows()
    raw = np.array([known[k] for k in keys], dtype=np.float64).reshape(len(keys), len(FEATURE_PROXIES))
    return to_features(raw)


__all__ = ["CACHE_ENV", "FEATURE_PROXIES", "ProxySettings", "ZeroCostFeatureError", "default_cache_dir", "effective_archs", "to_features", "zero_cost_features"]
