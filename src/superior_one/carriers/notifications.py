"""Notices to carrier organizations: created once per key, delivered by a job.

A notice is a row in ``carrier_notifications`` whose ``dedupe_key`` is unique,
inserted in the business transaction together with its delivery job, so a
notice exists, and is delivered, exactly when the change that caused it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.carriers.models import CarrierNotification, NotificationKind
from superior_one.jobs import defer_many

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Notice:
    organization_id: uuid.UUID
    carrier_id: uuid.UUID
    kind: NotificationKind
    dedupe_key: str
    message: str
    details: dict[str, Any]


async def notify(session: AsyncSession, notices: Sequence[Notice]) -> list[uuid.UUID]:
    """Create the notices not created before and defer their delivery; return the new ids."""
    if not notices:
        return []
    rows = await session.execute(
        insert(CarrierNotification)
        .values(
            [
                {
                    "id": uuid.uuid4(),
                    "organization_id": notice.organization_id,
                    "carrier_id": notice.carrier_id,
                    "kind": notice.kind,
                    "dedupe_key": notice.dedupe_key,
                    "message": notice.message,
                    "details": notice.details,
                }
                for notice in notices
            ]
        )
        .on_conflict_do_nothing(index_elements=[CarrierNotification.dedupe_key])
        .returning(CarrierNotification.id)
    )
    created = list(rows.scalars())

    from superior_one.carriers.tasks import deliver_notification

    await defer_many(session, deliver_notification, [{"notification_id": str(i)} for i in created])
    return created


async def deliver(session: AsyncSession, notification_id: uuid.UUID) -> bool:
    """Mark the notice delivered; return False when it already was (a repeated job).

    NOTE: delivery is a structured log line and the ``delivered_at`` stamp; no
    e-mail or SMS provider is wired yet. A provider call belongs here, after the
    stamp commits, keyed by the notice id so the provider can drop duplicates.
    """
    rows = await session.execute(
        update(CarrierNotification)
        .where(
            CarrierNotification.id == notification_id, CarrierNotification.delivered_at.is_(None)
        )
        .values(delivered_at=datetime.now(UTC))
        .returning(
            CarrierNotification.organization_id,
            CarrierNotification.kind,
            CarrierNotification.dedupe_key,
        )
    )
    row = rows.one_or_none()
    if row is None:
        return False
    log.info(
        "carrier.notification_delivered",
        notification_id=str(notification_id),
        organization_id=str(row.organization_id),
        kind=row.kind,
        dedupe_key=row.dedupe_key,
    )
    return True
