"""Apply and check the alembic migrations from code (`aigw serve`, `aigw migrate`, tests).

Tables come only from migrations/. Both functions are synchronous because alembic's env.py runs
its own event loop (`asyncio.run`); from async code call `upgrade_async`, which uses a thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app
import app.db.models  # registers the tables on SQLModel.metadata
import app.db.route_models  # and those of dynamic routes
from app.db.session import async_url

# The package is installed editable from the repository, so migrations/ sits next to app/.
REPO_ROOT = Path(app.__file__).resolve().parent.parent
MIGRATIONS_DIR = REPO_ROOT / "migrations"


def alembic_config(database_url: str) -> Config:
    """A Config built in code: no dependence on the working directory or on alembic.ini."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(f"migrations not found at {MIGRATIONS_DIR}; install aigw from its repository")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not as sqlalchemy.url: ini values are %-interpolated, and URLs with
    # percent-encoded passwords would break.
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """`alembic upgrade head`. Safe to run from several processes at once on PostgreSQL (env.py
    takes an advisory lock) and a no-op when the schema is already current."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    """`upgrade` from inside a running event loop (a lifespan, an async test)."""
    await asyncio.to_thread(upgrade, database_url)


def check_no_drift(database_url: str) -> list[Any]:
    """Differences between the models and the migrated database, as alembic's autogenerate sees
    them. An empty list means the migrations create exactly what the models describe."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    async def run() -> list[Any]:
        engine = create_async_engine(async_url(database_url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())
