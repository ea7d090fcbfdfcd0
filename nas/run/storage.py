"""Where a run's study lives, and the lock that makes asking for a trial atomic across workers.

Why a lock of our own: Optuna creates a trial, lets the sampler propose, then stores the params; two
workers asking at once each propose without seeing the other's pick (the same architecture twice), and
each checks the budget before the other's trial exists (one trial over budget). Holding one lock for
"check the budget, ask, store the params" closes both gaps. The lock must be as wide as the storage: a
file lock beside the SQLite file for workers on one machine, a PostgreSQL advisory lock (or MySQL's
GET_LOCK) for workers on many machines; the database server releases it when a killed worker's
connection drops, so a kill never leaves it held.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from nas._io import file_lock

#: What a storage URL may start with, for the error that names them.
EXAMPLES = "sqlite:///PATH.db or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
#: The pip extra that installs each dialect's driver (the set-up installs them; the error names it).
DRIVER_EXTRAS = {"postgresql": ("psycopg", "nas[postgres]"), "mysql": ("pymysql", "pymysql")}


class StorageError(ValueError):
    """A storage URL that is malformed, names an unknown database, lacks its driver, or cannot be reached."""


def parse_url(url: str) -> Any:
    """The SQLAlchemy URL of `url`, or a one-line StorageError naming what is wrong with it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"--storage {url!r} is not a database URL; expected {EXAMPLES}") from None
    dialect = parsed.get_backend_name()
    if dialect not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(f"--storage {shown(url)}: unknown database {dialect!r}; expected {EXAMPLES}")
    if dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StorageError(f"--storage {url!r} names no SQLite file (an in-memory study dies with its worker); expected sqlite:///PATH.db")
    return parsed


def normalised(url: str) -> str:
    """`url` with PostgreSQL's driver made explicit: a plain `postgresql://` means psycopg2 to SQLAlchemy
    2.0 and psycopg (3) to 2.1; nas installs psycopg (the `postgres` extra), so it says so."""
    return "postgresql+psycopg://" + url[len("postgresql://") :] if url.startswith("postgresql://") else url


def shown(url: str) -> str:
    """`url` with its password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except Exception:  # a URL too malformed to parse is shown as given (it then holds no usable password)
        return repr(url)


#: Seconds between a running trial's heartbeats, and since the last one before another host's worker
#: counts it as dead (shared storages only: on one machine a worker's process id tells).
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60


def open_storage(url: str, *, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at `url` (with heartbeats for workers on other machines when `heartbeat`);
    a malformed URL, a missing driver or an unreachable server is one line."""
    from sqlalchemy.exc import NoSuchModuleError, OperationalError, SQLAlchemyError

    parsed = parse_url(url)
    dialect = parsed.get_backend_name()
    given, url = url, normalised(url)
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if dialect == "sqlite" else {"pool_pre_ping": True}
    if dialect == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    beats: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD} if heartbeat else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental" since Optuna 2
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beats)
    except (ImportError, NoSuchModuleError) as exc:
        module, extra = DRIVER_EXTRAS.get(dialect, (parsed.get_driver_name(), parsed.get_driver_name()))
        raise StorageError(f"--storage {shown(given)} needs the {dialect} driver {module} ({exc}); install it with: pip install '{extra}'") from None
    except OperationalError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) is not None else exc).strip().splitlines()
        raise StorageError(f"--storage {shown(given)} cannot be opened: {reason[0] if reason else type(exc).__name__}") from None
    except SQLAlchemyError as exc:
        raise StorageError(f"--storage {shown(given)} cannot be used: {str(exc).splitlines()[0]}") from None
    if dialect == "sqlite":
        _write_ahead(storage.engine)
    return storage


def _write_ahead(engine: Any) -> None:
    """SQLite in write-ahead-log mode with `synchronous=NORMAL` on every connection of `engine`.

    Why: a trial is some 25 small transactions (params, attrs, state); in SQLite's default mode each one
    waits for an fsync (4 ms here: 0.1 s per trial, most of a table-backed search) and locks readers out,
    so a second worker slowed both. In WAL mode readers and the writer do not block each other, and a
    commit is durable against a killed process (the log is replayed on the next open); only an operating
    system crash or power cut may drop the last commits, never corrupt the file.
    """
    from sqlalchemy import event

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened while Optuna created its tables get the pragmas when reopened


class AskLock:
    """A lock shared by every worker of one study, held while a worker checks the budget and asks.

    Args:
        url: the study's storage URL.
        fallback: a lock file for storages without a server-side lock (SQLite: beside its file).
    """

    def __init__(self, url: str, fallback: Path) -> None:
        self.url = normalised(url)
        parsed = parse_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.path: Path | None = Path(f"{Path(parsed.database).resolve()}.ask.lock")
        elif self.dialect in ("postgresql", "mysql"):
            self.path = None
        else:  # parse_url admits no other dialect; kept so a new one fails safe on one machine
            self.path = fallback
        self._engine: Any = None
        # One 63-bit key per database and study: PostgreSQL advisory locks are per database.
        self._key = int.from_bytes(hashlib.sha256(b"nas:ask").digest()[:8], "big") >> 1

    def _connection(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        if self._engine is None:
            self._engine = create_engine(self.url, poolclass=NullPool)
        return self._engine.connect()

    @contextmanager
    def held(self) -> Iterator[None]:
        if self.path is not None:
            with file_lock(self.path):
                yield
            return
        from sqlalchemy import text

        with self._connection() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                    conn.commit()
            else:
                conn.execute(text("SELECT GET_LOCK('nas:ask', -1)"))
                try:
                    yield
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK('nas:ask')"))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def config_from_storage(url: str, directory: Path) -> Any:
    """The config of the nas run whose study lives at `url`, for a worker joining it from `directory`.

    Why: on a second machine there is no run directory to read `config.yaml` from; the study stores the
    config it was created with. `directory` becomes this worker's run directory (its own artefacts); if it
    already holds a run, that run must be the one at `url`.
    """
    from nas.run.config import RunConfig, RunConfigError
    from nas.run.store import CONFIG_FILE, STUDY_NAME

    parse_url(url)
    if (Path(directory) / CONFIG_FILE).is_file():
        config = RunConfig.from_file(Path(directory) / CONFIG_FILE)
        if config.storage is None:
            raise RunConfigError(f"{directory} holds a run on its own SQLite file, not one at --storage {shown(url)}; choose another directory")
        return config
    storage = open_storage(url)
    try:
        stored = storage.get_study_user_attrs(storage.get_study_id_from_name(STUDY_NAME))
    except KeyError:
        raise RunConfigError(f"--storage {shown(url)} holds no nas run (no study {STUDY_NAME!r}); start one with `nas search --storage URL` first") from None
    finally:
        storage.engine.dispose()
    if "nas:config" not in stored:
        raise RunConfigError(f"--storage {shown(url)} holds a study {STUDY_NAME!r} that nas did not make (no nas:config)")
    return RunConfig.from_mapping({**stored["nas:config"], "storage": url})


__all__ = ["AskLock", "StorageError", "config_from_storage", "open_storage", "parse_url", "shown"]
