"""Latency/energy lookup tables (LUTs): one cost per operator signature, summed over a network's layers.

Why this format: a LUT is plain CSV (`space,key,latency_ms[,std_ms,min_ms,max_ms,n]`) plus a JSON sidecar
with provenance and validation figures, so users can read, diff and version it, and loading it can never
execute code (nn-Meter's pickled predictors broke with every scikit-learn release). Rows are keyed by
`LayerSignature.key()`; one device file may hold rows of several spaces (column `space`). A row keyed
`intercept` adds a per-network constant (framework overhead, fitted LUTs); rows keyed `term:...` price
topology terms (`nas.cost.features`) that no operator signature shows.

Files live in `latency_luts/DEVICE[__BACKEND].csv` with `DEVICE[__BACKEND].json` beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._io import write_atomic
from nas._resources import shipped_dir
from nas.cost.features import TermError, is_term, signature_counts, term_matrix
from nas.objectives import MetricProvider
from nas.spaces.base import Arch, SearchSpace

INTERCEPT = "intercept"
REQUIRED_COLUMNS = ("space", "key", "latency_ms")
OPTIONAL_COLUMNS = ("std_ms", "min_ms", "max_ms", "n")


class LUTError(ValueError):
    """A LUT file that cannot be used (bad format, corrupted sidecar, other space)."""


class MissingSignatureError(LUTError):
    """An architecture needs an operator the LUT has no entry for."""


def luts_dir() -> Path:
    """Where shipped LUTs live: `$NAS_LUTS_DIR`, else `latency_luts/` as installed (`nas._resources`)."""
    env = os.environ.get("NAS_LUTS_DIR")
    return Path(env) if env else shipped_dir("luts")


def sidecar_path(path: Path) -> Path:
    return path.with_suffix("").with_suffix(".json") if path.name.endswith(".csv.gz") else path.with_suffix(".json")


@dataclass
class LUT:
    """Per-signature costs (ms) for one device/backend, possibly for several spaces.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> arch = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        >>> keys = sorted({sig.key() for sig in space.layers(arch)})
        >>> lut = LUT.from_costs("nb201", {k: 0.01 for k in keys} | {"intercept": 0.5}, device="toy")
        >>> round(float(lut.predict(space, [arch])[0]), 4) > 0.5
        True
    """

    table: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    # --- construction / IO --------------------------------------------------------------------------
    @classmethod
    def from_costs(cls, space: str, costs: Mapping[str, float], *, device: str, backend: str | None = None, meta: Mapping[str, Any] | None = None) -> LUT:
        table = pd.DataFrame({"space": space, "key": list(costs), "latency_ms": [float(v) for v in costs.values()]})
        info = {"device": device, "backend": backend, "units": "ms", **(meta or {})}
        return cls(table, info)

    @classmethod
    def load(cls, path: str | Path) -> LUT:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"LUT file {path} not found; build one with `nas lut build` or fit one with `nas lut fit`")
        try:
            table = pd.read_csv(path, dtype={"space": str, "key": str})
        except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
            raise LUTError(f"LUT {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            raise LUTError(f"LUT {path} lacks column(s) {missing}; expected columns {list(REQUIRED_COLUMNS)}")
        values = pd.to_numeric(table["latency_ms"], errors="coerce")
        if values.isna().any() or not np.isfinite(values).all():
            bad = table.loc[values.isna() | ~np.isfinite(values.fillna(0)), "key"].head(1).tolist()
            raise LUTError(f"LUT {path} has non-numeric latency_ms (first bad key: {bad})")
        table["latency_ms"] = values.astype(float)
        meta: dict[str, Any] = {}
        side = sidecar_path(path)
        if side.is_file():
            try:
                meta = json.loads(side.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise LUTError(f"LUT sidecar {side} is corrupted ({type(exc).__name__}: {str(exc).splitlines()[0]}); rebuild or restore it") from None
            if not isinstance(meta, dict):
                raise LUTError(f"LUT sidecar {side} is corrupted: expected a JSON object")
        meta.setdefault("device", path.name.split("__")[0].removesuffix(".gz").removesuffix(".csv"))
        return cls(table, meta, path)

    def save(self, path: str | Path) -> Path:
        """Write CSV and sidecar atomically (a crash leaves the old files or the new ones, never half)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "sha256": self.digest()}
        write_atomic(path, self.table.to_csv(index=False))
        write_atomic(sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        self.path, self.meta = path, meta
        return path

    def digest(self) -> str:
        return hashlib.sha256(self.table.to_csv(index=False).encode()).hexdigest()[:16]

    # --- lookup ---------------------------------------------------------------------------------------
    @property
    def spaces(self) -> list[str]:
        return sorted(self.table["space"].unique())

    def costs(self, space: str, column: str = "latency_ms") -> dict[str, float]:
        rows = self.table[self.table["space"] == space]
        return dict(zip(rows["key"], rows[column].astype(float)))

    def check_space(self, space: SearchSpace) -> None:
        if space.name not in self.spaces:
            raise LUTError(f"LUT {self.name} is for space(s) {self.spaces}, not {space.name!r}; build one with `nas lut build --space {space.name}`")

    @property
    def name(self) -> str:
        return str(self.path) if self.path else f"{self.meta.get('device')}"

    def layer_options(self, space: str) -> dict[str, Any]:
        """How the build listed each arch's operators (e.g. `live_only` for a graph-optimising backend).

        Every price taken from this LUT lists layers the same way, or its rows would not match.
        """
        stored = self.meta.get("build", {}).get(space, {}).get("layer_options", {})
        return dict(stored) if isinstance(stored, Mapping) else {}

    def layers(self, space: SearchSpace, arch: Arch, **layer_kwargs: Any) -> list[Any]:
        """`space.layers(arch)` as this LUT prices them (its `layer_options` applied)."""
        return space.layers(arch, **{**self.layer_options(space.name), **layer_kwargs})

    def predict(self, space: SearchSpace, archs: Sequence[Arch], **layer_kwargs: Any) -> np.ndarray:
        """Sum of per-layer costs, plus the intercept and any topology-term rows, for each arch, in ms.

        Rows keyed `term:...` (see `nas.cost.features`) price a per-network feature such as the number
        of live input-to-output paths; LUTs without such rows sum layers exactly as before.
        """
        self.check_space(space)
        costs = self.costs(space.name)
        intercept = costs.pop(INTERCEPT, 0.0)
        terms = [k for k in costs if is_term(k)]
        counts, sigs = signature_counts(space, archs, **{**self.layer_options(space.name), **layer_kwargs})
        keys = [sig.key() for sig in sigs]
        missing = [j for j, k in enumerate(keys) if k not in costs]
        if missing:
            arch = archs[int(counts[:, missing[0]].nonzero()[0][0])]
            raise MissingSignatureError(
                f"LUT {self.name} has no entry for operator {keys[missing[0]]} needed by {space.to_string(arch)}; "
                f"rebuild it with `nas lut build --space {space.name}`"
            )
        out = intercept + counts @ np.array([costs[k] for k in keys], dtype=float)
        if terms:
            try:
                values = term_matrix(space, archs, terms)
            except TermError as exc:
                raise LUTError(f"LUT {self.name}: {exc}") from None
            out = out + values @ np.array([costs[k] for k in terms], dtype=float)
        out = np.asarray(out, dtype=float).reshape(len(archs))
        nothing_runs = np.asarray(counts.getnnz(axis=1) == 0).reshape(len(archs))
        null = self.null_ms(space.name) if nothing_runs.any() and not terms else None
        if null is not None:
            out[nothing_runs] = null
        return out

    def null_ms(self, space: str) -> float | None:
        """What one call of the backend costs when the network runs nothing (median over build processes).

        Why: a graph optimiser folds a network whose output is constant (2.2 % of NB201) to nothing, and
        the calibrated intercept, fitted on networks that run, doubles such a call's price.
        """
        nulls = self.meta.get("build", {}).get(space, {}).get("null_ms")
        return float(np.median(nulls)) if isinstance(nulls, list) and nulls else None

    def validation(self, space: str) -> dict[str, Any]:
        return dict(self.meta.get("validation", {}).get(space, {}))


class LUTProvider(MetricProvider):
    """`latency@DEVICE` (or `energy@DEVICE`) from a LUT: tier `known`, priced before evaluation."""

    def __init__(self, metric: str, lut: LUT, space: SearchSpace, *, layer_kwargs: Mapping[str, Any] | None = None) -> None:
        lut.check_space(space)
        from nas.cost.machine import warn_if_other_machine

        warn_if_other_machine(lut.meta, lut.name)  # a LUT measured on another machine prices that machine
        self.metric = metric
        self.lut = lut
        self.space = space
        self.layer_kwargs = dict(layer_kwargs or {})
        self._cache: dict[Arch, float] = {}

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        todo = [a for a in dict.fromkeys(archs) if a not in self._cache]
        if todo:
            for arch, value in zip(todo, self.lut.predict(self.space, todo, **self.layer_kwargs)):
                self._cache[arch] = float(value)
        return np.array([self._cache[a] for a in archs], dtype=float)

    def provenance(self) -> dict[str, Any]:
        """Which LUT, and that its values are estimates with the held-out error of its sidecar.

        Why `estimate` although the tier is `known`: a LUT is exact to look up, so strategies may price
        the space with it, but the number is a model of the device (`note` says how good a model).
        """
        return {
            **super().provenance(),
            "table": f"lut:{self.lut.name}",
            "lut_sha256": self.lut.meta.get("sha256", self.lut.digest()),
            "kind": self.lut.meta.get("kind"),
            "backend": self.lut.meta.get("backend"),
            "validation": self.lut.validation(self.space.name),
            "estimate": True,
            "note": lut_note(self.lut, self.space.name),
        }


def lut_note(lut: LUT, space: str) -> str:
    """One line on what a LUT's latencies are and their held-out error, from its sidecar.

    Example:
        >>> lut = LUT.from_costs("nb201", {"intercept": 1.0}, device="toy", meta={"kind": "fitted"})
        >>> lut_note(lut, "nb201")
        'LUT toy: fitted estimate, no held-out error recorded'
    """
    v = lut.validation(space)
    kind = lut.meta.get("kind") or v.get("kind")
    what = "fitted estimate" if kind == "fitted" else "estimate summing per-operator times measured on its host" if kind == "measured" else "estimate"
    where = f"LUT {lut.path.name if lut.path else lut.meta.get('device')}: {what}"
    if kind == "fitted" and isinstance(v.get("mape"), (int, float)):
        if v.get("estimate") == "cross-validated":
            how = f"{v.get('cv', {}).get('scheme', 'k-fold')} cross-validated on them"
        else:
            how = f"held-out on {v.get('n')} networks"
        return (
            f"{where} from {v.get('k')} networks of {v.get('source')}; {how}: "
            f"MAPE {100 * v['mape']:.1f} %, median error {100 * float(v.get('mdape', float('nan'))):.1f} %, Spearman {float(v.get('spearman', float('nan'))):.3f}"
        )
    if isinstance(v.get("mape_pct"), (int, float)):
        return (
            f"{where}; held-out on {v.get('n_archs')} networks: MAPE {v['mape_pct']:.1f} %, "
            f"{float(v.get('within_10pct', float('nan'))):.0f} % within +-10 %, Spearman {float(v.get('spearman', float('nan'))):.3f}"
        )
    return f"{where}, no held-out error recorded"


class AmbiguousLUTError(LUTError):
    """A device name that several backends' LUTs answer to: the user must pick one."""


def _lut_files(folder: Path, pattern: str = "*.csv") -> list[Path]:
    """LUT CSVs in `folder` matching `pattern`, without the per-network `NAME.validation.csv` tables."""
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.endswith(".validation.csv"))


def _covers(path: Path, space: str) -> bool:
    """Whether the LUT file holds rows of `space` (an unreadable file covers nothing)."""
    try:
        spaces = pd.read_csv(path, usecols=["space"])["space"].unique()
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError):
        return False
    return space in spaces


def find_lut(device: str, space: str, backend: str | None = None, directory: Path | None = None) -> Path | None:
    """The one LUT file `latency@device` prices `space` with, or None when no LUT of that name covers it.

    Rule: `DEVICE.csv` when it covers the space (`device` may be a full LUT name such as
    `epyc_zen5__torch`, or `backend` may name the backend); else the only `DEVICE__BACKEND.csv` that
    covers it. Several backends' LUTs covering it are refused (`AmbiguousLUTError`): their latencies
    differ by up to 10x, so the choice is the user's, made as `latency@DEVICE__BACKEND`.

    Raises:
        AmbiguousLUTError: several backends' LUTs of `device` cover `space`; the message names them all.
    """
    folder = directory or luts_dir()
    name = f"{device}__{backend}" if backend else device
    exact = folder / f"{name}.csv"
    if exact.is_file() and _covers(exact, space):
        return exact
    if backend or "__" in device:
        return None
    found = [p for p in _lut_files(folder, f"{device}__*.csv") if _covers(p, space)]
    if len(found) > 1:
        choices = [f"latency@{p.stem}" for p in found]
        raise AmbiguousLUTError(
            f"latency@{device} is ambiguous in space {space!r}: LUTs of {len(found)} backends "
            f"({', '.join(p.stem.split('__', 1)[1] for p in found)}); name one: {', '.join(choices[:-1])} or {choices[-1]}"
        )
    return found[0] if found else None


def shipped_devices(directory: Path | None = None) -> list[str]:
    """Device names (without backend) of every LUT file in `directory` (default `luts_dir()`)."""
    folder = directory or luts_dir()
    return sorted({p.stem.split("__")[0] for p in _lut_files(folder)})


def lut_names(space: str, directory: Path | None = None) -> list[str]:
    """Every name `latency@NAME` resolves to a LUT for in `space`: each covering LUT's full name
    (`raspi4`, `epyc_zen5__torch`), and a bare device name when exactly one of its backends covers it.
    """
    folder = directory or luts_dir()
    covering = [p.stem for p in _lut_files(folder) if _covers(p, space)]
    backends: dict[str, list[str]] = {}
    for stem in covering:
        device, _, backend = stem.partition("__")
        if backend:
            backends.setdefault(device, []).append(stem)
    bare = {device for device, stems in backends.items() if len(stems) == 1}
    return sorted(set(covering) | bare)


def latency_devices(space: SearchSpace, data_dir: str | None = None) -> list[str]:
    """Every device `latency@DEVICE` resolves for in `space` (the names its errors and `nas devices`
    list): the measured table's devices where one covers the space, and the LUT names of `lut_names`.

    Why here and not a constant: a LUT file added to `latency_luts/` is a new device (one file per
    device), so the list is read from what is installed, the way `latency@DEVICE` resolves it.
    `data_dir` no longer changes the list (the NB201 table ships); it stays for callers that pass it.
    """
    from nas.cost.table import table_devices

    return sorted(set(table_devices(space.name)) | set(lut_names(space.name)))
