"""Defer jobs inside the caller's database transaction.

A job is a row in ``procrastinate_jobs``. Inserting it on the same connection
and in the same transaction as the business write means the job exists exactly
when the write commits: a rolled-back request never sends one, and a committed
one never loses its job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from procrastinate.tasks import Task
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.jobs.app import TRACE_CONTEXT_KEY
from superior_one.observability import metrics
from superior_one.observability.tracing import inject_trace_context


async def session_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """Return the psycopg connection under ``session``, inside its current transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, psycopg.AsyncConnection):
        raise TypeError("Jobs are deferred on psycopg 3 connections only (postgresql+psycopg).")
    return driver


def _with_trace_context(kwargs: dict[str, Any]) -> dict[str, Any]:
    # The current span's W3C trace context (traceparent, tracestate), or None when
    # tracing is off; the worker middleware links the job's span to it.
    return {**kwargs, TRACE_CONTEXT_KEY: inject_trace_context() or None}


async def defer(
    session: AsyncSession,
    task: Task[..., Any, ...],
    *,
    schedule_at: datetime | None = None,
    priority: int | None = None,
    queue: str | None = None,
    lock: str | None = None,
    **kwargs: Any,
) -> int:
    """Defer one job of ``task`` in ``session``'s transaction; return the job id.

    ``kwargs`` become the handler's arguments and must be JSON values (UUIDs and
    dates are written as ISO strings).
    """
    deferrer = task.configure(
        connection=await session_connection(session),
        schedule_at=schedule_at,
        priority=priority,
        queue=queue,
        lock=lock,
    )
    job_id: int = await deferrer.defer_async(**_with_trace_context(kwargs))
    metrics.JOBS_DEFERRED.labels(task.name).inc()
    return job_id


async def defer_many(
    session: AsyncSession,
    task: Task[..., Any, ...],
    arguments: Sequence[dict[str, Any]],
    *,
    schedule_at: datetime | None = None,
    priority: int | None = None,
    queue: str | None = None,
) -> list[int]:
    """Defer one job per item of ``arguments`` in one statement, in ``session``'s transaction."""
    if not arguments:
        return []
    deferrer = task.configure(
        connection=await session_connection(session),
        schedule_at=schedule_at,
        priority=priority,
        queue=queue,
    )
    job_ids: list[int] = await deferrer.batch_defer_async(
        *(_with_trace_context(item) for item in arguments)
    )
    metrics.JOBS_DEFERRED.labels(task.name).inc(len(job_ids))
    return job_ids
