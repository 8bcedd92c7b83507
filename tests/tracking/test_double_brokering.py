"""The double-brokering check: IN_TRANSIT by geofence only after a proven pickup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.geo.geodesy import LatLng, destination
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from superior_one.tracking.models import FraudReason
from tests.loads.factories import create_party
from tests.tracking.factories import (
    PICKUP,
    Haul,
    consumer,
    fix,
    flags,
    load_status,
    ping_batch,
    released_load,
)

# Five kilometres east of the pickup: a short haul a truck drives in minutes.
NEAR_DELIVERY = destination(LatLng(*PICKUP), 90.0, 5000.0)


def _east(metres: float) -> tuple[float, float]:
    point = destination(LatLng(*PICKUP), 90.0, metres)
    return point.lat, point.lng


def _trip(start: datetime) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Dwell at pickup, drive 5 km east at 25 m/s, dwell at delivery."""
    at_pickup = [fix(start + timedelta(seconds=30 * i), *PICKUP) for i in range(5)]
    driving = [
        fix(start + timedelta(seconds=150 + 30 * i), *_east(750 * (i + 1)), speed=25.0)
        for i in range(6)
    ]
    at_delivery = [
        fix(start + timedelta(seconds=330 + 30 * i), NEAR_DELIVERY.lat, NEAR_DELIVERY.lng)
        for i in range(4)
    ]
    return at_pickup + driving, at_delivery


async def _drive(
    client: httpx.AsyncClient,
    resources: Resources,
    haul: Haul,
    headers: dict[str, str] | None = None,
) -> None:
    first_leg, second_leg = _trip(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))
    for leg in (first_leg, second_leg):
        response = await ping_batch(client, haul, leg, headers=headers)
        assert response.status_code == 202
        await consumer(resources).drain()


async def _short_haul(
    resources: Resources, settings: Settings, *, pickup_start: datetime | None = None
) -> Haul:
    return await released_load(
        resources,
        settings,
        delivery=(NEAR_DELIVERY.lat, NEAR_DELIVERY.lng),
        pickup_start=pickup_start,
    )


async def test_proven_pickup_moves_load_to_delivered_without_flags(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await _short_haul(resources, settings)

    await _drive(client, resources, haul)

    assert await load_status(resources, haul.load.id) is LoadStatus.DELIVERED
    assert await flags(resources, haul.load.id) == []


async def test_dwell_outside_the_pickup_window_is_flagged_and_not_picked_up(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    # The window opens tomorrow: today's dwell at the pickup proves nothing.
    haul = await _short_haul(
        resources, settings, pickup_start=datetime.now(UTC) + timedelta(days=1)
    )

    await _drive(client, resources, haul)

    assert await load_status(resources, haul.load.id) is LoadStatus.RELEASED
    assert {f.reason for f in await flags(resources, haul.load.id)} == {
        FraudReason.PICKUP_NOT_PROVEN
    }


async def test_fixes_relayed_by_the_dispatcher_do_not_prove_pickup(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await _short_haul(resources, settings)

    await _drive(client, resources, haul, headers=haul.dispatcher.headers)
    recorded = await flags(resources, haul.load.id)

    assert await load_status(resources, haul.load.id) is LoadStatus.RELEASED
    assert [f.reason for f in recorded] == [FraudReason.PICKUP_NOT_PROVEN]
    assert "account" in recorded[0].detail


async def test_delivery_reached_without_pickup_dwell_is_flagged(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await _short_haul(resources, settings)
    _, at_delivery = _trip(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5))

    await ping_batch(client, haul, at_delivery)
    await consumer(resources).drain()
    recorded = await flags(resources, haul.load.id)

    assert await load_status(resources, haul.load.id) is LoadStatus.RELEASED
    assert [f.reason for f in recorded] == [FraudReason.PICKUP_NOT_PROVEN]
    assert recorded[0].carrier_organization_id == haul.dispatcher.organization.id


async def test_manual_completion_without_proof_is_flagged_for_the_shipper(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    # Delivered without any GPS: someone set the status by hand.
    haul = await released_load(resources, settings, status=LoadStatus.DELIVERED)

    response = await client.post(f"/loads/{haul.load.id}/complete", headers=haul.shipper.headers)
    shipper_view = await client.get(
        f"/loads/{haul.load.id}/fraud-flags", headers=haul.shipper.headers
    )

    assert response.status_code == 200
    assert [f["reason"] for f in shipper_view.json()] == ["MANUAL_STATUS_WITHOUT_PROOF"]
    assert shipper_view.json()[0]["carrierOrganizationId"] == str(haul.dispatcher.organization.id)


async def test_manual_completion_after_proven_pickup_is_not_flagged(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await _short_haul(resources, settings)
    await _drive(client, resources, haul)

    response = await client.post(f"/loads/{haul.load.id}/complete", headers=haul.shipper.headers)

    assert response.status_code == 200
    assert await flags(resources, haul.load.id) == []


async def test_load_flags_are_hidden_from_the_carrier(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.get(
        f"/loads/{haul.load.id}/fraud-flags", headers=haul.dispatcher.headers
    )

    assert response.status_code == 404


async def test_carrier_flags_show_totals_and_only_the_callers_loads(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    first = await released_load(resources, settings)
    second = await released_load(resources, settings, carrier=first.dispatcher)
    stranger = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    for haul in (first, second):
        await ping_batch(client, haul, [fix(datetime.now(UTC), *PICKUP)], headers=stranger.headers)
    url = f"/tracking/carriers/{first.dispatcher.organization.id}/fraud-flags"

    response = await client.get(url, headers=first.shipper.headers)

    assert response.json()["totals"] == {"UNAUTHORIZED_SENDER": 2}
    assert [f["loadId"] for f in response.json()["items"]] == [str(first.load.id)]


async def test_carrier_flags_are_not_for_carriers(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    rival = await create_party(
        resources.sessionmaker, settings, OrganizationType.CARRIER, Role.ORG_ADMIN
    )

    response = await client.get(
        f"/tracking/carriers/{haul.dispatcher.organization.id}/fraud-flags",
        headers=rival.headers,
    )

    assert response.status_code == 403
