"""File helpers shared by every module that writes results (runs, LUTs, benchmarks): crash-safe writes,
the lock that serialises workers of one run directory, and reading a YAML mapping with one-line errors."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_keys(cls: type, data: Any, what: str, error: type[Exception]) -> dict[str, Any]:
    """`data` as a dict whose keys are fields of the dataclass `cls`; unknown ones raise `error` in one
    line naming them (`unknown {what}(s) [...]; expected some of [...]`)."""
    from dataclasses import fields

    data = dict(data or {})
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"unknown {what}(s) {unknown}; expected some of {known}")
    return data


def make_readable(path: str | Path) -> None:
    """Give a temporary file the permissions a plain `open` would give it (mkstemp makes it owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextmanager
def file_lock(path: str | Path | None) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing) for the duration; None: no lock (a storage shared
    beyond one directory, where a file lock would not reach the other workers)."""
    if path is None:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The YAML mapping in `path` (`yaml.safe_load`), or a one-line `ValueError` naming `what` it should hold."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must be a YAML mapping ({what})")
    return data
