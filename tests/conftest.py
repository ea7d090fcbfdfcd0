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
