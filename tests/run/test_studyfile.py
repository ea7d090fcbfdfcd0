"""Damaged or odd `study.db`: one line, nothing destroyed, and reading a run never writes to it."""

from __future__ import annotations

import hashlib
import shutil
from contextlib import closing
from pathlib import Path

import optuna
import pytest

from nas.run import Run, RunConfig, RunConfigError, load_run
from nas.run.studyfile import StudyFileError, check_study_file

FLOPS = dict(space="nb201", dataset="cifar10", objectives=["accuracy:max", "flops:min"], strategy="random", seed=0)


def _state(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file of a run directory: digest and modification time (what "nothing was changed" means).

    SQLite's shared-memory index (`study.db-shm`) and an empty `study.db-wal` are left out: any reader
    of a WAL database (nas, optuna-dashboard) makes them, and they hold no data."""
    return {
        str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm") and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-trial run (study.db, config.yaml, pareto.csv) to copy and damage."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_DATA_DIR", "none")
        directory = tmp_path_factory.mktemp("finished") / "r"
        Run.open(directory, RunConfig(**FLOPS, budget=6)).search()
    import sqlite3

    with closing(sqlite3.connect(directory / "study.db")) as db:  # everything into study.db, as when the search's process exits
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return directory


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path, no_data_dir: None) -> Path:
    copy = tmp_path / "r"
    shutil.copytree(finished, copy, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return copy


def _refused_everywhere(run_dir: Path, match: str) -> None:
    """Resuming the search and reading the results are both refused in one line, and nothing changes."""
    before = _state(run_dir)
    with pytest.raises(StudyFileError, match=match) as resumed:
        Run.open(run_dir, RunConfig(**FLOPS, budget=8))
    with pytest.raises(StudyFileError, match=match) as read:
        load_run(run_dir).pareto()
    for info in (resumed, read):
        assert "\n" not in str(info.value) and "study.db" in str(info.value)
    assert _state(run_dir) == before


def test_garbage_study_db_is_refused_in_one_line_and_kept(run_dir):
    (run_dir / "study.db").write_bytes(b"this is not a database\n" * 100)
    _refused_everywhere(run_dir, "is not an SQLite database")


def test_truncated_study_db_is_refused_in_one_line_and_kept(run_dir):
    db = run_dir / "study.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    _refused_everywhere(run_dir, "is damaged")


def test_empty_study_db_beside_a_front_is_damage_not_a_fresh_start(run_dir):
    (run_dir / "study.db").write_bytes(b"")
    _refused_everywhere(run_dir, r"is empty \(0 bytes\) but the run directory holds results \(pareto.csv, pareto.json\)")


def test_empty_study_db_left_by_a_killed_start_up_is_resumed(run_dir):
    (run_dir / "study.db").write_bytes(b"")
    (run_dir / "pareto.csv").unlink()
    (run_dir / "pareto.json").unlink()
    run = Run.open(run_dir, RunConfig(**FLOPS, budget=4))
    assert len(run.search()) >= 1 and run.n_spent() == 4


def test_reading_a_run_without_study_db_creates_none(run_dir):
    (run_dir / "study.db").unlink()
    before = _state(run_dir)
    with pytest.raises(RunConfigError, match="has no study.db; it holds no search to read"):
        load_run(run_dir).pareto()
    assert not (run_dir / "study.db").exists() and _state(run_dir) == before


def test_a_study_of_another_name_is_foreign(run_dir):
    (run_dir / "study.db").unlink()
    study = optuna.create_study(study_name="mine", storage=f"sqlite:///{run_dir / 'study.db'}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    _refused_everywhere(run_dir, r"holds Optuna studies \['mine'\] but none named 'nas'")


def test_a_nas_named_study_without_nas_records_is_foreign(run_dir):
    (run_dir / "study.db").unlink()
    study = optuna.create_study(study_name="nas", storage=f"sqlite:///{run_dir / 'study.db'}", directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    before = _state(run_dir)
    with pytest.raises(StudyFileError, match="with 2 trials that nas did not record") as resumed:
        Run.open(run_dir, RunConfig(**FLOPS, budget=8))
    with pytest.raises(StudyFileError, match="with 2 trials that nas did not record") as read:
        load_run(run_dir).pareto()
    assert "\n" not in str(resumed.value) + str(read.value)
    assert _state(run_dir) == before


def test_a_study_with_other_directions_is_foreign(run_dir):
    (run_dir / "study.db").unlink()
    optuna.create_study(study_name="nas", storage=f"sqlite:///{run_dir / 'study.db'}", directions=["minimize"])
    with pytest.raises(StudyFileError, match=r"with directions \['minimize'\], not \['maximize', 'minimize'\]"):
        Run.open(run_dir, RunConfig(**FLOPS, budget=8))


def test_another_tools_sqlite_file_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "study.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(StudyFileError, match="of another tool \\(tables: photos\\)"):
        check_study_file(path, study_name="nas", results=[], read_only=True)


def test_reading_a_run_never_writes(run_dir):
    before = _state(run_dir)
    run = load_run(run_dir)
    assert len(run.pareto()) >= 1 and len(run.trials()) == 6 and run.hypervolume() is not None
    assert _state(run_dir) == before


def test_a_journal_left_by_a_killed_writer_is_named_when_reading_and_recovered_by_resuming(run_dir):
    import subprocess
    import sys

    import sqlite3

    with closing(sqlite3.connect(run_dir / "study.db")) as db:  # a rollback journal, as studies of older nas versions have
        db.execute("PRAGMA journal_mode=DELETE")
    kill_mid_write = (
        "import os, signal, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA cache_size=1'); db.execute('BEGIN IMMEDIATE'); db.execute('CREATE TABLE junk (x TEXT)')\n"
        "for i in range(20000): db.execute('INSERT INTO junk VALUES (?)', ('x' * 100,))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", kill_mid_write, str(run_dir / "study.db")], check=False)
    assert (run_dir / "study.db-journal").stat().st_size > 0
    before = _state(run_dir)
    with pytest.raises(StudyFileError, match="has a journal left by a search killed while writing") as info:
        load_run(run_dir).pareto()
    assert "\n" not in str(info.value) and _state(run_dir) == before
    run = Run.open(run_dir, RunConfig(**FLOPS, budget=7))
    run.search()
    assert run.n_spent() == 7 and len(load_run(run_dir).trials()) == 7


def test_reading_after_a_writer_was_killed_in_wal_mode_reads_the_committed_trials(run_dir):
    import subprocess
    import sys

    kill_mid_write = (
        "import os, signal, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('BEGIN IMMEDIATE'); db.execute('CREATE TABLE junk (x TEXT)')\n"
        "for i in range(2000): db.execute('INSERT INTO junk VALUES (?)', ('x' * 100,))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", kill_mid_write, str(run_dir / "study.db")], check=False)
    database = hashlib.sha256((run_dir / "study.db").read_bytes()).hexdigest()
    assert len(load_run(run_dir).trials()) == 6
    assert hashlib.sha256((run_dir / "study.db").read_bytes()).hexdigest() == database
