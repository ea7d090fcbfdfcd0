from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server `$NAS_TEST_POSTGRES` names (`.ci/run` starts one
    with scripts/postgres.sh), dropped afterwards. Without a server the test skips, except in CI, where a
    missing server is a failure: the shared-storage promise is tested there."""
    server = os.environ.get("NAS_TEST_POSTGRES")
    if not server:
        if os.environ.get("CI"):
            pytest.fail("NAS_TEST_POSTGRES is not set in CI; .ci/run must start PostgreSQL (scripts/postgres.sh)")
        pytest.skip("no PostgreSQL server: run `eval \"$(bash scripts/postgres.sh start)\"` to test shared storages")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from nas.run.storage import normalised

    admin = create_engine(normalised(server), isolation_level="AUTOCOMMIT")
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
