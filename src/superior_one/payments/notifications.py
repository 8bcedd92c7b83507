"""Notices to shippers, carriers and operations about payments.

A notice is a row of ``payment_notifications`` with a unique dedupe key. It is
inserted with its delivery job in the transaction of the change that caused
it, so it exists, and is delivered, exactly when that change commits. A
repeated job creates it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.jobs import defer_many
from superior_one.payments.models import Audience, NotificationKind, PaymentNotification

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Notice:
    audience: Audience
    kind: NotificationKind
    dedupe_key: str
    message: str
    organization_id: uuid.UUID | None = None
    invoice_id: uuid.UUID | None = None
    payout_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)


def shipper_and_operations(
    shipper_organization_id: uuid.UUID,
    kind: NotificationKind,
    dedupe_key: str,
    message: str,
    *,
    invoice_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> list[Notice]:
    """Build the same notice for the shipper and for operations."""
    return [
        Notice(
            Audience.SHIPPER,
            kind,
            f"{dedupe_key}:shipper",
            message,
            organization_id=shipper_organization_id,
            invoice_id=invoice_id,
            details=details or {},
        ),
        Notice(
            Audience.OPERATIONS,
            kind,
            f"{dedupe_key}:operations",
            message,
            invoice_id=invoice_id,
            details=details or {},
        ),
    ]


async def notify(session: AsyncSession, notices: Sequence[Notice]) -> list[uuid.UUID]:
    """Create the notices not created before and defer their delivery; return the new ids."""
    if not notices:
        return []
    rows = await session.execute(
        insert(PaymentNotification)
        .values(
            [
                {
                    "id": uuid.uuid4(),
                    "audience": n.audience,
                    "organization_id": n.organization_id,
                    "kind": n.kind,
                    "dedupe_key": n.dedupe_key[:200],
                    "message": n.message,
                    "details": n.details,
                    "invoice_id": n.invoice_id,
                    "payout_id": n.payout_id,
                }
                for n in notices
            ]
        )
        .on_conflict_do_nothing(index_elements=[PaymentNotification.dedupe_key])
        .returning(PaymentNotification.id)
    )
    created = list(rows.scalars())

    from superior_one.payments.tasks import deliver_notification

    await defer_many(session, deliver_notification, [{"notification_id": str(i)} for i in created])
    return created


async def deliver(session: AsyncSession, notification_id: uuid.UUID) -> bool:
    """Mark the notice delivered; return False when it already was (a repeated job).

    NOTE: delivery is a structured log line and the ``delivered_at`` stamp, as for
    carrier notices; no e-mail or SMS provider is wired. A provider call belongs
    here, after the stamp commits, keyed by the notice id.
    """
    row = (
        await session.execute(
            update(PaymentNotification)
            .where(
                PaymentNotification.id == notification_id,
                PaymentNotification.delivered_at.is_(None),
            )
            .values(delivered_at=datetime.now(UTC))
            .returning(
                PaymentNotification.audience,
                PaymentNotification.organization_id,
                PaymentNotification.kind,
                PaymentNotification.invoice_id,
                PaymentNotification.payout_id,
            )
        )
    ).one_or_none()
    if row is None:
        return False
    log.info(
        "payments.notification_delivered",
        notification_id=str(notification_id),
        audience=row.audience,
        organization_id=str(row.organization_id) if row.organization_id else None,
        kind=row.kind,
        invoice_id=str(row.invoice_id) if row.invoice_id else None,
        payout_id=str(row.payout_id) if row.payout_id else None,
    )
    return True
