"""The daily insurance expiry check: notices at 30, 15 and 7 days, once each;
booking suspended on expiry and resumed when a policy is back in force."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import func, select

from superior_one.carriers import insurance
from superior_one.carriers.models import Carrier, CarrierNotification, NotificationKind
from superior_one.carriers.repository import batch_boundaries
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.resources import Resources
from tests.carriers.factories import create_carrier, policy_model
from tests.jobs.helpers import job_row, run_worker_until

TODAY = date(2024, 6, 1)
THRESHOLDS = [30, 15, 7]
ALL_IDS = (uuid.UUID(int=0), uuid.UUID(int=2**128 - 1))


async def _check(resources: Resources, today: date) -> insurance.BatchResult:
    async with unit_of_work(resources.sessionmaker) as session:
        return await insurance.check_batch(
            session, first_id=ALL_IDS[0], last_id=ALL_IDS[1], today=today, thresholds=THRESHOLDS
        )


async def _notices(resources: Resources, carrier: Carrier) -> list[tuple[NotificationKind, str]]:
    async with unit_of_work(resources.sessionmaker) as session:
        rows = await session.execute(
            select(CarrierNotification.kind, CarrierNotification.dedupe_key)
            .where(CarrierNotification.carrier_id == carrier.id)
            .order_by(CarrierNotification.created_at, CarrierNotification.dedupe_key)
        )
    return [(row.kind, row.dedupe_key.rsplit(":", 1)[-1]) for row in rows]


async def _carrier_expiring_in(resources: Resources, days: int, dot: int) -> Carrier:
    return await create_carrier(
        resources.sessionmaker,
        dot_number=dot,
        policies=[policy_model(expiry_date=TODAY + timedelta(days=days))],
    )


def test_notice_threshold_is_the_nearest_one_reached() -> None:
    assert insurance.notice_threshold(31, THRESHOLDS) is None
    assert insurance.notice_threshold(30, THRESHOLDS) == 30
    assert insurance.notice_threshold(20, THRESHOLDS) == 30
    assert insurance.notice_threshold(15, THRESHOLDS) == 15
    assert insurance.notice_threshold(7, THRESHOLDS) == 7
    assert insurance.notice_threshold(0, THRESHOLDS) == 7
    assert insurance.notice_threshold(-1, THRESHOLDS) is None


async def test_check_sends_each_notice_once_over_the_days(resources: Resources) -> None:
    carrier = await _carrier_expiring_in(resources, 30, 3000011)

    for offset in range(0, 31):
        day = TODAY + timedelta(days=offset)
        await _check(resources, day)
        await _check(resources, day)  # a repeated run the same day changes nothing

    assert await _notices(resources, carrier) == [
        (NotificationKind.INSURANCE_EXPIRING, "30"),
        (NotificationKind.INSURANCE_EXPIRING, "15"),
        (NotificationKind.INSURANCE_EXPIRING, "7"),
    ]


async def test_check_skips_thresholds_already_passed(resources: Resources) -> None:
    carrier = await _carrier_expiring_in(resources, 10, 3000012)

    result = await _check(resources, TODAY)

    assert result.notices == 1
    assert await _notices(resources, carrier) == [(NotificationKind.INSURANCE_EXPIRING, "15")]


async def test_check_suspends_booking_on_expiry_once(resources: Resources) -> None:
    carrier = await _carrier_expiring_in(resources, -1, 3000013)

    first = await _check(resources, TODAY)
    second = await _check(resources, TODAY + timedelta(days=1))

    async with unit_of_work(resources.sessionmaker) as session:
        stored = await session.get(Carrier, carrier.id)
    assert stored is not None
    assert stored.booking_suspended_at is not None
    assert stored.booking_suspension_reason == "INSURANCE_EXPIRED"
    assert (first.suspended, second.suspended) == (1, 0)
    assert await _notices(resources, carrier) == [(NotificationKind.INSURANCE_EXPIRED, "expired")]


async def test_check_resumes_booking_when_cover_is_back(resources: Resources) -> None:
    carrier = await _carrier_expiring_in(resources, -1, 3000014)
    await _check(resources, TODAY)
    async with unit_of_work(resources.sessionmaker) as session:
        renewal = policy_model(expiry_date=TODAY + timedelta(days=365), effective_date=TODAY)
        renewal.carrier_id = carrier.id
        session.add(renewal)

    result = await _check(resources, TODAY)

    async with unit_of_work(resources.sessionmaker) as session:
        stored = await session.get(Carrier, carrier.id)
    assert result.resumed == 1
    assert stored is not None
    assert stored.booking_suspended_at is None


async def test_daily_check_fans_out_batches_through_the_worker(
    resources: Resources, settings: Settings
) -> None:
    from superior_one.carriers.tasks import insurance_expiry_check
    from superior_one.jobs import defer
    from tests.jobs.helpers import worker_settings

    for index in range(7):
        await _carrier_expiring_in(resources, 7, 3000020 + index)
    test_settings = worker_settings(settings, carriers_batch_size=3)
    async with unit_of_work(resources.sessionmaker) as session:
        assert len(await batch_boundaries(session, 3)) == 3
        # The periodic tick passes its timestamp: 2024-06-01 12:00 UTC.
        job_id = await defer(session, insurance_expiry_check, timestamp=1717243200)

    async def all_delivered() -> bool:
        if job_row(test_settings, job_id)[0] != "succeeded":
            return False
        async with unit_of_work(resources.sessionmaker) as session:
            pending = await session.scalar(
                select(func.count()).where(CarrierNotification.delivered_at.is_(None))
            )
            total = await session.scalar(select(func.count()).select_from(CarrierNotification))
        return total == 7 and pending == 0

    await run_worker_until(test_settings, all_delivered)
