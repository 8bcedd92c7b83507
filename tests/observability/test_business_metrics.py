"""Business counters move when a load is posted, assigned and covered, and only then, and
when a fraud flag is raised. Payment outcomes are in test_payment_metrics.py."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.resources import Resources
from superior_one.tracking.models import FraudReason
from tests.loads.factories import add_user, create_party, load_payload
from tests.observability.conftest import MetricReader
from tests.tracking.factories import PICKUP, fix, ping, released_load


async def _post_assign_release(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    driver = await add_user(resources.sessionmaker, settings, carrier, Role.DRIVER)
    load = await client.post("/loads", json=load_payload(post=True), headers=shipper.headers)
    load_id = load.json()["id"]
    await client.put(f"/loads/{load_id}/interest", json={}, headers=carrier.headers)
    assigned = await client.post(
        f"/loads/{load_id}/assign",
        json={"carrierOrganizationId": str(carrier.organization.id)},
        headers=shipper.headers,
    )
    assert assigned.status_code == 200, assigned.text
    released = await client.post(
        f"/loads/{load_id}/release",
        json={"driverUserId": str(driver.user.id)},
        headers=carrier.headers,
    )
    assert released.status_code == 200, released.text


async def test_business_lifecycle_moves_load_counters(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    names = ("so_loads_posted_total", "so_loads_assigned_total", "so_loads_covered_total")
    before = [metric(name) for name in names]

    await _post_assign_release(client, resources, settings)

    assert [metric(name) - value for name, value in zip(names, before, strict=True)] == [1, 1, 1]


async def test_business_cover_observes_time_to_cover(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    before = metric("so_load_time_to_cover_seconds_count")

    await _post_assign_release(client, resources, settings)

    assert metric("so_load_time_to_cover_seconds_count") == before + 1


async def test_business_rejected_post_counts_nothing(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    before = metric("so_loads_posted_total")

    response = await client.post("/loads", json=load_payload(post=True), headers=carrier.headers)

    assert response.status_code == 403
    assert metric("so_loads_posted_total") == before


async def test_business_ping_from_stranger_raises_fraud_flag(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    other_carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    stranger = await add_user(resources.sessionmaker, settings, other_carrier, Role.DRIVER)
    reason = FraudReason.UNAUTHORIZED_SENDER.value
    before = metric("so_fraud_flags_total", reason=reason)

    response = await ping(client, haul, fix(datetime.now(UTC), *PICKUP), headers=stranger.headers)

    assert response.status_code == 403, response.text
    assert metric("so_fraud_flags_total", reason=reason) == before + 1


async def test_business_ping_from_driver_raises_no_flag(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    reason = FraudReason.UNAUTHORIZED_SENDER.value
    before = metric("so_fraud_flags_total", reason=reason)

    response = await ping(client, haul, fix(datetime.now(UTC), *PICKUP))

    assert response.status_code == 202, response.text
    assert metric("so_fraud_flags_total", reason=reason) == before
