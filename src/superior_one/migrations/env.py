"""Alembic environment: runs migrations on the project's own engine factory."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from superior_one.config import Settings, get_settings
from superior_one.db import create_engine

config = context.config


def _settings() -> Settings:
    settings: Settings | None = config.attributes.get("settings")
    return settings or get_settings()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    # Migrations may build indexes on large tables: no statement timeout here.
    settings = _settings().model_copy(update={"db_statement_timeout_ms": 0})
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run against a database.")
asyncio.run(_run_async())
