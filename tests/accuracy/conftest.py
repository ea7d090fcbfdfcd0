from __future__ import annotations

from pathlib import Path

import pytest

from nas.accuracy.predictors._zero_cost_features import CACHE_ENV


@pytest.fixture(scope="session")
def zero_cost_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One zero-cost feature cache for the session's accuracy tests (never the user's ~/.cache)."""
    return tmp_path_factory.mktemp("zero_cost_cache")


@pytest.fixture(autouse=True)
def _zero_cost_cache_in_tmp(monkeypatch: pytest.MonkeyPatch, zero_cost_cache_dir: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(zero_cost_cache_dir))
