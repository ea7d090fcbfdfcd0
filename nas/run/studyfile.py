"""A run directory's `study.db` checked before Optuna opens it, and opened read-only for reading.

Why before: Optuna (through SQLAlchemy) meets a damaged file with a long traceback, meets an empty file
by creating fresh tables in it (the run silently starts over and its next `pareto.csv` replaces the old
one), and meets another tool's SQLite file by adding its tables to it. Each of these is one line here,
and nothing is written: a user can still restore the file. Why read-only: `nas pareto`, `nas report`
and `load_run` look at a run; they must not create, migrate or lock anything in it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import optuna

from nas.run.config import RunConfigError

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: What to do about a damaged study, said at the end of each refusal.
_KEEP = "nothing was changed; restore it from a backup, or choose a new --out"


class StudyFileError(RunConfigError):
    """A run's `study.db` is damaged, empty where results exist, or not a nas study."""


def check_study_file(path: Path, *, study_name: str, results: list[str], read_only: bool) -> None:
    """Refuse, in one line, a `study.db` that Optuna must not open; return quietly when it may.

    Args:
        path: the run directory's study file (absent is fine here; callers decide what that means).
        study_name: the study nas keeps in it.
        results: files of the run directory that only a search writes (e.g. `pareto.csv`), which exist;
            an empty study beside them is damage, not a start-up killed before its first table.
        read_only: open without writing (a hot journal left by a killed writer is then not rolled back).

    Raises:
        StudyFileError: the file is empty beside results, not SQLite, damaged, another tool's database,
            or holds Optuna studies but none named `study_name`.
    """
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        if results:
            raise StudyFileError(f"{path} is empty (0 bytes) but the run directory holds results ({', '.join(results)}): refusing to start the search over; {_KEEP}")
        if read_only:
            raise StudyFileError(f"{path} is empty (0 bytes): the run holds no search to read")
        return
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StudyFileError(f"{path} is not an SQLite database (damaged, truncated or another file, {size} bytes); {_KEEP}")
    try:
        with closing(_connect(path, read_only=read_only)) as db:
            checked = [row[0] for row in db.execute("PRAGMA quick_check")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            names = [row[0] for row in db.execute("SELECT study_name FROM studies")] if "studies" in tables else []
            unrecorded = _unrecorded_trials(db, study_name) if study_name in names else 0
    except sqlite3.DatabaseError as exc:
        journal = path.with_name(path.name + "-journal")
        if read_only and journal.is_file() and journal.stat().st_size and "readonly" in str(exc):
            raise StudyFileError(
                f"{path} has a journal left by a search killed while writing ({journal.name}); reading it needs the rollback a read-only "
                "command does not do: resume the run once (the same nas search, or nas worker RUN), which restores its last committed state"
            ) from None
        raise StudyFileError(f"{path} is damaged ({str(exc).splitlines()[0]}); {_KEEP}") from None
    if checked != ["ok"]:
        raise StudyFileError(f"{path} is damaged ({'; '.join(map(str, checked[:2]))}); {_KEEP}")
    if tables and "studies" not in tables:
        raise StudyFileError(f"{path} is an SQLite database of another tool (tables: {', '.join(sorted(tables)[:5])}), not an Optuna study; {_KEEP}")
    if names and study_name not in names:
        raise StudyFileError(f"{path} holds Optuna studies {names} but none named {study_name!r}: it was not made by nas; {_KEEP}")
    if unrecorded:
        raise StudyFileError(f"{path} holds a study {study_name!r} with {unrecorded} trials that nas did not record (no nas:config): it was not made by nas; {_KEEP}")


def _unrecorded_trials(db: sqlite3.Connection, study_name: str) -> int:
    """Trials of `study_name` when the study lacks nas's config (a plain Optuna study of that name), else 0.

    Why here and not after Optuna opened it: opening switches the file to WAL mode, a write to a file
    that is not nas's. Optuna's schema (studies, study_user_attributes, trials) is read directly; a schema
    this query does not fit is left to Optuna's own version check."""
    try:
        ((study_id,),) = db.execute("SELECT study_id FROM studies WHERE study_name = ?", (study_name,)).fetchall()
        ((configs,),) = db.execute("SELECT COUNT(*) FROM study_user_attributes WHERE study_id = ? AND key = 'nas:config'", (study_id,)).fetchall()
        ((trials,),) = db.execute("SELECT COUNT(*) FROM trials WHERE study_id = ?", (study_id,)).fetchall()
    except (sqlite3.DatabaseError, ValueError):
        return 0
    return 0 if configs else int(trials)


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """SQLite on an existing file only (never creates one); read-only when asked."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode={'ro' if read_only else 'rw'}", uri=True, timeout=60)


def read_only_storage(path: Path) -> optuna.storages.RDBStorage:
    """Optuna's storage over an existing SQLite file, opened read-only and without creating tables."""
    url = f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}, skip_table_creation=True)


__all__ = ["SQLITE_HEADER", "StudyFileError", "check_study_file", "read_only_storage"]
