"""Reads: a load's track, trucks' positions, trucks near a point, ETA, stop fences, IDOR."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.geo.geodesy import LatLng, destination, distance_mi
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from tests.loads.factories import add_user, create_party
from tests.tracking.factories import (
    DELIVERY,
    PICKUP,
    Haul,
    consumer,
    fence_events,
    fix,
    ping,
    ping_batch,
    released_load,
)


def _east(metres: float, origin: tuple[float, float] = PICKUP) -> tuple[float, float]:
    point = destination(LatLng(*origin), 90.0, metres)
    return point.lat, point.lng


def _minute_start() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=10)


async def _ten_fixes(client: httpx.AsyncClient, resources: Resources, haul: Haul) -> datetime:
    """Ten fixes 20 s apart, starting on a minute: 4 one-minute buckets."""
    start = _minute_start()
    fixes = [fix(start + timedelta(seconds=20 * i), *_east(100 * i), speed=5.0) for i in range(10)]
    await ping_batch(client, haul, fixes)
    await consumer(resources).drain()
    return start


async def test_track_downsampled_keeps_first_fix_per_interval(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    start = await _ten_fixes(client, resources, haul)

    response = await client.get(
        f"/loads/{haul.load.id}/track?resolutionS=60", headers=haul.shipper.headers
    )

    assert [item["fixTime"] for item in response.json()["items"]] == [
        (start + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in range(4)
    ]


async def test_track_pages_cover_every_fix_once(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _ten_fixes(client, resources, haul)
    seen: list[int] = []
    cursor = None

    for _ in range(10):
        params = {"resolutionS": 0, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(
                f"/loads/{haul.load.id}/track", params=params, headers=haul.driver.headers
            )
        ).json()
        seen += [item["fixId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert len(seen) == 10
    assert seen == sorted(set(seen))


async def test_downsampled_pages_do_not_repeat_an_interval(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _ten_fixes(client, resources, haul)
    url = f"/loads/{haul.load.id}/track"

    first = (await client.get(url, params={"limit": 2}, headers=haul.shipper.headers)).json()
    second = (
        await client.get(
            url, params={"limit": 2, "cursor": first["nextCursor"]}, headers=haul.shipper.headers
        )
    ).json()

    assert len(first["items"]) + len(second["items"]) == 4
    assert second["nextCursor"] is None


async def test_track_rejects_a_foreign_cursor(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.get(
        f"/loads/{haul.load.id}/track?cursor=bm90LWEtY3Vyc29y", headers=haul.shipper.headers
    )

    assert response.status_code == 422


def _forged_cursor(*values: object) -> str:
    # json, not orjson: orjson refuses the integer beyond 64 bits a forger may send.
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("cursor", "resolution_s"),
    [
        (_forged_cursor("2026-12-05T00:00:00", 5, 60), 60),  # no offset: was 500
        (_forged_cursor("0001-01-01T00:00:00+14:00", 5, 60), 60),  # overflow: was 500
        (_forged_cursor("9999-12-31T23:59:59+00:00", 5, 3600), 3600),  # overflow: was 500
        (_forged_cursor("2026-12-05T00:00:00+00:00", 10**30, 0), 0),  # beyond BIGINT
        (_forged_cursor("2026-12-05T00:00:00+00:00", "12", 0), 0),
    ],
    ids=["naive", "year-1", "year-9999", "huge-id", "text-id"],
)
async def test_track_forged_cursor_is_422(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    cursor: str,
    resolution_s: int,
) -> None:
    haul = await released_load(resources, settings)

    response = await client.get(
        f"/loads/{haul.load.id}/track",
        params={"cursor": cursor, "resolutionS": resolution_s},
        headers=haul.shipper.headers,
    )

    assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor")
    assert response.json()["field"] == "cursor"


async def test_carrier_flags_huge_cursor_is_422(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.get(
        f"/tracking/carriers/{haul.dispatcher.organization.id}/fraud-flags",
        params={"cursor": _forged_cursor(10**30)},
        headers=haul.shipper.headers,
    )

    assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor")


@pytest.mark.parametrize("who", ["other carrier", "other shipper", "other driver"])
async def test_another_tenants_load_track_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, who: str
) -> None:
    haul = await released_load(resources, settings)
    if who == "other driver":
        prober = await add_user(resources.sessionmaker, settings, haul.dispatcher, Role.DRIVER)
    else:
        kind = OrganizationType.CARRIER if who == "other carrier" else OrganizationType.SHIPPER
        prober = await create_party(resources.sessionmaker, settings, kind, Role.ORG_ADMIN)

    response = await client.get(f"/loads/{haul.load.id}/track", headers=prober.headers)

    assert response.status_code == 404


async def test_another_tenants_load_eta_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    rival = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)

    response = await client.get(f"/loads/{haul.load.id}/eta", headers=rival.headers)

    assert response.status_code == 404


async def test_positions_list_the_carriers_own_trucks(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    first = await released_load(resources, settings)
    second = await released_load(resources, settings, carrier=first.dispatcher)
    other = await released_load(resources, settings)
    for haul in (first, second, other):
        await ping(client, haul, fix(datetime.now(UTC), *PICKUP))
    await consumer(resources).drain()

    response = await client.get("/tracking/positions", headers=first.dispatcher.headers)

    assert {item["driverUserId"] for item in response.json()["items"]} == {
        str(first.driver.user.id),
        str(second.driver.user.id),
    }


async def test_positions_of_another_carrier_are_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    rival = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)

    response = await client.get(
        "/tracking/positions",
        params={"carrierId": str(haul.dispatcher.organization.id)},
        headers=rival.headers,
    )

    assert response.status_code == 404
    assert response.json()["code"] == "carrier_not_found"


async def test_positions_are_not_for_shippers(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.get("/tracking/positions", headers=haul.shipper.headers)

    assert response.status_code == 403


async def test_nearby_finds_trucks_within_the_radius_nearest_first(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    near = await released_load(resources, settings)
    nearer = await released_load(resources, settings, carrier=near.dispatcher)
    far = await released_load(resources, settings, carrier=near.dispatcher)
    now = datetime.now(UTC)
    await ping(client, near, fix(now, *_east(8_000)))
    await ping(client, nearer, fix(now, *_east(2_000)))
    await ping(client, far, fix(now, *_east(40_000)))
    await consumer(resources).drain()

    response = await client.get(
        "/tracking/trucks/nearby",
        params={"lat": PICKUP[0], "lng": PICKUP[1], "radiusMi": 10},
        headers=near.dispatcher.headers,
    )

    assert response.json()["source"] == "redis"
    assert [item["driverUserId"] for item in response.json()["items"]] == [
        str(nearer.driver.user.id),
        str(near.driver.user.id),
    ]
    assert response.json()["items"][0]["distanceMi"] == pytest.approx(2000 / 1609.344, abs=0.01)


async def test_eta_to_pickup_uses_road_miles_from_the_last_fix(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    start = _east(30_000)
    fix_time = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    await ping(client, haul, fix(fix_time, *start, speed=25.0))
    await consumer(resources).drain()

    eta = (await client.get(f"/loads/{haul.load.id}/eta", headers=haul.shipper.headers)).json()

    assert eta["nextStop"] == "pickup"
    assert eta["roadMiles"] >= round(distance_mi(start, PICKUP), 1)
    hours = (datetime.fromisoformat(eta["eta"]) - fix_time).total_seconds() / 3600
    assert hours == pytest.approx(eta["roadMiles"] / eta["averageSpeedMph"], abs=0.01)


async def test_eta_without_any_fix_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.get(f"/loads/{haul.load.id}/eta", headers=haul.shipper.headers)

    assert response.json()["code"] == "no_fix_yet"


async def test_eta_of_a_delivered_load_is_409(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings, status=LoadStatus.DELIVERED)

    response = await client.get(f"/loads/{haul.load.id}/eta", headers=haul.shipper.headers)

    assert response.status_code == 409


def _quarry(center: tuple[float, float]) -> list[list[float]]:
    """A 3 km by 1 km site starting 1 km east of ``center``."""
    corners = [(1000, -500), (4000, -500), (4000, 500), (1000, 500)]
    points = []
    for east, north in corners:
        lat, lng = _east(east, center)
        shifted = destination(LatLng(lat, lng), 0.0 if north > 0 else 180.0, abs(north))
        points.append([shifted.lat, shifted.lng])
    return points


async def test_polygon_fence_replaces_the_pickup_circle(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    response = await client.put(
        f"/loads/{haul.load.id}/stops/pickup/geofence",
        json={"vertices": _quarry(PICKUP)},
        headers=haul.shipper.headers,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    # 2.5 km east: inside the quarry, far outside a 500 m circle.
    inside = [fix(start + timedelta(seconds=30 * i), *_east(2500)) for i in range(4)]

    await ping_batch(client, haul, inside)
    await consumer(resources).drain()

    assert response.status_code == 204
    assert "ARRIVED_PICKUP" in [e.event_type for e in await fence_events(resources, haul.load.id)]


async def test_polygon_fence_with_crossing_edges_is_422(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    square = _quarry(PICKUP)
    bow_tie = [square[0], square[2], square[1], square[3]]

    response = await client.put(
        f"/loads/{haul.load.id}/stops/pickup/geofence",
        json={"vertices": bow_tie},
        headers=haul.shipper.headers,
    )

    assert response.json()["code"] == "invalid_fence"


async def test_polygon_fence_far_from_the_stop_is_422(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.put(
        f"/loads/{haul.load.id}/stops/pickup/geofence",
        json={"vertices": _quarry(DELIVERY)},
        headers=haul.shipper.headers,
    )

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_fence"
    assert "km from the pickup stop" in response.json()["detail"]


async def test_polygon_vertex_out_of_range_is_named(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    vertices = _quarry(PICKUP)
    vertices[2] = [91.0, vertices[2][1]]

    response = await client.put(
        f"/loads/{haul.load.id}/stops/pickup/geofence",
        json={"vertices": vertices},
        headers=haul.shipper.headers,
    )

    assert response.status_code == 422
    assert response.json()["field"] == "vertices[2]"


async def test_pickup_fence_is_locked_once_in_transit(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings, status=LoadStatus.IN_TRANSIT)

    pickup = await client.put(
        f"/loads/{haul.load.id}/stops/pickup/geofence",
        json={"vertices": _quarry(PICKUP)},
        headers=haul.shipper.headers,
    )
    delivery = await client.put(
        f"/loads/{haul.load.id}/stops/delivery/geofence",
        json={"vertices": _quarry(DELIVERY)},
        headers=haul.shipper.headers,
    )

    assert pickup.status_code == 409
    assert pickup.json()["code"] == "fence_locked"
    assert delivery.status_code == 204


async def test_carrier_cannot_draw_the_shippers_fence(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.put(
        f"/loads/{haul.load.id}/stops/pickup/geofence",
        json={"vertices": _quarry(PICKUP)},
        headers=haul.dispatcher.headers,
    )

    assert response.status_code == 404


async def test_geofence_events_are_listed_for_the_shipper(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    dwell = [fix(start + timedelta(seconds=30 * i), *PICKUP) for i in range(3)]
    await ping_batch(client, haul, dwell)
    await consumer(resources).drain()

    response = await client.get(
        f"/loads/{haul.load.id}/geofence-events", headers=haul.shipper.headers
    )

    assert [e["eventType"] for e in response.json()] == ["ENTERED", "ARRIVED_PICKUP"]
