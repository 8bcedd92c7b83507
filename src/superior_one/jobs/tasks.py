"""Housekeeping tasks of the job system itself."""

from __future__ import annotations

import importlib

import structlog
from procrastinate import JobContext
from procrastinate.exceptions import ConnectorException
from procrastinate.jobs import Status

from superior_one.db import unit_of_work
from superior_one.jobs.app import Queue, app, job_task, worker_deps

log = structlog.get_logger(__name__)

STALLED_CHECK_ID = "stalled-check"


@job_task(name="jobs.recover_stalled", queue=Queue.MAINTENANCE, retry=False)
async def recover_stalled_jobs(context: JobContext, *, timestamp: int) -> int:
    """Put back in the queue the jobs of workers that stopped sending heartbeats.

    A job that has used all its attempts is failed instead, so a job that kills
    its worker every time does not loop forever. Scheduled by the worker from
    ``jobs_stalled_check_cron``.
    """
    deps = worker_deps(context)
    settings = deps.resources.settings
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings.jobs_stalled_after_s)

    recovered = 0
    for job in stalled:
        try:
            if job.attempts + 1 >= settings.jobs_retry_max_attempts:
                await manager.finish_job(job=job, status=Status.FAILED, delete_job=False)
                log.error("job.stalled_failed", stalled_job_id=job.id, task=job.task_name)
                continue
            await manager.retry_job(job)
        except ConnectorException:
            # Another worker recovered or finished it between the query and now.
            log.info("job.stalled_already_handled", stalled_job_id=job.id)
            continue
        recovered += 1
        log.warning(
            "job.stalled_requeued", stalled_job_id=job.id, task=job.task_name, attempts=job.attempts
        )
    return recovered


@app.periodic(cron="30 3 * * *", periodic_id="purge")
@job_task(name="jobs.purge_succeeded", queue=Queue.MAINTENANCE)
async def purge_succeeded_jobs(context: JobContext, *, timestamp: int) -> None:
    """Delete succeeded jobs older than ``jobs_keep_succeeded_h``; failed jobs stay."""
    hours = worker_deps(context).resources.settings.jobs_keep_succeeded_h
    await context.app.job_manager.delete_old_jobs(nb_hours=hours, include_failed=False)


@app.periodic(cron="15 * * * *", periodic_id="partitions")
@job_task(name="jobs.maintain_partitions", queue=Queue.MAINTENANCE)
async def maintain_partitions(context: JobContext, *, timestamp: int) -> None:
    """Hourly: create upcoming ``geo_events`` partitions and drop expired ones.

    The work is ``superior_one.tracking.partitions.maintain_partitions``. It is
    looked up by name, so this infrastructure package does not import a domain
    at import time. Without it, the job logs a warning and does nothing.
    """
    try:
        module = importlib.import_module("superior_one.tracking.partitions")
    except ModuleNotFoundError:
        log.warning("jobs.partitions_hook_missing")
        return
    resources = worker_deps(context).resources
    async with unit_of_work(resources.sessionmaker) as session:
        report = await module.maintain_partitions(session, resources.settings)
    log.info("jobs.partitions_maintained", created=report.created, dropped=report.dropped)
