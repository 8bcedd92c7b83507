"""The invoice state machine and the one function that changes an invoice's status.

Allowed changes::

    DRAFT ---------> OPEN ---------> PROCESSING ---------> PAID ---------> REFUNDED
      |               |   ^              |
      v               v   |              v
     VOID <--------- PAYMENT_FAILED <----+
                      (retry: PAYMENT_FAILED -> PROCESSING)

A change is a conditional ``UPDATE ... WHERE status IN (<allowed sources>)``:
of two concurrent changes the second matches no row and fails with 409, so an
event that arrives late (a webhook out of order) never moves an invoice
backwards. Each applied change writes an audit row in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.payments import audit
from superior_one.payments.audit import AuditActor
from superior_one.payments.errors import InvalidInvoiceTransitionError, InvoiceNotFoundError
from superior_one.payments.models import Invoice, InvoiceStatus

log = structlog.get_logger(__name__)

S = InvoiceStatus
ALLOWED_TRANSITIONS: Mapping[InvoiceStatus, frozenset[InvoiceStatus]] = {
    S.DRAFT: frozenset({S.OPEN, S.VOID}),
    S.OPEN: frozenset({S.PROCESSING, S.VOID}),
    S.PROCESSING: frozenset({S.PAID, S.PAYMENT_FAILED}),
    S.PAYMENT_FAILED: frozenset({S.PROCESSING, S.VOID}),
    S.PAID: frozenset({S.REFUNDED}),
    S.VOID: frozenset(),
    S.REFUNDED: frozenset(),
}
CHARGEABLE = frozenset({S.OPEN, S.PAYMENT_FAILED})


def can_transition(current: InvoiceStatus, requested: InvoiceStatus) -> bool:
    return requested in ALLOWED_TRANSITIONS[current]


def sources_of(target: InvoiceStatus) -> frozenset[InvoiceStatus]:
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def transition_error(
    invoice_id: uuid.UUID, current: InvoiceStatus, requested: InvoiceStatus
) -> InvalidInvoiceTransitionError:
    allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none (final status)"
    return InvalidInvoiceTransitionError(
        f"Invoice {invoice_id} is {current}; it cannot become {requested}. "
        f"From {current} it can become: {allowed}.",
        currentStatus=current.value,
        requestedStatus=requested.value,
    )


async def transition_invoice(
    session: AsyncSession,
    invoice_id: uuid.UUID,
    to_status: InvoiceStatus,
    actor: AuditActor,
    *,
    expected_from: Collection[InvoiceStatus] | None = None,
    changes: Mapping[str, Any] | None = None,
    reason: str | None = None,
    current: InvoiceStatus | None = None,
) -> Invoice:
    """Move an invoice to ``to_status`` if the state machine allows it; flush, never commit.

    ``expected_from`` narrows the statuses this caller may start from.
    ``current`` is the status a caller read while holding the row's lock (FOR
    UPDATE, or its own insert). Without it the row is locked here. Raises
    :class:`InvalidInvoiceTransitionError` (409) naming the current status when
    the change is not allowed or another transaction changed the invoice first.
    """
    sources = sources_of(to_status)
    if expected_from is not None:
        sources = sources & frozenset(expected_from)
    values: dict[str, Any] = {"status": to_status, "updated_at": func.now(), **(changes or {})}

    # Locked, so the status recorded as "from" is the one the update replaces.
    before = current
    if before is None:
        before = (
            await session.execute(
                select(Invoice.status).where(Invoice.id == invoice_id).with_for_update()
            )
        ).scalar_one_or_none()
    if before is None:
        raise InvoiceNotFoundError(f"Invoice {invoice_id} does not exist.")

    invoice = (
        await session.scalars(
            update(Invoice)
            .where(Invoice.id == invoice_id, Invoice.status.in_(sources))
            .values(values)
            .returning(Invoice),
            execution_options={"populate_existing": True},
        )
    ).one_or_none()
    if invoice is None:
        raise transition_error(invoice_id, before, to_status)

    await audit.record(
        session,
        actor,
        "invoice.status_changed",
        invoice_id=invoice_id,
        from_status=before.value,
        to_status=to_status.value,
        reason=reason,
    )
    log.info(
        "invoice.status_changed",
        invoice_id=str(invoice_id),
        from_status=before.value,
        to_status=to_status.value,
        actor_kind=actor.kind.value,
    )
    return invoice
