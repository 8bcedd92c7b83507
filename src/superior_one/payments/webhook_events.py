"""The webhook inbox: store each provider event once, respond at once, act on it in a job.

Receiving (the request) verifies the signature over the raw body, stores the
event under its provider id (unique) and defers its processing in the same
transaction. A redelivery of the same event id finds the row and does nothing
more. Processing (the job) locks the row, applies the event if it was not
processed yet, and marks it processed, in one transaction.

Events can arrive late and out of order. Handlers never move state backwards:
an attempt is settled only while PROCESSING, an invoice changes only along the
state machine, and an account's state only if the event is newer than the one
stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.config import Settings
from superior_one.errors import AppError
from superior_one.jobs import defer
from superior_one.payments import audit, payouts
from superior_one.payments.audit import AuditActor
from superior_one.payments.models import (
    AttemptStatus,
    Audience,
    EventStatus,
    InvoiceStatus,
    NotificationKind,
    PaymentAttempt,
    Payout,
    ProviderEvent,
    SettledBy,
)
from superior_one.payments.notifications import Notice, notify
from superior_one.payments.repository import PaymentsRepository
from superior_one.payments.service import ChargeOutcome, apply_refund, settle_attempt
from superior_one.payments.stripe_provider import (
    connected_account_from_object,
    payment_intent_from_object,
)
from superior_one.payments.webhooks import parse_webhook_secrets, verify_signature

log = structlog.get_logger(__name__)

PROVIDER = "stripe"
# How far an event's 'created' may be ahead of our clock (clock skew). A later one would
# rank as newer than every real event for its account and block their updates.
CREATED_MAX_AHEAD = timedelta(days=1)
# Card and billing details a provider object may carry: never stored.
REDACTED_KEYS = frozenset(
    {
        "billing_details",
        "card",
        "card_present",
        "client_secret",
        "payment_method_details",
        "shipping",
        "source",
    }
)


class InvalidWebhookPayloadError(AppError):
    status = 400
    code = "invalid_webhook_payload"
    title = "Invalid webhook payload"


@dataclass(frozen=True, slots=True)
class Received:
    event_id: str
    event_type: str
    duplicate: bool


def redact(value: Any) -> Any:
    """Drop card and billing details from a provider object, recursively."""
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items() if k not in REDACTED_KEYS}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidWebhookPayloadError("The webhook body is not JSON.") from exc
    if not isinstance(event, dict):
        raise InvalidWebhookPayloadError("The webhook body is not a JSON object.")
    data = event.get("data")
    if (
        not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or "created" not in event
        or not isinstance(data, dict)
        or not isinstance(data.get("object"), dict)
    ):
        raise InvalidWebhookPayloadError(
            "The webhook body is not an event: it needs 'id', 'type', 'created' and 'data.object'."
        )
    return event


def _created_at(value: Any) -> datetime:
    """Return an event's ``created`` (Unix time in seconds) as a UTC datetime."""
    # type() because bool is an int subclass. Floats are rejected: 1e30 overflows datetime.
    latest = datetime.now(UTC) + CREATED_MAX_AHEAD
    if type(value) is int and 0 <= value <= latest.timestamp():
        return datetime.fromtimestamp(value, UTC)
    raise InvalidWebhookPayloadError(
        f"Invalid 'created' value {str(value)[:40]!r}. Send the event's creation time "
        "as whole Unix seconds, from 0 to at most one day after the current time.",
        field="created",
    )


async def receive(
    session: AsyncSession,
    settings: Settings,
    payload: bytes,
    signature_header: str | None,
    request_id: str | None,
) -> Received:
    """Verify, store and queue one webhook delivery; flush only (the request commits)."""
    from superior_one.payments.tasks import process_event

    verify_signature(
        payload,
        signature_header,
        parse_webhook_secrets(settings.stripe_webhook_secret),
        tolerance_s=settings.stripe_webhook_tolerance_s,
    )
    event = _parse(payload)
    data_object = event["data"]["object"]
    object_id = data_object.get("id")
    row_id = (
        await session.execute(
            insert(ProviderEvent)
            .values(
                provider=PROVIDER,
                event_id=event["id"][:255],
                event_type=event["type"][:100],
                object_id=object_id[:255] if isinstance(object_id, str) else None,
                provider_created_at=_created_at(event["created"]),
                payload=redact(event),
                status=EventStatus.RECEIVED,
                request_id=request_id[:64] if request_id else None,
            )
            .on_conflict_do_nothing(index_elements=[ProviderEvent.provider, ProviderEvent.event_id])
            .returning(ProviderEvent.id)
        )
    ).scalar_one_or_none()
    duplicate = row_id is None
    if not duplicate:
        await defer(session, process_event, lock=f"provider-event:{row_id}", event_row_id=row_id)
    log.info(
        "payments.webhook_received",
        event_id=event["id"],
        event_type=event["type"],
        duplicate=duplicate,
    )
    return Received(event["id"], event["type"], duplicate)


async def process(session: AsyncSession, settings: Settings, event_row_id: int) -> str:
    """Apply one stored event once; return what happened (also stored as its outcome)."""
    row = (
        await session.execute(
            select(ProviderEvent).where(ProviderEvent.id == event_row_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        return "missing"
    if row.processed_at is not None:
        return "already processed"

    actor = AuditActor.provider(row.event_id, row.request_id)
    handler = _HANDLERS.get(row.event_type)
    if handler is None:
        status, outcome = EventStatus.IGNORED, f"type {row.event_type} not handled"
    else:
        status, outcome = await handler(session, settings, row, actor)
    row.status = status
    row.outcome = outcome[:200]
    row.processed_at = datetime.now(UTC)
    log.info(
        "payments.webhook_processed",
        event_id=row.event_id,
        event_type=row.event_type,
        status=status.value,
        outcome=row.outcome,
    )
    return outcome


# --- handlers -----------------------------------------------------------------------

Result = tuple[EventStatus, str]


def _object(row: ProviderEvent) -> dict[str, Any]:
    data_object: dict[str, Any] = row.payload["data"]["object"]
    return data_object


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def _find_attempt(session: AsyncSession, intent: dict[str, Any]) -> PaymentAttempt | None:
    metadata = intent.get("metadata") or {}
    return await PaymentsRepository(session).find_attempt(
        attempt_id=_uuid(metadata.get("attempt_id")), payment_intent_id=intent.get("id")
    )


async def _payment_intent_outcome(
    session: AsyncSession, settings: Settings, row: ProviderEvent, actor: AuditActor
) -> Result:
    data_object = _object(row)
    attempt = await _find_attempt(session, data_object)
    if attempt is None:
        return EventStatus.IGNORED, "no attempt for this payment intent"
    outcome = ChargeOutcome.from_intent(payment_intent_from_object(data_object))
    if outcome.kind == "unknown":
        return EventStatus.IGNORED, f"payment intent not final ({data_object.get('status')})"
    settlement = await settle_attempt(
        session, settings, attempt.id, outcome, actor, SettledBy.WEBHOOK
    )
    return await _confirm(session, settlement.attempt, outcome, settlement.applied, row, actor)


async def _confirm(
    session: AsyncSession,
    attempt: PaymentAttempt,
    outcome: ChargeOutcome,
    applied: bool,
    row: ProviderEvent,
    actor: AuditActor,
) -> Result:
    """Stamp the attempt as confirmed by the provider, or flag a disagreement."""
    expected = AttemptStatus.SUCCEEDED if outcome.kind == "succeeded" else AttemptStatus.FAILED
    if attempt.status is not expected:
        # A late event about an outcome we recorded differently (a failure event
        # of a payment method that later succeeded, say): never applied backwards.
        if attempt.status is AttemptStatus.SUCCEEDED:
            return EventStatus.IGNORED, "attempt already SUCCEEDED"
        log.error(
            "payments.provider_disagrees",
            attempt_id=str(attempt.id),
            recorded=attempt.status.value,
            event_type=row.event_type,
        )
        await notify(
            session,
            [
                Notice(
                    Audience.OPERATIONS,
                    NotificationKind.RECONCILIATION_REVIEW,
                    f"attempt:{attempt.id}:disagreement:{row.event_id}",
                    f"The provider reports {row.event_type} for payment attempt {attempt.id}, "
                    f"recorded as {attempt.status.value}; check it with the provider.",
                    invoice_id=attempt.invoice_id,
                )
            ],
        )
        return EventStatus.IGNORED, f"disagrees with recorded {attempt.status.value}"
    if attempt.provider_confirmed_at is None:
        attempt.provider_confirmed_at = datetime.now(UTC)
        await audit.record(
            session,
            actor,
            "charge.confirmed_by_provider",
            invoice_id=attempt.invoice_id,
            attempt_id=attempt.id,
            event_id=row.event_id,
            status=attempt.status.value,
        )
    if applied:
        return EventStatus.PROCESSED, f"attempt {attempt.status.value}"
    return EventStatus.PROCESSED, f"confirmed {attempt.status.value}"


async def _charge_refunded(
    session: AsyncSession, settings: Settings, row: ProviderEvent, actor: AuditActor
) -> Result:
    charge = _object(row)
    if not charge.get("refunded"):
        # NOTE: partial refunds are not modelled; only a full refund changes the invoice.
        return EventStatus.IGNORED, "partial refund"
    attempt = await PaymentsRepository(session).find_attempt(
        attempt_id=None, payment_intent_id=charge.get("payment_intent")
    )
    if attempt is None:
        return EventStatus.IGNORED, "no attempt for this charge"
    invoice = await PaymentsRepository(session).get_invoice(None, attempt.invoice_id)
    if invoice is None or invoice.status is not InvoiceStatus.PAID:
        state = invoice.status.value if invoice is not None else "missing"
        return EventStatus.IGNORED, f"invoice {state}"
    await apply_refund(session, invoice.id, None, actor)
    return EventStatus.PROCESSED, "invoice refunded"


async def _account_updated(
    session: AsyncSession, settings: Settings, row: ProviderEvent, actor: AuditActor
) -> Result:
    data_object = _object(row)
    account = await PaymentsRepository(session).payout_account_by_provider_id(
        str(data_object.get("id"))
    )
    if account is None:
        return EventStatus.IGNORED, "unknown connected account"
    stored = await payouts.store_account_state(
        session,
        account.organization_id,
        connected_account_from_object(data_object),
        row.provider_created_at,
        actor,
    )
    if stored is None or stored.provider_state_at != row.provider_created_at:
        return EventStatus.IGNORED, "older than the stored account state"
    return EventStatus.PROCESSED, f"payouts_enabled={stored.payouts_enabled}"


async def _transfer_created(
    session: AsyncSession, settings: Settings, row: ProviderEvent, actor: AuditActor
) -> Result:
    transfer = _object(row)
    payout_id = _uuid((transfer.get("metadata") or {}).get("payout_id"))
    if payout_id is None:
        return EventStatus.IGNORED, "transfer without payout id"
    payout = await session.get(Payout, payout_id)
    if payout is None:
        return EventStatus.IGNORED, "unknown payout"
    before = payout.status
    updated = await payouts.mark_sent(session, payout_id, str(transfer["id"]), actor)
    if updated is None or before is updated.status:
        return EventStatus.IGNORED, f"payout already {before.value}"
    return EventStatus.PROCESSED, "payout PAID"


_HANDLERS = {
    "payment_intent.succeeded": _payment_intent_outcome,
    "payment_intent.payment_failed": _payment_intent_outcome,
    "payment_intent.canceled": _payment_intent_outcome,
    "charge.refunded": _charge_refunded,
    "account.updated": _account_updated,
    "transfer.created": _transfer_created,
}
