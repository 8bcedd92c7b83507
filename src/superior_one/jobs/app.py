"""The Procrastinate application, its queues and the decorator every task uses.

Jobs live in PostgreSQL (``procrastinate_jobs``). The application object has
no connection of its own: the api defers jobs on the request session's
connection (:func:`superior_one.jobs.defer.defer`), and the worker opens it on
its job queue pool (:func:`superior_one.jobs.worker.run_worker`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import orjson
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate.tasks import Task

from superior_one.integrations.fmcsa.client import FmcsaClient
from superior_one.jobs.retry import FullJitterBackoff
from superior_one.observability import metrics
from superior_one.resources import Resources

P = ParamSpec("P")
R = TypeVar("R")


class Queue(StrEnum):
    PAYMENTS = "payments"
    WEBHOOKS = "webhooks"
    NOTIFICATIONS = "notifications"
    VERIFICATION = "verification"
    MAINTENANCE = "maintenance"
    BULK = "bulk"


# A worker takes the waiting job with the highest priority first, whatever its
# queue; within one priority, the oldest. Payments and webhooks come first,
# then notifications, then carrier verifications a person is waiting for,
# then housekeeping, and bulk fan-out work last.
QUEUE_PRIORITY: dict[Queue, int] = {
    Queue.PAYMENTS: 50,
    Queue.WEBHOOKS: 50,
    Queue.NOTIFICATIONS: 40,
    Queue.VERIFICATION: 30,
    Queue.MAINTENANCE: 20,
    Queue.BULK: 0,
}

# Key reserved in every job's arguments for the caller's trace context (W3C
# traceparent/tracestate), so a job's spans join the request that deferred it.
TRACE_CONTEXT_KEY = "trace_context"

# Modules whose tasks the worker must know. Add a domain's tasks module here.
TASK_MODULES: list[str] = [
    "superior_one.jobs.tasks",
    "superior_one.carriers.tasks",
    "superior_one.payments.tasks",
]

RETRY_POLICY = FullJitterBackoff()


def _json_dumps(value: Any) -> str:
    # orjson writes UUIDs, dates and datetimes as ISO strings; handlers parse them back.
    return orjson.dumps(value).decode()


def job_queue_connector() -> PsycopgConnector:
    """Create a fresh connector, to open on the job queue pool for each worker or command run.

    A connector opened on an outside pool keeps pointing at it after it closes,
    so each run swaps in a new one (``app.replace_connector``).
    """
    return PsycopgConnector(json_dumps=_json_dumps)


app = App(connector=job_queue_connector(), import_paths=TASK_MODULES)


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """Resources and clients of the worker process, for the jobs it runs."""

    resources: Resources
    fmcsa: FmcsaClient


DEPS_KEY = "deps"


def worker_deps(context: JobContext) -> WorkerDeps:
    deps = context.additional_context.get(DEPS_KEY)
    if not isinstance(deps, WorkerDeps):
        raise RuntimeError("This task runs only inside 'superior-one worker'.")
    return deps


Handler = Callable[Concatenate[JobContext, P], Awaitable[R]]


def job_task(
    *,
    name: str,
    queue: Queue,
    retry: bool = True,
    lock: str | None = None,
    queueing_lock: str | None = None,
) -> Callable[[Handler[P, R]], Task[..., R, ...]]:
    """Register an async handler as a task on ``queue`` with the queue's priority.

    The handler receives the :class:`JobContext` first, then its keyword
    arguments (JSON values). It must be idempotent: a job can run more than once
    (retries, a worker killed after the effect and before the acknowledgement).
    ``name`` is stored in each job row, so keep it stable across refactors.
    """

    def decorator(handler: Handler[P, R]) -> Task[..., R, ...]:
        @functools.wraps(handler)
        async def run(context: JobContext, *args: Any, **kwargs: Any) -> R:
            # The trace context is read by the worker middleware, not by handlers.
            kwargs.pop(TRACE_CONTEXT_KEY, None)
            return await handler(context, *args, **kwargs)

        register = app.task(
            name=name,
            queue=queue.value,
            priority=QUEUE_PRIORITY[queue],
            pass_context=True,
            retry=RETRY_POLICY if retry else False,
            lock=lock,
            queueing_lock=queueing_lock,
        )
        # Exported at 0 from registration: a task's first deferral, retry or failure
        # would be invisible to rate() otherwise (observability/metrics.py, PAYMENTS).
        for counter in (metrics.JOBS_DEFERRED, metrics.JOB_RETRIES, metrics.JOB_FAILURES):
            counter.labels(name)
        return cast("Task[..., R, ...]", register(run))

    return decorator
