"""The applier lock (store/applier_lock.py) on Postgres (an advisory lock) and on SQLite (an
flock): one holder at a time across processes, and a holder killed with -9 lets go."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import create_engine

from identity_service.store.applier_lock import applier_lock

pytestmark = pytest.mark.integration

HOLDER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import create_engine
    from identity_service.store.applier_lock import applier_lock
    with applier_lock(create_engine(sys.argv[1]), "milvus|test|c1").hold(10) as held:
        print(held, flush=True)
        time.sleep(120)
    """
)


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'faceid.sqlite3'}"


def test_one_holder_across_processes_and_kill_9_releases(database_url):
    engine = create_engine(database_url)
    lock = applier_lock(engine, "milvus|test|c1")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        with lock.hold(0.3) as held:
            assert not held  # the other process has it
        with applier_lock(engine, "milvus|test|c2").hold(0) as other:
            assert other  # another collection's lock is another lock
    finally:
        holder.kill()  # SIGKILL: its connection (or open file) goes with it
        holder.wait(30)
    with lock.hold(10) as held:
        assert held
    engine.dispose()
