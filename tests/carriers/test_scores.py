"""Daily performance scores computed from load events, interests and fraud flags."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from superior_one.accounts.models import OrganizationType
from superior_one.carriers import scores
from superior_one.carriers.models import CarrierScore
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.models import ActorKind, LoadEvent, LoadInterest, LoadStatus
from superior_one.resources import Resources
from tests.carriers.factories import create_carrier
from tests.factories import create_organization
from tests.loads.factories import insert_load

ALL_IDS = (uuid.UUID(int=0), uuid.UUID(int=2**128 - 1))


def test_score_without_history_is_full_marks() -> None:
    activity = scores.CarrierActivity(
        carrier_id=uuid.uuid4(),
        loads=0,
        picked_up=0,
        on_time_pickups=0,
        delivered=0,
        on_time_deliveries=0,
        cancellations=0,
        median_response_s=None,
        fraud_flags=0,
    )

    assert scores.score(activity) == Decimal("100.00")


def test_score_weighs_lateness_cancellations_and_flags() -> None:
    activity = scores.CarrierActivity(
        carrier_id=uuid.uuid4(),
        loads=2,
        picked_up=2,
        on_time_pickups=1,
        delivered=2,
        on_time_deliveries=2,
        cancellations=0,
        median_response_s=scores.FAST_RESPONSE_S,
        fraud_flags=1,
    )

    # 40 (deliveries) + 15 (half the pickups) + 15 + 15 - 25 (one flag)
    assert scores.score(activity) == Decimal("60.00")


async def test_score_batch_reads_load_events(resources: Resources, settings: Settings) -> None:
    shipper = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    carrier_org = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    carrier = await create_carrier(resources.sessionmaker, organization=carrier_org)
    now = datetime.now(UTC)
    on_time = await insert_load(
        resources.sessionmaker,
        shipper,
        status=LoadStatus.DELIVERED,
        carrier=carrier_org,
        pickup_start=now - timedelta(days=3),
    )
    late = await insert_load(
        resources.sessionmaker,
        shipper,
        status=LoadStatus.DELIVERED,
        carrier=carrier_org,
        pickup_start=now - timedelta(days=2),
    )
    cancelled = await insert_load(
        resources.sessionmaker,
        shipper,
        status=LoadStatus.CANCELLED,
        pickup_start=now - timedelta(days=1),
    )
    async with unit_of_work(resources.sessionmaker) as session:
        for load, pickup_delay_h, delivery_delay_h in ((on_time, 1, 7), (late, 6, 11)):
            for to_status, delay_h in (
                (LoadStatus.IN_TRANSIT, pickup_delay_h),
                (LoadStatus.DELIVERED, delivery_delay_h),
            ):
                session.add(
                    LoadEvent(
                        load_id=load.id,
                        to_status=to_status,
                        actor_kind=ActorKind.GPS,
                        actor_description="geofence",
                        occurred_at=load.pickup_window_start + timedelta(hours=delay_h),
                    )
                )
        session.add(
            LoadEvent(
                load_id=cancelled.id,
                to_status=LoadStatus.CANCELLED,
                actor_kind=ActorKind.USER,
                actor_organization_id=carrier_org.id,
                actor_description="carrier dispatcher",
                occurred_at=now - timedelta(days=1),
            )
        )
        session.add(
            LoadInterest(
                load_id=late.id,
                carrier_organization_id=carrier_org.id,
                created_at=(late.posted_at or now) + timedelta(minutes=5),
            )
        )

    async with unit_of_work(resources.sessionmaker) as session:
        stored = await scores.score_batch(
            session, first_id=ALL_IDS[0], last_id=ALL_IDS[1], computed_on=date.today(), now=now
        )
        row = (
            await session.execute(select(CarrierScore).where(CarrierScore.carrier_id == carrier.id))
        ).scalar_one()

    assert stored == 1
    assert row.loads_considered == 2
    assert row.on_time_pickup_rate == Decimal("0.5000")
    # Delivery windows end 10 h after the pickup window opens: 11 h is late.
    assert row.on_time_delivery_rate == Decimal("0.5000")
    assert row.cancellations == 1
    assert row.fraud_flags == 0
    assert row.median_response_s is not None
    assert row.median_response_s <= 300
    assert row.score < Decimal("100")
