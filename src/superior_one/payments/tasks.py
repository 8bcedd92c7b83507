"""Jobs of the payments domain: invoicing, charges, reconciliation, payouts, webhooks.

Every handler can run more than once (retries, a worker killed after the effect
and before the acknowledgement) and has its effect once. Invoices are unique
per load, and attempts and payouts are settled only while PROCESSING. Provider
calls reuse the operation's idempotency key, and a webhook event is processed
only while it is unprocessed.

The worker has no long-lived provider client of its own: each job that calls
the provider opens one from settings for its run.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import JobContext
from sqlalchemy import text

from superior_one.db import unit_of_work
from superior_one.jobs import Queue, app, defer_many, job_task, worker_deps
from superior_one.payments import idempotency, notifications, payouts, service, webhook_events
from superior_one.payments.audit import AuditActor
from superior_one.payments.models import AttemptStatus, ChargeTrigger, InvoiceStatus
from superior_one.payments.repository import PaymentsRepository
from superior_one.payments.runtime import open_provider

log = structlog.get_logger(__name__)

SCHEDULE_BATCH = 500
STALE_ATTEMPT_FACTOR = 5
STALE_EVENT_AFTER = timedelta(minutes=10)


@job_task(name="payments.create_invoice", queue=Queue.PAYMENTS)
async def create_invoice(context: JobContext, *, load_id: str) -> str:
    """Invoice a load that reached COMPLETED (deferred in that transaction)."""
    deps = worker_deps(context)
    async with unit_of_work(deps.resources.sessionmaker) as session:
        result = await service.create_invoice_for_load(
            session,
            deps.resources.settings,
            uuid.UUID(load_id),
            AuditActor.system("load completed"),
        )
    return str(result.invoice.id)


@job_task(name="payments.reconcile_attempt", queue=Queue.PAYMENTS)
async def reconcile_attempt(context: JobContext, *, attempt_id: str) -> str:
    """Settle a charge attempt whose outcome was not recorded (timeout, crash)."""
    deps = worker_deps(context)
    settings = deps.resources.settings
    async with unit_of_work(deps.resources.sessionmaker) as session:
        attempt = await PaymentsRepository(session).get_attempt(uuid.UUID(attempt_id))
        if attempt is None or attempt.status is not AttemptStatus.PROCESSING:
            # Settled by the request or a webhook, as almost always: no provider call.
            return attempt.status.value if attempt is not None else "missing"
    async with open_provider(settings, deps.resources.redis) as provider:
        status = await service.reconcile_attempt(
            deps.resources.sessionmaker, settings, provider, uuid.UUID(attempt_id)
        )
    return status.value


@job_task(name="payments.charge_invoice", queue=Queue.PAYMENTS)
async def charge_invoice(context: JobContext, *, invoice_id: str, trigger: str) -> str:
    """Charge an invoice on its due date or as a dunning retry."""
    deps = worker_deps(context)
    settings = deps.resources.settings
    async with open_provider(settings, deps.resources.redis) as provider:
        return await service.charge_from_job(
            deps.resources.sessionmaker,
            settings,
            provider,
            uuid.UUID(invoice_id),
            ChargeTrigger(trigger),
        )


@job_task(name="payments.send_payout", queue=Queue.PAYMENTS)
async def send_payout(context: JobContext, *, payout_id: str) -> str:
    deps = worker_deps(context)
    async with open_provider(deps.resources.settings, deps.resources.redis) as provider:
        status = await payouts.send_payout(
            deps.resources.sessionmaker, provider, uuid.UUID(payout_id)
        )
    return status.value


@job_task(name="payments.process_event", queue=Queue.WEBHOOKS)
async def process_event(context: JobContext, *, event_row_id: int) -> str:
    deps = worker_deps(context)
    async with unit_of_work(deps.resources.sessionmaker) as session:
        return await webhook_events.process(session, deps.resources.settings, event_row_id)


@job_task(name="payments.deliver_notification", queue=Queue.NOTIFICATIONS)
async def deliver_notification(context: JobContext, *, notification_id: str) -> bool:
    async with unit_of_work(worker_deps(context).resources.sessionmaker) as session:
        return await notifications.deliver(session, uuid.UUID(notification_id))


@app.periodic(cron="*/5 * * * *", periodic_id="payments-schedule")
@job_task(name="payments.schedule", queue=Queue.PAYMENTS)
async def schedule(context: JobContext, *, timestamp: int) -> int:
    """Charge due invoices and dunning retries, and sweep stuck work (every 5 minutes).

    Due invoices are claimed (their ``next_charge_at`` cleared) in the
    transaction that defers their charge jobs, so a tick never queues an
    invoice twice. Attempts and webhook events left unsettled well past their
    own job (whose retries may have run out) get a new job.
    """
    deps = worker_deps(context)
    settings = deps.resources.settings
    now = datetime.now(UTC)
    async with unit_of_work(deps.resources.sessionmaker) as session:
        claimed = (
            await session.execute(
                text(
                    """
                    UPDATE invoices SET next_charge_at = NULL, updated_at = now()
                     WHERE id IN (SELECT id FROM invoices
                                   WHERE next_charge_at <= now()
                                     AND status IN ('OPEN', 'PAYMENT_FAILED')
                                   ORDER BY next_charge_at
                                   LIMIT :limit
                                   FOR UPDATE SKIP LOCKED)
                    RETURNING id, status
                    """
                ),
                {"limit": SCHEDULE_BATCH},
            )
        ).all()
        await defer_many(
            session,
            charge_invoice,
            [
                {
                    "invoice_id": str(invoice_id),
                    "trigger": (
                        ChargeTrigger.AUTO
                        if status == InvoiceStatus.OPEN
                        else ChargeTrigger.DUNNING
                    ).value,
                }
                for invoice_id, status in claimed
            ],
        )

        stale_before = now - timedelta(
            seconds=settings.payments_reconcile_after_s * STALE_ATTEMPT_FACTOR
        )
        stale = await PaymentsRepository(session).stale_processing_attempts(
            older_than=stale_before, limit=SCHEDULE_BATCH
        )
        await defer_many(session, reconcile_attempt, [{"attempt_id": str(a)} for a in stale])

        unprocessed = (
            await session.execute(
                text(
                    "SELECT id FROM provider_events WHERE processed_at IS NULL "
                    "AND received_at < :before ORDER BY received_at LIMIT :limit"
                ),
                {"before": now - STALE_EVENT_AFTER, "limit": SCHEDULE_BATCH},
            )
        ).scalars()
        await defer_many(session, process_event, [{"event_row_id": int(e)} for e in unprocessed])
    log.info("payments.scheduled", charges=len(claimed), stale_attempts=len(stale))
    return len(claimed)


@app.periodic(cron="40 * * * *", periodic_id="payments-purge")
@job_task(name="payments.purge_idempotency_keys", queue=Queue.MAINTENANCE)
async def purge_idempotency_keys(context: JobContext, *, timestamp: int) -> int:
    """Hourly: delete Idempotency-Key records past their retention (at least 24 h)."""
    async with unit_of_work(worker_deps(context).resources.sessionmaker) as session:
        return await idempotency.purge_expired(session)
