"""Where the data that ships with nas lives: LUTs, space definitions, measured latency tables.

Why one helper: the folders sit at the repository root (`latency_luts/`, `search_spaces/`,
`latency_tables/`, where a user adds a device or a space), and `setup.py` maps each into the package
(`nas._luts`, `nas._spaces`, `nas._latency_tables`) so that a non-editable `pip install .` carries them.
Installed from a wheel they are folders inside the installed `nas`; in an editable install or a source
checkout on `PYTHONPATH` they are the root folders. Every reader asks here, so both cases resolve the
same way and no module guesses at the repository layout.

Example:
    >>> shipped_dir("spaces").joinpath("nb201.yaml").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_DATA", "ShippedDataError", "shipped_dir"]

#: kind -> (folder inside the installed package, folder at the repository root); setup.py maps the same.
PACKAGE_DATA: dict[str, tuple[str, str]] = {
    "luts": ("_luts", "latency_luts"),
    "spaces": ("_spaces", "search_spaces"),
    "latency_tables": ("_latency_tables", "latency_tables"),
}


class ShippedDataError(FileNotFoundError):
    """The data nas ships is missing from this installation (a broken or partial install)."""


def shipped_dir(kind: str) -> Path:
    """The folder of the shipped data of `kind` ("luts", "spaces" or "latency_tables").

    Looks in the installed package first (`nas/_luts`, ...: a wheel install), then at the source tree's
    root folder (an editable install or a checkout). Real folders only: LUTs and spaces are globbed, so
    nas does not run from a zip archive.

    Raises:
        KeyError: `kind` is not one of `PACKAGE_DATA`.
        ShippedDataError: neither folder exists; the message names both and the fix.
    """
    if kind not in PACKAGE_DATA:
        raise KeyError(f"unknown kind of shipped data {kind!r}; expected one of {', '.join(PACKAGE_DATA)}")
    inside, root = PACKAGE_DATA[kind]
    package = Path(__file__).resolve().parent
    candidates = (package / inside, package.parent / root)
    for path in candidates:
        if path.is_dir():
            return path
    raise ShippedDataError(
        f"nas's shipped {root}/ is missing (looked at {candidates[0]} and {candidates[1]}); reinstall nas with `pip install .`"
    )
