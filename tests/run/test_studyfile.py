"""Damaged or odd `study.db`: one line, nothing destroyed, and reading a run never writes to it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import optuna
import pytest

from nas.run import Run, RunConfig, RunConfigError, load_run
from nas.run.studyfile import StudyFileError, check_study_file

FLOPS = dict(space="nb201", dataset="cifar10", objectives=["accuracy:max", "flops:min"], strategy="random", seed=0)


def _state(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file of a run directory: digest and modification time (what "nothing was changed" means)."""
    return {
        str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-trial run (study.db, config.yaml, pareto.csv) to copy and damage."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_DATA_DIR", "none")
        directory = tmp_path_factory.mktemp("finished") / "r"
        Run.open(directory, RunConfig(**FLOPS, budget=6)).search()
    return directory


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path, no_data_dir: None) -> Path:
    copy = tmp_path / "r"
    shutil.copytree(finished, copy)
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
    with pytest.raises(StudyFileError, match="with trials that nas did not record") as resumed:
        Run.open(run_dir, RunConfig(**FLOPS, budget=8))
    with pytest.raises(StudyFileError, match="that nas did not make") as read:
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
    before, names = _state(run_dir), sorted(p.name for p in run_dir.iterdir())
    run = load_run(run_dir)
    assert len(run.pareto()) >= 1 and len(run.trials()) == 6 and run.hypervolume() is not None
    assert _state(run_dir) == before and sorted(p.name for p in run_dir.iterdir()) == names
