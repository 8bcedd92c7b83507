"""The worker process: runs jobs from every queue and defers the periodic ones.

Start it with ``superior-one worker``. Any number of workers may run against
one database: each job runs on one worker at a time, and each periodic tick is
deferred once whichever workers see it. A worker sends a heartbeat every
``jobs_heartbeat_s``. When a worker goes silent (killed, host lost), its jobs
are put back in their queue by :func:`superior_one.jobs.tasks.recover_stalled_jobs`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
import structlog
from procrastinate import JobContext
from procrastinate.app import WorkerOptions
from procrastinate.exceptions import JobAborted

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.errors import classify_exception
from superior_one.integrations.fmcsa.client import FmcsaClient, http_timeout
from superior_one.jobs import repository
from superior_one.jobs.app import (
    DEPS_KEY,
    RETRY_POLICY,
    TRACE_CONTEXT_KEY,
    Queue,
    WorkerDeps,
    app,
    job_queue_connector,
    worker_deps,
)
from superior_one.jobs.tasks import STALLED_CHECK_ID, recover_stalled_jobs
from superior_one.observability import metrics, setup_observability
from superior_one.observability.tracing import job_span
from superior_one.resources import Resources, open_resources

log = structlog.get_logger(__name__)

QUEUE_METRICS_INTERVAL_S = 15.0

# Procrastinate's own log lines are sentences; ours (job.*) carry the same facts as keys.
logging.getLogger("procrastinate").setLevel(logging.WARNING)


async def observe_job(
    call_next: Callable[[], Awaitable[Any]], context: JobContext, _worker: Any
) -> Any:
    """Bind the job's ids to every log line it writes; log and record how it ended."""
    job = context.job
    attempt = job.attempts + 1
    # The job's span links to the request that deferred it, when that one was traced.
    with (
        job_span(
            job.task_name,
            job.task_kwargs.get(TRACE_CONTEXT_KEY),
            job_id=job.id,
            queue=job.queue,
            attempt=attempt,
        ),
        structlog.contextvars.bound_contextvars(
            job_id=job.id, job_task=job.task_name, job_queue=job.queue, job_attempt=attempt
        ),
    ):
        log.info("job.started")
        started = time.perf_counter()
        try:
            result = await call_next()
        except (JobAborted, asyncio.CancelledError):
            log.warning("job.aborted", duration_s=round(time.perf_counter() - started, 4))
            raise
        except Exception as exc:
            duration_s = time.perf_counter() - started
            will_retry = context.task.get_retry_exception(exception=exc, job=job) is not None
            metrics.count_error("job", classify_exception(exc), _error_code(exc))
            if will_retry:
                metrics.JOB_RETRIES.labels(job.task_name).inc()
                metrics.JOB_DURATION.labels(job.task_name, "retried").observe(duration_s)
                log.warning(
                    "job.failed_will_retry",
                    duration_s=round(duration_s, 4),
                    error_type=type(exc).__name__,
                )
            else:
                metrics.JOB_FAILURES.labels(job.task_name).inc()
                metrics.JOB_DURATION.labels(job.task_name, "failed").observe(duration_s)
                log.error(
                    "job.failed",
                    duration_s=round(duration_s, 4),
                    error_type=type(exc).__name__,
                    exc_info=exc,
                )
                await _record_failure(context, attempt, exc)
            raise
        duration_s = time.perf_counter() - started
        metrics.JOB_DURATION.labels(job.task_name, "succeeded").observe(duration_s)
        log.info("job.succeeded", duration_s=round(duration_s, 4))
        return result


def _error_code(exc: BaseException) -> str:
    # Our errors carry a code; anything else is named by its class (a bounded set).
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__name__


async def _record_failure(context: JobContext, attempt: int, exc: BaseException) -> None:
    job = context.job
    assert job.id is not None
    try:
        async with unit_of_work(worker_deps(context).resources.sessionmaker) as session:
            await repository.record_failure(
                session,
                job_id=job.id,
                task_name=job.task_name,
                queue_name=job.queue,
                attempts=attempt,
                error=exc,
            )
    except Exception as record_error:
        # The job's status is still failed; only the error text is lost.
        log.warning("job.failure_not_recorded", error_type=type(record_error).__name__)


async def publish_queue_metrics(resources: Resources, interval_s: float) -> None:
    """Set the queue depth and oldest-wait gauges every ``interval_s`` seconds."""
    while True:
        try:
            async with unit_of_work(resources.sessionmaker) as session:
                stats = {row.queue_name: row for row in await repository.queue_stats(session)}
            for queue in {*(q.value for q in Queue), *stats}:
                row = stats.get(queue)
                metrics.JOBS_QUEUE_DEPTH.labels(queue).set(row.waiting if row else 0)
                metrics.JOBS_OLDEST_AGE.labels(queue).set(row.oldest_waiting_age_s if row else 0)
        except Exception as exc:
            log.warning("worker.queue_metrics_failed", error_type=type(exc).__name__)
        await asyncio.sleep(interval_s)


def _schedule_stalled_job_check(settings: Settings) -> None:
    # Registered at start-up rather than by decorator, so its frequency comes from settings.
    registry = app.periodic_registry
    registry.periodic_tasks.pop((recover_stalled_jobs.name, STALLED_CHECK_ID), None)
    registry.register_task(
        task=recover_stalled_jobs,
        cron=settings.jobs_stalled_check_cron,
        periodic_id=STALLED_CHECK_ID,
        configure_kwargs={},
    )


async def run_worker(
    settings: Settings,
    *,
    queues: Iterable[str] | None = None,
    concurrency: int | None = None,
    wait: bool = True,
    name: str | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM), or until the queues are empty if not ``wait``."""
    for module in settings.jobs_extra_import_paths:
        importlib.import_module(module)
    RETRY_POLICY.configure(settings)
    _schedule_stalled_job_check(settings)
    app.periodic_defaults = {"max_delay": settings.jobs_periodic_max_delay_s}
    concurrency = concurrency or settings.jobs_concurrency
    # Before the resources open: the engine and Redis client are traced from creation.
    setup_observability(settings, service_name="superior-one-worker")

    async with (
        open_resources(
            settings, pool_size=concurrency + 2, job_queue_pool_size=concurrency + 2
        ) as resources,
        httpx.AsyncClient(timeout=http_timeout(settings)) as http,
    ):
        fmcsa = FmcsaClient.create(
            settings, http=http, redis=resources.redis, limits_storage=resources.limits_storage
        )
        deps = WorkerDeps(resources=resources, fmcsa=fmcsa)
        if settings.metrics_enabled:
            metrics.start_metrics_server(settings.metrics_port_worker, settings.metrics_address)
        queue_metrics = asyncio.create_task(
            publish_queue_metrics(resources, QUEUE_METRICS_INTERVAL_S), name="queue metrics"
        )
        with app.replace_connector(job_queue_connector()):
            async with app.open_async(resources.job_queue_pool):
                log.info(
                    "worker.started", queues=list(queues or []) or "all", concurrency=concurrency
                )
                options: WorkerOptions = {
                    "concurrency": concurrency,
                    "wait": wait,
                    "name": name or "worker",
                    "additional_context": {DEPS_KEY: deps},
                    "update_heartbeat_interval": settings.jobs_heartbeat_s,
                    "stalled_worker_timeout": settings.jobs_stalled_after_s,
                    "worker_middleware": [observe_job],
                    "install_signal_handlers": install_signal_handlers,
                    "delete_jobs": "never",
                }
                if queues:
                    options["queues"] = list(queues)
                try:
                    await app.run_worker_async(**options)
                finally:
                    queue_metrics.cancel()
                log.info("worker.stopped")
