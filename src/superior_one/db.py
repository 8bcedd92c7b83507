"""Database engine, sessions and the one place that commits.

Each process (api, worker, gps-consumer, CLI command) calls :func:`create_engine`
once at start-up and disposes of the engine at shutdown. No other module creates
an engine; a test enforces it. Code receives an :class:`AsyncSession` from
:func:`get_session` (FastAPI) or :func:`unit_of_work` (jobs, CLI), and only those
two commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import orjson
import structlog
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import DateTime, MetaData, func, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from superior_one.config import Settings
from superior_one.observability.database import InstrumentedPool, instrument_engine
from superior_one.observability.tracing import current_tracing

log = structlog.get_logger(__name__)

AfterCommitHook = Callable[[], Awaitable[None]]

# Constraint names are predictable so migrations and error mapping can rely on them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def _json_dumps(value: Any) -> str:
    # Non-string keys become strings, as the standard library's json.dumps does.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """Create the process's engine with the pool and timeouts from settings."""
    connect_args: dict[str, Any] = {
        "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        "prepare_threshold": settings.db_prepare_threshold,
        "application_name": "superior-one",
    }
    engine = create_async_engine(
        settings.database_url,
        pool_size=pool_size if pool_size is not None else settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        pool_pre_ping=settings.db_pool_pre_ping,
        echo=settings.db_echo,
        # Error messages and logs show statements without their values.
        hide_parameters=True,
        # orjson for json/jsonb columns: the gps-consumer reads and writes a geofence
        # state per load and batch, and the standard library's json was a tenth of its time.
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
        **({"poolclass": InstrumentedPool} if settings.metrics_enabled else {}),
    )
    if settings.metrics_enabled:
        instrument_engine(engine, slow_query_ms=settings.db_slow_query_ms)
    if (tracing := current_tracing()) is not None:
        tracing.instrument_engine(engine)
    return engine


def create_job_queue_pool(settings: Settings, *, max_size: int) -> AsyncConnectionPool:
    """Create the worker's small psycopg pool for the job queue (Procrastinate).

    This is the one other pool a process may have, and only the worker opens it.
    Procrastinate's connector runs on psycopg_pool, not on an SQLAlchemy engine,
    and its LISTEN/NOTIFY session must stay on one server connection, which
    PgBouncer in transaction mode does not give (``jobs_database_url`` may then
    point at PostgreSQL directly). Business reads and writes still use the engine.
    Each running job takes a connection to be fetched and one to be finished, so
    the worker sizes it from its concurrency.
    """
    url = make_url(settings.jobs_database_url or settings.database_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            "application_name": "superior-one-jobs",
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, hook: AfterCommitHook) -> None:
    """Run ``hook`` once the session's transaction has committed.

    Use it for effects that must not happen if the transaction rolls back and
    that cannot join it, such as invalidating a Redis cache entry.
    """
    session.info.setdefault("after_commit", []).append(hook)


async def _run_after_commit_hooks(session: AsyncSession) -> None:
    hooks: list[AfterCommitHook] = session.info.pop("after_commit", [])
    for hook in hooks:
        try:
            await hook()
        except Exception:
            # The transaction is committed; a failed follow-up must not turn the
            # response into an error. Each hook is responsible for its own fallback.
            log.exception("db.after_commit_hook_failed", hook=getattr(hook, "__qualname__", "?"))


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Open a session, commit when the block succeeds, roll back when it raises."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException as exc:
            # Errors that record something on purpose (a revoked token family, a
            # fraud signal) set ``keep_changes`` so their writes commit anyway.
            if getattr(exc, "keep_changes", False):
                await session.commit()
                await _run_after_commit_hooks(session)
            else:
                await session.rollback()
                session.info.pop("after_commit", None)
            raise
        await _run_after_commit_hooks(session)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session and commit it once, before the response is sent.

    Use with ``Depends(get_session, scope="function")`` so a failed commit still
    becomes an error response rather than a 200 followed by a lost write.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
