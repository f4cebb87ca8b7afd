"""Migrations: they build exactly the models' schema, re-running is a no-op, and on PostgreSQL several
processes starting at once all succeed (protocol.md §12)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import inspect, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import REPO_ROOT, check_no_drift, upgrade
from app.db.session import async_url
from tests.support.backends import fresh_postgres

TABLES = {
    "gateways",
    "tokens",
    "logs",
    "log_metadata",
    "log_counters",
    "log_hourly",
    "provider_configs",
    "custom_providers",
    "routes",
    "route_versions",
    "route_deployments",
}
INDEXES = {
    "logs": {
        "ix_logs_gateway_id_order", "ix_logs_gateway_created", "ix_logs_event",
        "ix_logs_gateway_provider", "ix_logs_gateway_model",
    },
    "tokens": {"ix_tokens_account_id"},
    "log_metadata": {"ix_log_metadata_value"},
    "provider_configs": {"ux_provider_configs_alias"},
    "custom_providers": {"ux_custom_providers_slug"},
}  # fmt: skip


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from app.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


T = TypeVar("T")


def _run_sync(database_url: str, fn: Callable[[Connection], T]) -> T:
    async def go() -> T:
        engine = create_async_engine(async_url(database_url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def schema(database_url: str) -> dict[str, set[str]]:
    """Table name → index names, as the database reports them."""

    def read(connection: Connection) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {t: {str(i["name"]) for i in inspector.get_indexes(t)} for t in inspector.get_table_names()}

    return _run_sync(database_url, read)


def version(database_url: str) -> list[str]:
    def read(connection: Connection) -> list[str]:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())

    return _run_sync(database_url, read)


def assert_migrated(database_url: str) -> None:
    found = schema(database_url)
    assert set(found) == TABLES | {"alembic_version"}
    for table, names in INDEXES.items():
        assert names <= found[table], (table, found[table])
    assert version(database_url) == [head_revision()]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/nested/dir/aigw.db"  # the directory does not exist yet


def test_upgrade_creates_tables_on_empty_sqlite(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    assert_migrated(sqlite_url)


def test_upgrade_twice_is_a_no_op(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    before = schema(sqlite_url)
    upgrade(sqlite_url)
    assert schema(sqlite_url) == before
    assert version(sqlite_url) == [head_revision()]


def test_models_and_migrations_do_not_drift(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    assert check_no_drift(sqlite_url) == []


def test_alembic_command_line_uses_the_ini_and_env_url(sqlite_url: str) -> None:
    """`alembic upgrade head` / `downgrade base` from the repo root read AIGW_DATABASE_URL."""
    env = {**os.environ, "AIGW_DATABASE_URL": sqlite_url}
    for args in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert_migrated(sqlite_url)


# ---- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards (other tests share the one
    in AIGW_TEST_POSTGRES_URL, so its tables are never touched here)."""
    with fresh_postgres(postgres_url, prefix="aigw_mig") as url:
        yield url


def test_postgres_upgrade_twice_and_no_drift(fresh_postgres_url: str) -> None:
    upgrade(fresh_postgres_url)
    assert_migrated(fresh_postgres_url)
    upgrade(fresh_postgres_url)
    assert_migrated(fresh_postgres_url)
    assert check_no_drift(fresh_postgres_url) == []


def test_postgres_concurrent_upgrades_all_succeed(fresh_postgres_url: str) -> None:
    """Four processes migrate one empty database at the same instant (as replicas starting
    together would); the advisory lock in env.py must make every one of them succeed."""
    start_at = time.time() + 3  # after every interpreter has imported alembic and the app
    script = (
        "import sys, time; from app.db.migrate import upgrade; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade(sys.argv[1])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, fresh_postgres_url, str(start_at)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(proc.wait(timeout=60), proc.communicate()[1]) for proc in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    assert_migrated(fresh_postgres_url)
