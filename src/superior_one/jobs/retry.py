"""Retry policy of jobs: transient failures only, exponential backoff with full jitter.

Only transient failures are retried: a dependency that was briefly down or
busy (database connection lost, Redis unreachable, FMCSA unavailable, a
network error). A bug or a rejected input fails the job at once; running it
again would fail the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import sqlalchemy.exc
from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.jobs import Job

from superior_one.config import Settings
from superior_one.integrations.fmcsa.errors import FmcsaUnavailableError
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS


class TransientJobError(Exception):
    """Raise from a handler when the job should run again later.

    ``retry_in_s`` is the earliest useful retry (for example when a rate limit
    frees up); the backoff never schedules the retry sooner than that.
    """

    def __init__(self, message: str, *, retry_in_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientJobError,
    FmcsaUnavailableError,
    psycopg.OperationalError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    httpx.TransportError,
    *REDIS_UNAVAILABLE_ERRORS,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT_ERRORS)


@dataclass(slots=True)
class FullJitterBackoff(BaseRetryStrategy):
    """Retry transient failures after ``uniform(0, min(cap, base * 2**attempt))`` seconds.

    ``max_attempts`` counts every run, the first included. Tasks share one
    instance, configured from settings when the worker starts.
    """

    max_attempts: int = 8
    base_s: float = 2.0
    cap_s: float = 1800.0

    def configure(self, settings: Settings) -> None:
        self.max_attempts = settings.jobs_retry_max_attempts
        self.base_s = settings.jobs_retry_base_s
        self.cap_s = settings.jobs_retry_cap_s

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        # job.attempts is the number of runs before this one.
        if job.attempts + 1 >= self.max_attempts or not is_transient(exception):
            return None
        delay_s = self.delay_s(job.attempts)
        hinted = getattr(exception, "retry_in_s", None)
        if isinstance(hinted, int | float):
            delay_s = max(delay_s, float(hinted))
        return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=delay_s))

    def delay_s(self, attempt: int) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt, 32))
        return random.uniform(0.0, ceiling)  # noqa: S311 (jitter, not a secret)
