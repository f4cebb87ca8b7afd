"""Alembic environment: the schema comes from `app.db.models`, the URL from the gateway's settings.

Migrations run on the same async driver as the gateway (aiosqlite / asyncpg) through
`connection.run_sync`, so no second, synchronous driver (psycopg) has to be installed.

URL, first match wins: `config.attributes["database_url"]` (set by `app.db.migrate`), the ini's
`sqlalchemy.url` (empty in the shipped alembic.ini), then `AIGW_DATABASE_URL` via Settings.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app.db.models  # registers the tables on SQLModel.metadata (with the line below)
import app.db.route_models  # noqa: F401  (and those of dynamic routes)
from app.core.settings import Settings
from app.db.session import async_url, ensure_sqlite_dir, is_sqlite

# Any fixed bigint works; what matters is that every gateway process uses the same one.
MIGRATION_LOCK_KEY = 0x6169_6777_6D69_67  # "aigwmig" in ASCII

config = context.config
target_metadata = SQLModel.metadata

# Only the `alembic` command line configures logging from the ini file. When the gateway migrates
# itself (app.db.migrate) fileConfig would reset the server's logging and silence uvicorn's loggers.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(url) if url else Settings().database_url


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: emit SQL for the URL's dialect without connecting."""
    context.configure(
        url=async_url(database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=is_sqlite(database_url()),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several gateway processes may start at once against one database. The transaction-level
            # lock serialises them: the first migrates, the others wait here and then find the schema
            # at head. It is released by the commit or rollback itself, so no error path can leak it.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()
    ensure_sqlite_dir(url)
    # NullPool: a migration is one short connection; nothing should outlive this function.
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
