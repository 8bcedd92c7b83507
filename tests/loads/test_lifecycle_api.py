"""Shippers and carriers move a load through its lifecycle over the API."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.loads.models import LoadEvent
from superior_one.resources import Resources
from tests.loads.factories import add_user, create_party, load_payload


async def test_load_create_returns_draft_with_gross_revenue(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)

    response = await client.post("/loads", json=load_payload(), headers=shipper.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["grossRevenue"], body["pickup"]["timeZone"]) == (
        "DRAFT",
        "407.00",
        "America/Los_Angeles",
    )


async def test_load_full_lifecycle_writes_one_event_per_transition(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    driver = await add_user(resources.sessionmaker, settings, carrier, Role.DRIVER)

    load = (
        await client.post("/loads", json=load_payload(post=True), headers=shipper.headers)
    ).json()
    load_id = load["id"]
    interest = await client.put(
        f"/loads/{load_id}/interest", json={"counterRate": "19.25"}, headers=carrier.headers
    )
    assert interest.status_code == 200, interest.text
    assigned = await client.post(
        f"/loads/{load_id}/assign",
        json={"carrierOrganizationId": str(carrier.organization.id), "acceptCounterRate": True},
        headers=shipper.headers,
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["rate"] == "19.25"
    released = await client.post(
        f"/loads/{load_id}/release",
        json={"driverUserId": str(driver.user.id)},
        headers=carrier.headers,
    )
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "RELEASED"

    async with resources.sessionmaker() as session:
        events = (
            (
                await session.execute(
                    select(LoadEvent.to_status)
                    .where(LoadEvent.load_id == load_id)
                    .order_by(LoadEvent.id)
                )
            )
            .scalars()
            .all()
        )
    assert [e.value for e in events] == ["DRAFT", "POSTED", "ASSIGNED", "RELEASED"]
