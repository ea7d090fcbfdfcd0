"""Where a metric's numbers come from, said one way everywhere: stored with the run and with every trial,
compared when a run resumes, and printed wherever numbers are shown.

Why one place: a provider's `provenance()` is a free-form record (a table name, a LUT path and digest
with its validation figures, a recipe, a model). A user acting on a front must see at a glance which of
its metrics are measured and which are modelled (a fitted LUT is off by its held-out error), and a
resumed run must not mix two sources in one front; both need the same reading of that record.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The provenance keys that name a source: the numbers stay the same while these do. A LUT is known by
#: its digest (its recorded path moves with the checkout), anything else by its provider and table, and
#: a table file also by its digest where both records have one (older runs stored none).
_LUT_IDENTITY = ("provider", "lut_sha256")
_IDENTITY = ("provider", "table")
_DIGEST = "sha256"


def is_estimate(info: Mapping[str, Any]) -> bool:
    """Whether the numbers are modelled rather than measured or counted: a model's tier, an explicit
    `estimate` flag, or a LUT (a sum of per-layer figures or a fitted model, never the network timed)."""
    return bool(info.get("estimate")) or info.get("tier") == "estimate" or "lut_sha256" in info


def lut_error(validation: Any) -> str:
    """The held-out error a LUT's sidecar records, in words (fitted LUTs: median and mean APE over the
    held-out table rows; measured LUTs: MAPE against networks timed whole)."""
    if not isinstance(validation, Mapping):
        return "no held-out validation recorded"
    if "mape_pct" in validation:
        n = validation.get("n_archs")
        return f"held-out MAPE {float(validation['mape_pct']):.1f} %" + (f" over {n} networks timed whole" if n else "")
    if "mdape" in validation:
        n = validation.get("n")
        mape = f", MAPE {100 * float(validation['mape']):.0f} %" if "mape" in validation else ""
        return f"held-out median error {100 * float(validation['mdape']):.1f} %{mape}" + (f" over {n} networks" if n else "")
    return "no held-out validation recorded"


def describe(info: Mapping[str, Any]) -> str:
    """One line saying where a metric's numbers come from, e.g. `fitted LUT raspi4.csv (sha256
    0be1f4e78055c186), held-out median error 7.8 %, MAPE 378 % over 15525 networks`."""
    if "lut_sha256" in info:
        digest = f"sha256 {str(info['lut_sha256'])[:16]}"
        if info.get("note"):  # the LUT's own account: file, how it was made, held-out error
            return f"{info['note']} ({digest})"
        table = str(info.get("table", ""))
        name = Path(table[4:] if table.startswith("lut:") else table).name or "?"
        kind = info.get("kind") or "shipped"
        backend = f", {info['backend']} backend" if info.get("backend") else ""
        return f"{kind} LUT {name} ({digest}{backend}), {lut_error(info.get('validation'))}"
    if info.get("note"):
        return str(info["note"])
    if is_estimate(info):
        model = f" {info['model']}" if info.get("model") else ""
        return f"{info.get('method') or info.get('provider', 'a model')}{model}"
    if "recipe" in info:
        return f"trained on {info.get('data', 'the run data')} (seed {info.get('seed')})"
    if info.get("table"):
        where = info.get("origin") or (info.get("source") if info.get("source") != "unknown" else None)
        digest = f"sha256 {str(info[_DIGEST])[:16]}" if info.get(_DIGEST) else None
        detail = ", ".join(str(x) for x in (where, digest) if x)
        return f"measured table {info['table']}" + (f" ({detail})" if detail else "")
    return str(info.get("method") or info.get("provider", "unknown source"))


def source_record(info: Mapping[str, Any]) -> dict[str, Any]:
    """The short record kept with every trial: the line `describe` gives, whether it is an estimate, and
    the keys that identify the source (so a trial says what its numbers were, whatever came after)."""
    record: dict[str, Any] = {"source": describe(info), "estimate": is_estimate(info)}
    for key in (*_IDENTITY, "lut_sha256", _DIGEST, "tier"):
        if key in info:
            record[key] = info[key]
    return record


def same_source(stored: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Whether a provider resolved now reads the numbers a run was searched with."""
    keys = _LUT_IDENTITY if "lut_sha256" in stored or "lut_sha256" in now else _IDENTITY
    if _DIGEST in stored and _DIGEST in now:
        keys = (*keys, _DIGEST)
    return all(stored.get(k) == now.get(k) for k in keys)


def moved_sources(stored: Mapping[str, Any], now: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Metrics whose source differs from the stored one: metric -> (stored line, current line)."""
    return {
        m: (describe(stored[m]), describe(info))
        for m, info in now.items()
        if isinstance(stored.get(m), Mapping) and not same_source(stored[m], info)
    }


def source_lines(provenance: Mapping[str, Any]) -> list[str]:
    """What `nas search` and `nas pareto` print under a front: `note: M is an estimate (...)` for each
    modelled metric, and one `sources:` line for the measured and counted ones."""
    plain, notes = [], []
    for metric, info in provenance.items():
        if not isinstance(info, Mapping):
            continue
        if is_estimate(info):
            notes.append(f"note: {metric} is an estimate ({describe(info)})")
        else:
            plain.append(f"{metric} = {describe(info)}")
    return ([f"sources: {'; '.join(plain)}"] if plain else []) + notes


__all__ = ["describe", "is_estimate", "lut_error", "moved_sources", "same_source", "source_lines", "source_record"]
