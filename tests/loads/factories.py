"""Helpers that create loads and their parties for tests, committed like real requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.lifecycle import Actor, record_event
from superior_one.loads.models import HaulType, Load, LoadStatus, LoadType, RateMode
from superior_one.loads.rates import gross_revenue_cents
from superior_one.loads.repository import point_ewkt
from tests.carriers.factories import create_carrier, policy_model
from tests.factories import auth_headers, create_organization, create_user


@dataclass
class Party:
    organization: Organization
    user: User
    headers: dict[str, str]


async def create_party(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    type: OrganizationType,
    role: Role = Role.DISPATCHER,
    *,
    vetted: bool = True,
) -> Party:
    """A user in a new organization; a carrier is vetted (verified, insured) unless told not."""
    organization = await create_organization(sessionmaker, type)
    user = await create_user(sessionmaker, settings, organization, role)
    if type is OrganizationType.CARRIER and vetted:
        await create_carrier(
            sessionmaker,
            organization=organization,
            dot_number=4_000_000 + uuid.uuid4().int % 5_000_000,
            policies=[policy_model(expiry_date=date.today() + timedelta(days=365))],
        )
    return Party(organization, user, auth_headers(settings, user))


async def add_user(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    party: Party,
    role: Role,
) -> Party:
    user = await create_user(sessionmaker, settings, party.organization, role)
    return Party(party.organization, user, auth_headers(settings, user))


def future(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def load_payload(**overrides: Any) -> dict[str, Any]:
    """A valid create body: gravel from Seattle to Tacoma, tomorrow."""
    start = future(24).replace(microsecond=0)
    body: dict[str, Any] = {
        "pickup": {
            "street": "1 Quarry Rd",
            "city": "Seattle",
            "state": "WA",
            "zip": "98101",
            "windowStart": start.isoformat(),
            "windowEnd": (start + timedelta(hours=4)).isoformat(),
        },
        "delivery": {
            "city": "Tacoma",
            "state": "WA",
            "zip": "98402",
            "windowStart": (start + timedelta(hours=6)).isoformat(),
            "windowEnd": (start + timedelta(hours=10)).isoformat(),
        },
        "equipmentType": "END_DUMP",
        "haulType": "LOCAL",
        "loadType": "BULK",
        "commodity": "Crushed stone #57",
        "weightLbs": 44000,
        "rate": "18.50",
        "rateMode": "PER_TON",
        "units": "22",
        "miles": "34.2",
    }
    body.update(overrides)
    return body


async def insert_load(
    sessionmaker: async_sessionmaker[AsyncSession],
    shipper: Organization,
    *,
    status: LoadStatus = LoadStatus.POSTED,
    pickup: tuple[float, float] = (47.6062, -122.3321),
    delivery: tuple[float, float] = (47.2529, -122.4443),
    pickup_state: str = "WA",
    delivery_state: str = "WA",
    pickup_start: datetime | None = None,
    equipment_type: str = "END_DUMP",
    haul_type: HaulType = HaulType.LOCAL,
    commodity: str = "Crushed stone",
    rate_cents: int = 150_000,
    miles: Decimal = Decimal("34.2"),
    carrier: Organization | None = None,
    driver: User | None = None,
    load_id: uuid.UUID | None = None,
    reference: str | None = None,
    commit_event: bool = True,
) -> Load:
    """Insert a load directly (no API), in any status, with one creation event."""
    start = pickup_start or future(24)
    async with unit_of_work(sessionmaker) as session:
        load = Load(
            id=load_id or uuid.uuid4(),
            shipper_organization_id=shipper.id,
            status=status,
            reference=reference,
            pickup_city="Pickup",
            pickup_state=pickup_state,
            pickup_zip="98101",
            pickup_time_zone="America/Los_Angeles",
            pickup_point=point_ewkt(*pickup),
            pickup_window_start=start,
            pickup_window_end=start + timedelta(hours=4),
            delivery_city="Delivery",
            delivery_state=delivery_state,
            delivery_zip="98402",
            delivery_time_zone="America/Los_Angeles",
            delivery_point=point_ewkt(*delivery),
            delivery_window_start=start + timedelta(hours=6),
            delivery_window_end=start + timedelta(hours=10),
            equipment_type=equipment_type,
            haul_type=haul_type,
            load_type=LoadType.BULK,
            commodity=commodity,
            weight_lbs=40_000,
            rate_cents=rate_cents,
            rate_mode=RateMode.FLAT,
            units=None,
            miles=miles,
            gross_revenue_cents=gross_revenue_cents(
                rate_cents, RateMode.FLAT, miles=miles, units=None
            ),
            assigned_carrier_organization_id=carrier.id if carrier else None,
            assigned_driver_user_id=driver.id if driver else None,
            posted_at=datetime.now(UTC) if status is not LoadStatus.DRAFT else None,
        )
        session.add(load)
        await session.flush()
        if commit_event:
            await record_event(session, load.id, None, status, Actor.system("test factory"))
    return load
