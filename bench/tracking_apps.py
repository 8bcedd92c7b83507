"""App factory for the tracking benchmark's side-by-side: the replaced synchronous ping.

The replaced system handled each ping inside the request: it looked the load
up, inserted a row, computed the distances to the stops by hand, and wrote the
load's status from that one fix. ``create_legacy_app`` is the platform with that
handler added at ``/legacy/loads/{id}/gps-ping`` (authentication as built, so
the comparison is the ping path alone). Its table is created by the benchmark.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from superior_one.app import create_app
from superior_one.auth.dependencies import CurrentPrincipal
from superior_one.db import SessionDep
from superior_one.errors import NotFoundError, PermissionDeniedError
from superior_one.schemas import RequestSchema

LEGACY_TABLE = """
CREATE TABLE IF NOT EXISTS legacy_gps_pings (
    id bigserial PRIMARY KEY,
    load_id uuid NOT NULL,
    driver_user_id uuid NOT NULL,
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    fix_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL
)
"""
RADIUS_M = 500.0
EARTH_RADIUS_M = 6_371_000.0  # the replaced code's sphere


class LegacyPingIn(RequestSchema):
    latitude: float
    longitude: float
    fix_time: datetime
    accuracy_m: float | None = None
    speed_mps: float | None = None


def _haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    # Reproduces the replaced system's hand-written distance on purpose.
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


router = APIRouter()


@router.post("/legacy/loads/{load_id}/gps-ping")
async def legacy_ping(
    load_id: uuid.UUID, body: LegacyPingIn, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, str]:
    load = (
        await session.execute(
            text(
                "SELECT status, assigned_driver_user_id, ST_Y(pickup_point::geometry) AS plat, "
                "ST_X(pickup_point::geometry) AS plng, ST_Y(delivery_point::geometry) AS dlat, "
                "ST_X(delivery_point::geometry) AS dlng FROM loads WHERE id = :id"
            ),
            {"id": load_id},
        )
    ).one_or_none()
    if load is None:
        raise NotFoundError("no such load")
    if load.assigned_driver_user_id != principal.user_id:
        raise PermissionDeniedError("not your load")
    await session.execute(
        text(
            "INSERT INTO legacy_gps_pings (load_id, driver_user_id, lat, lng, fix_time, "
            "received_at) VALUES (:load, :driver, :lat, :lng, :fix_time, :received_at)"
        ),
        {
            "load": load_id,
            "driver": principal.user_id,
            "lat": body.latitude,
            "lng": body.longitude,
            "fix_time": body.fix_time,
            "received_at": datetime.now(UTC),
        },
    )
    to_pickup = _haversine_m(body.latitude, body.longitude, load.plat, load.plng)
    to_delivery = _haversine_m(body.latitude, body.longitude, load.dlat, load.dlng)
    status = load.status
    # One fix decides: outside the pickup circle means picked up, inside the
    # delivery circle means delivered.
    if status == "RELEASED" and to_pickup > RADIUS_M:
        status = "IN_TRANSIT"
    elif status == "IN_TRANSIT" and to_delivery <= RADIUS_M:
        status = "DELIVERED"
    await session.execute(
        text("UPDATE loads SET status = :status, updated_at = now() WHERE id = :id"),
        {"status": status, "id": load_id},
    )
    return {"status": status}


def create_legacy_app() -> FastAPI:
    app = create_app()
    app.include_router(router)
    return app
