"""Cases C01 and C03 through the whole pipeline: HTTP ingest, stream, consumer, lifecycle.

The cases' fix times are from June 2024; ingest rejects fixes older than three
days, so every time is moved by the same offset to end just before now. The
intervals between fixes, and so every dwell and speed, stay as in the cases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from superior_one.tracking.models import TruckPosition
from superior_one.tracking.stream import GpsStream
from tests.tracking.factories import (
    Haul,
    consumer,
    fence_events,
    gps_load_events,
    load_status,
    ping,
    ping_batch,
    released_load,
    stored_fixes,
)

# --- C01: a truck parked at the edge of a 500 m pickup fence ---

C01_CENTER = (41.525, -88.0817)
# (fix time, lat, lng, speed m/s, heading, accuracy m)
C01_PINGS = [
    ("2024-06-12T14:00:00Z", 41.525, -88.075829, 0.0, 90, 15),
    ("2024-06-12T14:00:30Z", 41.525159, -88.075629, 0.3, 88, 20),
    ("2024-06-12T14:01:00Z", 41.524922, -88.075794, 0.0, 91, 15),
    ("2024-06-12T14:01:30Z", 41.52508, -88.075567, 0.4, 89, 25),
    ("2024-06-12T14:02:00Z", 41.525, -88.075853, 0.0, 90, 15),
    ("2024-06-12T14:02:30Z", 41.52484, -88.075605, 0.2, 92, 20),
    ("2024-06-12T14:03:00Z", 41.538506, -88.0817, 0.0, 0, 1800),  # cell-tower fix
    ("2024-06-12T14:03:30Z", 41.525, -88.075829, 0.0, 90, 15),
    ("2024-06-12T14:30:00Z", 41.524466, -88.073584, 9.0, 95, 10),
    ("2024-06-12T14:30:30Z", 41.523792, -88.068619, 12.0, 97, 10),
]


def _case_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _shift(last_case_time: str) -> timedelta:
    return (
        datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1) - _case_time(last_case_time)
    )


def _c01_body(row: tuple[Any, ...], shift: timedelta) -> dict[str, Any]:
    stamp, lat, lng, speed, heading, accuracy = row
    return {
        "latitude": lat,
        "longitude": lng,
        "fixTime": (_case_time(stamp) + shift).isoformat(),
        "speedMps": speed,
        "headingDeg": heading,
        "accuracyM": accuracy,
    }


async def _run_c01(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> tuple[Haul, timedelta, list[LoadStatus]]:
    shift = _shift(C01_PINGS[-1][0])
    haul = await released_load(
        resources,
        settings,
        pickup=C01_CENTER,
        pickup_start=_case_time(C01_PINGS[0][0]) + shift - timedelta(hours=1),
    )
    worker = consumer(resources)
    statuses = []
    for row in C01_PINGS:
        response = await ping(client, haul, _c01_body(row, shift))
        assert response.status_code == 202, response.text
        await worker.drain()
        statuses.append(await load_status(resources, haul.load.id))
    return haul, shift, statuses


async def test_c01_enter_once_at_ping_1_and_exit_once_at_ping_10(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, shift, _ = await _run_c01(client, resources, settings)

    pickup_events = [
        (e.event_type, e.fix_time - shift)
        for e in await fence_events(resources, haul.load.id)
        if e.stop_kind == "pickup" and e.event_type in ("ENTERED", "EXITED")
    ]

    assert pickup_events == [
        ("ENTERED", _case_time("2024-06-12T14:00:00Z")),
        ("EXITED", _case_time("2024-06-12T14:30:30Z")),
    ]


async def test_c01_status_changes_once_at_ping_10(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, shift, statuses = await _run_c01(client, resources, settings)
    stored = {f.id: f for f in await stored_fixes(resources, haul.load.id)}
    moved = [
        e
        for e in await gps_load_events(resources, haul.load.id)
        if e.to_status is LoadStatus.IN_TRANSIT
    ]

    assert statuses[:9] == [LoadStatus.RELEASED] * 9
    assert statuses[9] is LoadStatus.IN_TRANSIT
    assert len(moved) == 1
    assert moved[0].gps_fix_id is not None
    assert stored[moved[0].gps_fix_id].fix_time - shift == _case_time("2024-06-12T14:30:30Z")


async def test_c01_cell_tower_fix_is_stored_but_moves_nothing(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, shift, _ = await _run_c01(client, resources, settings)
    ping_7 = _case_time("2024-06-12T14:03:00Z") + shift

    stored_times = [f.fix_time for f in await stored_fixes(resources, haul.load.id)]
    decided_times = [e.fix_time for e in await fence_events(resources, haul.load.id)]

    assert ping_7 in stored_times
    assert ping_7 not in decided_times


# --- C03: late, duplicate, future and zone-less fixes at a delivery stop ---

C03_CENTER = (39.7684, -86.1581)


def _c03(ping_id: str, stamp: str, lat: float, lng: float, speed: float, accuracy: float) -> dict:
    return {
        "clientFixId": ping_id,
        "fixTime": stamp,
        "latitude": lat,
        "longitude": lng,
        "speedMps": speed,
        "accuracyM": accuracy,
    }


P101 = _c03("p-101", "2024-06-12T16:00:00Z", 39.767384, -86.158579, 0, 8)
P102 = _c03("p-102", "2024-06-12T16:00:30Z", 39.767776, -86.158567, 0, 8)
P103 = _c03("p-103", "2024-06-12T16:01:00Z", 39.767776, -86.158567, 0, 8)
P040 = _c03("p-040", "2024-06-12T15:20:00Z", 39.937638, -86.078069, 27, 10)
P041 = _c03("p-041", "2024-06-12T15:20:30Z", 39.93204, -86.072204, 27, 10)
P104 = {**P103, "clientFixId": "p-104", "fixTime": "2031-06-12T16:02:00Z"}
P105 = {**P103, "clientFixId": "p-105", "fixTime": "2024-06-12T11:02:30"}  # no offset


def _moved(body: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    stamp = body["fixTime"]
    if not stamp.endswith("Z"):
        return body  # the zone-less fix stays zone-less
    return {**body, "fixTime": (_case_time(stamp) + shift).isoformat()}


async def _run_c03(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> tuple[Haul, timedelta, dict[str, httpx.Response]]:
    shift = _shift("2024-06-12T16:02:35Z")
    haul = await released_load(
        resources, settings, status=LoadStatus.IN_TRANSIT, delivery=C03_CENTER
    )
    worker = consumer(resources)
    responses: dict[str, httpx.Response] = {}
    for name, body in [("p-101", P101), ("p-102", P102), ("p-103", P103)]:
        responses[name] = await ping(client, haul, _moved(body, shift))
        await worker.drain()
    responses["late batch"] = await ping_batch(
        client, haul, [_moved(P040, shift), _moved(P041, shift)]
    )
    await worker.drain()
    for name, body in [("p-102 retry", P102), ("p-104", P104), ("p-105", P105)]:
        responses[name] = await ping(client, haul, _moved(body, shift))
        await worker.drain()
    return haul, shift, responses


async def test_c03_delivered_once_at_p103(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, _, _ = await _run_c03(client, resources, settings)
    stored = {f.id: f for f in await stored_fixes(resources, haul.load.id)}
    delivered = [
        e
        for e in await gps_load_events(resources, haul.load.id)
        if e.to_status is LoadStatus.DELIVERED
    ]

    assert await load_status(resources, haul.load.id) is LoadStatus.DELIVERED
    assert len(delivered) == 1
    assert delivered[0].gps_fix_id is not None
    assert stored[delivered[0].gps_fix_id].client_fix_id == "p-103"


async def test_c03_late_batch_is_stored_before_p101_without_events(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, shift, responses = await _run_c03(client, resources, settings)
    late_times = {_case_time(P040["fixTime"]) + shift, _case_time(P041["fixTime"]) + shift}

    stored = await stored_fixes(resources, haul.load.id)
    events = await fence_events(resources, haul.load.id)

    assert responses["late batch"].json()["accepted"] == 2  # not rejected as a jump
    assert [f.client_fix_id for f in stored] == ["p-040", "p-041", "p-101", "p-102", "p-103"]
    assert [e for e in events if e.fix_time in late_times] == []


async def test_c03_retry_is_accepted_and_stored_once(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, _, responses = await _run_c03(client, resources, settings)
    stored = [f for f in await stored_fixes(resources, haul.load.id) if f.client_fix_id == "p-102"]

    assert responses["p-102 retry"].status_code == 202
    assert responses["p-102 retry"].json()["results"][0]["status"] == "duplicate"
    assert len(stored) == 1


async def test_c03_future_and_zone_less_fixes_are_422(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, _, responses = await _run_c03(client, resources, settings)

    assert (responses["p-104"].status_code, responses["p-104"].json()["reason"]) == (
        422,
        "in_future",
    )
    assert (responses["p-105"].status_code, responses["p-105"].json()["reason"]) == (
        422,
        "missing_offset",
    )


async def test_c03_latest_position_stays_p103(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul, shift, _ = await _run_c03(client, resources, settings)
    p103_time = _case_time(P103["fixTime"]) + shift

    async with unit_of_work(resources.sessionmaker) as session:
        position = (
            await session.execute(
                select(TruckPosition).where(TruckPosition.driver_user_id == haul.driver.user.id)
            )
        ).scalar_one()
    redis_position = await GpsStream(resources.redis, settings).position_details(
        haul.dispatcher.organization.id, [str(haul.driver.user.id)]
    )

    assert position.fix_time == p103_time
    assert redis_position[str(haul.driver.user.id)][0] == p103_time
