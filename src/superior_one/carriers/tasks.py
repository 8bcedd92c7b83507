"""Jobs of the carriers domain: verification, notices, and the periodic checks.

Each periodic check is a short fan-out job that splits the carriers into
batches of ``carriers_batch_size`` and defers one bulk job per batch, so no
single job runs long and batches run in parallel across workers.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import JobContext

from superior_one.carriers import insurance, repository, scores
from superior_one.carriers.notifications import deliver
from superior_one.carriers.service import business_today
from superior_one.carriers.verification import verify_and_record
from superior_one.db import unit_of_work
from superior_one.jobs import (
    Queue,
    TransientJobError,
    app,
    defer,
    defer_many,
    job_task,
    worker_deps,
)

log = structlog.get_logger(__name__)

HOURS_PER_WEEK = 7 * 24
# Each hourly tick takes a little more than its share of the week, so carriers
# that fell behind (an outage, a burst of registrations) catch up within days.
REVERIFY_CATCH_UP = 1.25
# Verifications of one tick are spread over this many slots within the hour.
REVERIFY_SLOTS_PER_HOUR = 12


@job_task(name="carriers.verify", queue=Queue.VERIFICATION)
async def verify(context: JobContext, *, carrier_id: str) -> str | None:
    """Verify one carrier against FMCSA; retried with backoff while FMCSA is unavailable."""
    deps = worker_deps(context)
    outcome = await verify_and_record(
        deps.resources.sessionmaker, deps.fmcsa, deps.resources.settings, uuid.UUID(carrier_id)
    )
    if outcome is None:
        log.info("carrier.verification_skipped", carrier_id=carrier_id)
        return None
    if not outcome.recorded and outcome.retry_in_s is not None:
        # Our budget is used up: queue the check again within the budget's window
        # (spread at random) rather than spend one of the job's retry attempts.
        delay_s = random.uniform(outcome.retry_in_s / 2, outcome.retry_in_s)  # noqa: S311
        async with unit_of_work(deps.resources.sessionmaker) as session:
            await defer(
                session,
                verify,
                schedule_at=datetime.now(UTC) + timedelta(seconds=delay_s),
                queue=context.job.queue,
                priority=context.job.priority,
                lock=f"carrier:{carrier_id}",
                carrier_id=carrier_id,
            )
        return "REQUEUED"
    if outcome.retry_in_s is not None:
        raise TransientJobError(
            f"FMCSA could not verify carrier {carrier_id} now; the check runs again later.",
            retry_in_s=outcome.retry_in_s,
        )
    return outcome.status.value


@job_task(name="carriers.deliver_notification", queue=Queue.NOTIFICATIONS)
async def deliver_notification(context: JobContext, *, notification_id: str) -> bool:
    async with unit_of_work(worker_deps(context).resources.sessionmaker) as session:
        return await deliver(session, uuid.UUID(notification_id))


@app.periodic(cron="0 11 * * *", periodic_id="daily")
@job_task(name="carriers.insurance_expiry_check", queue=Queue.BULK)
async def insurance_expiry_check(context: JobContext, *, timestamp: int) -> int:
    """Daily at 11:00 UTC (early morning in US time zones): fan out the insurance check."""
    settings = worker_deps(context).resources.settings
    today = business_today(settings, datetime.fromtimestamp(timestamp, UTC))
    async with unit_of_work(worker_deps(context).resources.sessionmaker) as session:
        batches = await repository.batch_boundaries(session, settings.carriers_batch_size)
        await defer_many(
            session,
            insurance_expiry_batch,
            [
                {"first_id": str(first), "last_id": str(last), "today": today.isoformat()}
                for first, last in batches
            ],
        )
    log.info("carrier.insurance_check_fanned_out", batches=len(batches), today=today.isoformat())
    return len(batches)


@job_task(name="carriers.insurance_expiry_batch", queue=Queue.BULK)
async def insurance_expiry_batch(
    context: JobContext, *, first_id: str, last_id: str, today: str
) -> int:
    deps = worker_deps(context)
    async with unit_of_work(deps.resources.sessionmaker) as session:
        result = await insurance.check_batch(
            session,
            first_id=uuid.UUID(first_id),
            last_id=uuid.UUID(last_id),
            today=datetime.fromisoformat(today).date(),
            thresholds=deps.resources.settings.carriers_expiry_notice_days,
        )
    return result.notices


@app.periodic(cron="5 * * * *", periodic_id="hourly")
@job_task(name="carriers.reverify_due", queue=Queue.BULK)
async def reverify_due(context: JobContext, *, timestamp: int) -> int:
    """Hourly: queue the re-verification of this hour's share of active carriers.

    Each carrier comes due ``carriers_reverify_interval_days`` after its last
    check; the jobs of one tick are spread over the hour so the FMCSA budget is
    used evenly rather than in a burst.
    """
    deps = worker_deps(context)
    settings = deps.resources.settings
    now = datetime.fromtimestamp(timestamp, UTC)
    async with unit_of_work(deps.resources.sessionmaker) as session:
        active = await repository.active_count(session)
        hours = settings.carriers_reverify_interval_days * 24
        limit = max(1, math.ceil(active / hours * REVERIFY_CATCH_UP))
        claimed = await repository.claim_due_for_verification(
            session,
            now=now,
            limit=limit,
            next_at=now + timedelta(days=settings.carriers_reverify_interval_days),
        )
        slot_s = 3600 / REVERIFY_SLOTS_PER_HOUR
        for slot in range(REVERIFY_SLOTS_PER_HOUR):
            await defer_many(
                session,
                verify,
                [{"carrier_id": str(c)} for c in claimed[slot::REVERIFY_SLOTS_PER_HOUR]],
                schedule_at=now + timedelta(seconds=slot * slot_s),
                queue=Queue.BULK.value,
                priority=0,
            )
    log.info("carrier.reverification_queued", carriers=len(claimed), active=active)
    return len(claimed)


@app.periodic(cron="30 9 * * *", periodic_id="daily")
@job_task(name="carriers.score_all", queue=Queue.BULK)
async def score_all(context: JobContext, *, timestamp: int) -> int:
    """Daily: fan out the performance score computation."""
    deps = worker_deps(context)
    settings = deps.resources.settings
    today = business_today(settings, datetime.fromtimestamp(timestamp, UTC))
    async with unit_of_work(deps.resources.sessionmaker) as session:
        batches = await repository.batch_boundaries(session, settings.carriers_batch_size)
        await defer_many(
            session,
            score_batch,
            [
                {"first_id": str(first), "last_id": str(last), "computed_on": today.isoformat()}
                for first, last in batches
            ],
        )
    return len(batches)


@job_task(name="carriers.score_batch", queue=Queue.BULK)
async def score_batch(context: JobContext, *, first_id: str, last_id: str, computed_on: str) -> int:
    async with unit_of_work(worker_deps(context).resources.sessionmaker) as session:
        return await scores.score_batch(
            session,
            first_id=uuid.UUID(first_id),
            last_id=uuid.UUID(last_id),
            computed_on=datetime.fromisoformat(computed_on).date(),
            now=datetime.now(UTC),
        )
