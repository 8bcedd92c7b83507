"""Queries over the job queue: failed jobs and their errors, queue statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.jobs.models import JobFailure

MAX_ERROR_MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class FailedJob:
    id: int
    task_name: str
    queue_name: str
    attempts: int
    args: dict[str, Any]
    failed_at: datetime | None
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue_name: str
    waiting: int
    running: int
    failed: int
    oldest_waiting_age_s: float


async def record_failure(
    session: AsyncSession,
    *,
    job_id: int,
    task_name: str,
    queue_name: str,
    attempts: int,
    error: BaseException,
) -> None:
    values = {
        "job_id": job_id,
        "task_name": task_name,
        "queue_name": queue_name,
        "attempts": attempts,
        "error_type": type(error).__qualname__,
        "error_message": str(error)[:MAX_ERROR_MESSAGE_CHARS],
    }
    statement = insert(JobFailure).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[JobFailure.job_id],
            set_={**values, "failed_at": statement.excluded.failed_at},
        )
    )


async def list_failed_jobs(
    session: AsyncSession, *, queue: str | None = None, limit: int = 50
) -> list[FailedJob]:
    """Failed jobs, newest first, with the error that failed them when it was recorded."""
    rows = await session.execute(
        text(
            """
            SELECT job.id, job.task_name, job.queue_name, job.attempts, job.args,
                   failure.error_type, failure.error_message,
                   (SELECT max(event.at) FROM procrastinate_events AS event
                     WHERE event.job_id = job.id AND event.type = 'failed') AS failed_at
              FROM procrastinate_jobs AS job
              LEFT JOIN job_failures AS failure ON failure.job_id = job.id
             WHERE job.status = 'failed'
               AND (CAST(:queue AS varchar) IS NULL OR job.queue_name = :queue)
             ORDER BY job.id DESC
             LIMIT :limit
            """
        ),
        {"queue": queue, "limit": limit},
    )
    return [
        FailedJob(
            id=row.id,
            task_name=row.task_name,
            queue_name=row.queue_name,
            attempts=row.attempts,
            args=row.args,
            failed_at=row.failed_at,
            error_type=row.error_type,
            error_message=row.error_message,
        )
        for row in rows
    ]


async def job_status(session: AsyncSession, job_id: int) -> str | None:
    result = await session.execute(
        text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
    )
    status: str | None = result.scalar_one_or_none()
    return status


async def queue_stats(session: AsyncSession) -> list[QueueStats]:
    """Per queue: jobs due and waiting, running and failed, and how long the oldest has waited.

    The wait runs from the later of the job's deferral and its scheduled time.
    """
    rows = await session.execute(
        text(
            """
            WITH counts AS (
                SELECT queue_name,
                       count(*) FILTER (WHERE status = 'todo'
                                          AND (scheduled_at IS NULL OR scheduled_at <= now()))
                           AS waiting,
                       count(*) FILTER (WHERE status = 'doing') AS running,
                       count(*) FILTER (WHERE status = 'failed') AS failed,
                       min(id) FILTER (WHERE status = 'todo'
                                         AND (scheduled_at IS NULL OR scheduled_at <= now()))
                           AS oldest_id
                  FROM procrastinate_jobs
                 WHERE status IN ('todo', 'doing', 'failed')
                 GROUP BY queue_name
            )
            SELECT counts.queue_name, counts.waiting, counts.running, counts.failed,
                   coalesce(extract(epoch FROM now() - greatest(
                       job.scheduled_at,
                       (SELECT min(event.at) FROM procrastinate_events AS event
                         WHERE event.job_id = job.id))), 0) AS oldest_waiting_age_s
              FROM counts
              LEFT JOIN procrastinate_jobs AS job ON job.id = counts.oldest_id
            """
        )
    )
    return [
        QueueStats(
            queue_name=row.queue_name,
            waiting=row.waiting,
            running=row.running,
            failed=row.failed,
            oldest_waiting_age_s=max(0.0, float(row.oldest_waiting_age_s)),
        )
        for row in rows
    ]
