"""The daily insurance expiry check over one batch of carriers.

For each active carrier, the day its auto liability cover runs to (the latest
expiry date of its policies) decides what happens today:

* 30, 15 and 7 days before (configurable), one notice each. A carrier whose
  cover already has fewer days left than a threshold gets only the nearest
  one, not a burst of older ones;
* after the last covered day, one "expired" notice and booking suspended;
* cover back in force (a new policy), suspension lifted.

Notices carry a key of carrier, cover end and threshold, so a batch that runs
twice, or a check that runs twice in a day, notifies once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.carriers import repository
from superior_one.carriers.models import Carrier, NotificationKind
from superior_one.carriers.notifications import Notice, notify
from superior_one.carriers.service import INSURANCE_EXPIRED

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BatchResult:
    carriers: int
    notices: int
    suspended: int
    resumed: int


def notice_threshold(days_left: int, thresholds: Sequence[int]) -> int | None:
    """Return the nearest threshold at or above ``days_left``: 20 days left -> 30, 5 -> 7."""
    reached = [t for t in thresholds if 0 <= days_left <= t]
    return min(reached) if reached else None


async def check_batch(
    session: AsyncSession,
    *,
    first_id: uuid.UUID,
    last_id: uuid.UUID,
    today: date,
    thresholds: Sequence[int],
) -> BatchResult:
    rows = await repository.insurance_coverage_in_range(session, first_id, last_id)

    notices: list[Notice] = []
    to_suspend: list[uuid.UUID] = []
    to_resume: list[uuid.UUID] = []
    for row in rows:
        carrier_id, organization_id, covered_until = row.id, row.organization_id, row.covered_until
        if covered_until is None:
            continue
        days_left = (covered_until - today).days
        if days_left < 0:
            notices.append(
                Notice(
                    organization_id=organization_id,
                    carrier_id=carrier_id,
                    kind=NotificationKind.INSURANCE_EXPIRED,
                    dedupe_key=f"insurance:{carrier_id}:{covered_until.isoformat()}:expired",
                    message=f"Your auto liability insurance expired on "
                    f"{covered_until.isoformat()}. Booking is suspended until you add a "
                    "policy in force.",
                    details={"coveredUntil": covered_until.isoformat()},
                )
            )
            if row.booking_suspended_at is None:
                to_suspend.append(carrier_id)
            continue

        if row.booking_suspension_reason == INSURANCE_EXPIRED:
            to_resume.append(carrier_id)
        threshold = notice_threshold(days_left, thresholds)
        if threshold is not None:
            notices.append(
                Notice(
                    organization_id=organization_id,
                    carrier_id=carrier_id,
                    kind=NotificationKind.INSURANCE_EXPIRING,
                    dedupe_key=f"insurance:{carrier_id}:{covered_until.isoformat()}:{threshold}",
                    message=f"Your auto liability insurance expires on "
                    f"{covered_until.isoformat()} ({days_left} days). Add the renewed policy "
                    "to keep booking loads.",
                    details={
                        "coveredUntil": covered_until.isoformat(),
                        "daysLeft": days_left,
                        "thresholdDays": threshold,
                    },
                )
            )

    created = await notify(session, notices)
    now = datetime.now(UTC)
    if to_suspend:
        await session.execute(
            update(Carrier)
            .where(Carrier.id.in_(to_suspend), Carrier.booking_suspended_at.is_(None))
            .values(booking_suspended_at=now, booking_suspension_reason=INSURANCE_EXPIRED)
        )
    if to_resume:
        await session.execute(
            update(Carrier)
            .where(
                Carrier.id.in_(to_resume), Carrier.booking_suspension_reason == INSURANCE_EXPIRED
            )
            .values(booking_suspended_at=None, booking_suspension_reason=None)
        )
    log.info(
        "carrier.insurance_batch_checked",
        carriers=len(rows),
        notices=len(created),
        suspended=len(to_suspend),
        resumed=len(to_resume),
    )
    return BatchResult(
        carriers=len(rows), notices=len(created), suspended=len(to_suspend), resumed=len(to_resume)
    )
