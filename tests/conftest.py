from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHARED_DATA = Path(os.environ.get("NAS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture
def shared_data() -> Path:
    """The shared benchmark data folder; tests that need it skip with the path they looked at."""
    if not (SHARED_DATA / "nb201" / "latency_ms.csv.gz").is_file():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set NAS_DATA_DIR)")
    return SHARED_DATA


@pytest.fixture
def no_data_dir(monkeypatch, tmp_path) -> None:
    """Force the fresh-machine situation: no benchmark data directory anywhere."""
    monkeypatch.setenv("NAS_DATA_DIR", "none")


@pytest.fixture(scope="session")
def zero_cost_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One zero-cost feature cache for the session's tests (never the user's ~/.cache)."""
    return tmp_path_factory.mktemp("zero_cost_cache")


@pytest.fixture(autouse=True)
def _zero_cost_cache_in_tmp(monkeypatch: pytest.MonkeyPatch, zero_cost_cache_dir: Path) -> None:
    """Every test that scores cells for `effective_zc` writes them to the session's cache. Here, not in
    tests/accuracy/conftest.py: with --doctest-modules, a conftest.py collected before tests/conftest.py
    takes the module name `conftest` and the root one fails to import (CI saw it)."""
    from nas.accuracy.predictors._zero_cost_features import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(zero_cost_cache_dir))
