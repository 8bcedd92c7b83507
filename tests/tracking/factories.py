"""Helpers for tracking tests: a released load with its shipper, carrier and driver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.models import Load, LoadEvent, LoadStatus
from superior_one.resources import Resources
from superior_one.tracking.consumer import GpsConsumer
from superior_one.tracking.models import FraudFlag, GeoEvent, GeofenceEventRow
from tests.loads.factories import Party, add_user, create_party, insert_load

# Far apart, so the two fences never overlap.
PICKUP = (41.525, -88.0817)  # Joliet, IL
DELIVERY = (39.7684, -86.1581)  # Indianapolis, IN


@dataclass
class Haul:
    shipper: Party
    dispatcher: Party
    driver: Party
    load: Load


async def released_load(
    resources: Resources,
    settings: Settings,
    *,
    status: LoadStatus = LoadStatus.RELEASED,
    pickup: tuple[float, float] = PICKUP,
    delivery: tuple[float, float] = DELIVERY,
    pickup_start: datetime | None = None,
    carrier: Party | None = None,
) -> Haul:
    """A load in ``status`` with a carrier dispatcher and an assigned driver."""
    sessionmaker = resources.sessionmaker
    shipper = await create_party(sessionmaker, settings, OrganizationType.SHIPPER, Role.ORG_ADMIN)
    dispatcher = carrier or await create_party(sessionmaker, settings, OrganizationType.CARRIER)
    driver = await add_user(sessionmaker, settings, dispatcher, Role.DRIVER)
    load = await insert_load(
        sessionmaker,
        shipper.organization,
        status=status,
        pickup=pickup,
        delivery=delivery,
        pickup_start=pickup_start or datetime.now(UTC) - timedelta(hours=1),
        carrier=dispatcher.organization,
        driver=driver.user,
    )
    return Haul(shipper, dispatcher, driver, load)


def fix(
    fix_time: datetime,
    lat: float,
    lng: float,
    *,
    accuracy: float = 10.0,
    speed: float | None = 0.0,
    client_fix_id: str | None = None,
    heading: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "latitude": lat,
        "longitude": lng,
        "fixTime": fix_time.isoformat(),
        "accuracyM": accuracy,
        "speedMps": speed,
    }
    if client_fix_id is not None:
        body["clientFixId"] = client_fix_id
    if heading is not None:
        body["headingDeg"] = heading
    return body


async def ping(
    client: httpx.AsyncClient,
    haul: Haul,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/loads/{haul.load.id}/gps-ping", json=body, headers=headers or haul.driver.headers
    )


async def ping_batch(
    client: httpx.AsyncClient,
    haul: Haul,
    fixes: Sequence[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/tracking/pings",
        json={"loadId": str(haul.load.id), "fixes": list(fixes)},
        headers=headers or haul.driver.headers,
    )


def consumer(
    resources: Resources, name: str | None = "test-consumer", **options: Any
) -> GpsConsumer:
    return GpsConsumer(resources, name=name, **options)


async def load_status(resources: Resources, load_id: Any) -> LoadStatus:
    async with unit_of_work(resources.sessionmaker) as session:
        status: LoadStatus = (
            await session.execute(select(Load.status).where(Load.id == load_id))
        ).scalar_one()
        return status


async def stored_fixes(resources: Resources, load_id: Any) -> list[GeoEvent]:
    async with unit_of_work(resources.sessionmaker) as session:
        rows = await session.execute(
            select(GeoEvent).where(GeoEvent.load_id == load_id).order_by(GeoEvent.fix_time)
        )
        return list(rows.scalars())


async def gps_load_events(resources: Resources, load_id: Any) -> list[LoadEvent]:
    async with unit_of_work(resources.sessionmaker) as session:
        rows = await session.execute(
            select(LoadEvent)
            .where(LoadEvent.load_id == load_id, LoadEvent.actor_kind == "GPS")
            .order_by(LoadEvent.id)
        )
        return list(rows.scalars())


async def fence_events(resources: Resources, load_id: Any) -> list[GeofenceEventRow]:
    async with unit_of_work(resources.sessionmaker) as session:
        rows = await session.execute(
            select(GeofenceEventRow)
            .where(GeofenceEventRow.load_id == load_id)
            .order_by(GeofenceEventRow.fix_time, GeofenceEventRow.id)
        )
        return list(rows.scalars())


async def flags(resources: Resources, load_id: Any) -> list[FraudFlag]:
    async with unit_of_work(resources.sessionmaker) as session:
        rows = await session.execute(
            select(FraudFlag).where(FraudFlag.load_id == load_id).order_by(FraudFlag.id)
        )
        return list(rows.scalars())


async def count_fixes(resources: Resources) -> int:
    async with unit_of_work(resources.sessionmaker) as session:
        return int((await session.execute(select(func.count()).select_from(GeoEvent))).scalar_one())
