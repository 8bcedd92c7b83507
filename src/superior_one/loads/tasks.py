"""Periodic jobs of the loads domain."""

from __future__ import annotations

import structlog
from procrastinate import JobContext

from superior_one.jobs import Queue, app, job_task, worker_deps
from superior_one.loads.service import LoadsRuntime, expire_posted_loads

log = structlog.get_logger(__name__)


@app.periodic(cron="*/5 * * * *", periodic_id="every-5-minutes")
@job_task(name="loads.expire_posted", queue=Queue.MAINTENANCE)
async def expire_posted(context: JobContext, *, timestamp: int) -> int:
    """Expire posted loads whose pickup window has ended (every 5 minutes)."""
    resources = worker_deps(context).resources
    runtime = LoadsRuntime.create(resources.settings, resources.redis)
    expired = await expire_posted_loads(resources.sessionmaker, runtime.board_cache)
    log.info("load.expiry_run", expired=expired)
    return expired
