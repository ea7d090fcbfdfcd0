"""Device latency looked up in a table of end-to-end measurements (HELP's 18 NB201 devices).

Why a table before any LUT: it is what the device measured, for every network of the space; a LUT is a
model of it. The table is the data directory's `nb201/latency_ms.csv.gz` when there is one, else the
copy shipped with nas in `latency_tables/` (the same file, so a fresh machine gives the same numbers).

FBNet's table ships too, but covers 5,000 of its 9^22 networks, so `latency@DEVICE` on FBNet is the
device's LUT (fitted on that table; its sidecar gives the held-out error), never a mix of the two.
"""

from __future__ import annotations

from pathlib import Path

from nas import tables
from nas._resources import shipped_dir
from nas.objectives import TableColumnProvider, Tier
from nas.spaces.base import SearchSpace

#: Spaces whose every network a measured table covers, and the devices it has.
TABLE_DEVICES: dict[str, tuple[str, ...]] = {"nb201": tables.NB201_DEVICES}


def table_devices(space: str) -> tuple[str, ...]:
    """The devices whose measured table covers `space` (on any machine: a copy ships with nas)."""
    return TABLE_DEVICES.get(space, ())


def table_latency(space: SearchSpace, device: str, data_dir: str | Path | None = None) -> TableColumnProvider:
    """Measured latency (ms) of every NB201 architecture on `device`: the data directory's table, else the
    shipped copy; the provenance names the file, its sha256 and where it came from."""
    if space.name not in TABLE_DEVICES:
        raise ValueError(f"no measured latency table for space {space.name!r}; tables exist for: {', '.join(TABLE_DEVICES)}")
    frame = tables.nb201(devices=[device], data_dir=data_dir)
    column = f"latency@{device}"
    source = Path(frame.attrs["latency_source"])
    shipped = source.parent == shipped_dir("latency_tables")
    origin = "shipped with nas (HELP, MIT licence, latency_tables/provenance.json)" if shipped else "data directory"
    return TableColumnProvider(
        column,
        space,
        frame["arch"].tolist(),
        frame[column].to_numpy(),
        source={
            "table": f"nb201/latency_ms/{device}",
            "source": str(source),
            "sha256": frame.attrs["latency_sha256"],
            "origin": origin,
            "estimate": False,
        },
        tier=Tier.KNOWN,
    )
