"""Device latency looked up in a table of end-to-end measurements (e.g. HELP's 18 NB201 devices)."""

from __future__ import annotations

from pathlib import Path

from nas import tables
from nas.objectives import TableColumnProvider, Tier
from nas.spaces.base import SearchSpace


def table_latency(space: SearchSpace, device: str, data_dir: str | Path | None = None) -> TableColumnProvider:
    """Measured latency (ms) of every NB201 architecture on `device`, from the shared latency table."""
    if space.name != "nb201":
        raise ValueError(f"no measured latency table for space {space.name!r}; tables exist for: nb201")
    frame = tables.nb201(devices=[device], data_dir=data_dir)
    column = f"latency@{device}"
    return TableColumnProvider(
        column,
        space,
        frame["arch"].tolist(),
        frame[column].to_numpy(),
        source={"table": f"nb201/latency_ms/{device}", "source": frame.attrs.get("latency_source", "nb201/latency_ms.csv.gz")},
        tier=Tier.KNOWN,
    )
