"""The carriers API: registration, identifiers, policies and who may see a decision."""

from __future__ import annotations

import httpx
import pytest

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.carriers.factories import create_carrier
from tests.factories import auth_headers, create_organization, create_user

DECISION_PARAMS = {"pickupAt": "2024-07-01T08:00:00-05:00", "timeZone": "America/Chicago"}


async def _member(
    resources: Resources,
    settings: Settings,
    org_type: OrganizationType = OrganizationType.CARRIER,
    role: Role = Role.DISPATCHER,
) -> tuple[object, dict[str, str]]:
    organization = await create_organization(resources.sessionmaker, org_type)
    user = await create_user(resources.sessionmaker, settings, organization, role)
    return organization, auth_headers(settings, user)


@pytest.mark.parametrize(
    ("dot_number", "expected"),
    [("USDOT 3000002", 3000002), (3000002, 3000002), ("DOT# 3000002", 3000002)],
)
async def test_register_reads_usdot_identifiers(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    dot_number: object,
    expected: int,
) -> None:
    _, headers = await _member(resources, settings)

    response = await client.post("/carriers", json={"dotNumber": dot_number}, headers=headers)

    assert response.status_code == 201, response.text
    assert response.json()["dotNumber"] == expected
    assert response.json()["verificationStatus"] == "PENDING"


async def test_register_refuses_mc_number_given_as_dot(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, headers = await _member(resources, settings)

    response = await client.post("/carriers", json={"dotNumber": "MC-123456"}, headers=headers)

    assert response.status_code == 422
    assert "MC" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dotNumber": 99999999999999999999999}, "dotNumber"),
        ({"dotNumber": "MC-123456"}, "dotNumber"),
        ({"dotNumber": 3000002, "mcNumber": "USDOT 3000002"}, "mcNumber"),
    ],
)
async def test_register_bad_identifier_names_its_field(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    body: dict[str, object],
    field: str,
) -> None:
    _, headers = await _member(resources, settings)

    response = await client.post("/carriers", json=body, headers=headers)

    assert (response.status_code, response.json()["field"]) == (422, field)


async def test_register_reads_mc_number(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, headers = await _member(resources, settings)

    response = await client.post(
        "/carriers", json={"dotNumber": 3000002, "mcNumber": "mc 123456"}, headers=headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["mcNumber"] == 123456


async def test_register_queues_verification_in_same_transaction(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    from sqlalchemy import text

    from superior_one.db import unit_of_work

    _, headers = await _member(resources, settings)
    response = await client.post("/carriers", json={"dotNumber": 3000002}, headers=headers)

    async with unit_of_work(resources.sessionmaker) as session:
        queued = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'carriers.verify' "
                "AND args->>'carrier_id' = :id AND queue_name = 'verification'"
            ),
            {"id": response.json()["id"]},
        )
    assert queued == 1


async def test_register_twice_or_taken_dot_is_conflict(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, headers = await _member(resources, settings)
    _, other_headers = await _member(resources, settings)
    await client.post("/carriers", json={"dotNumber": 3000002}, headers=headers)

    again = await client.post("/carriers", json={"dotNumber": 3000005}, headers=headers)
    taken = await client.post("/carriers", json={"dotNumber": 3000002}, headers=other_headers)

    assert again.status_code == 409
    assert taken.status_code == 409
    assert taken.json()["code"] == "carrier_already_registered"


async def test_register_needs_carrier_organization(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, shipper_headers = await _member(
        resources, settings, OrganizationType.SHIPPER, Role.ORG_ADMIN
    )
    _, driver_headers = await _member(resources, settings, role=Role.DRIVER)

    shipper = await client.post("/carriers", json={"dotNumber": 3000002}, headers=shipper_headers)
    driver = await client.post("/carriers", json={"dotNumber": 3000002}, headers=driver_headers)

    assert shipper.status_code == 403
    assert driver.status_code == 403


async def test_policy_with_expiry_before_effective_date_is_rejected(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    organization, headers = await _member(resources, settings)
    await create_carrier(resources.sessionmaker, organization=organization)  # type: ignore[arg-type]

    response = await client.post(
        "/carriers/me/insurance-policies",
        json={
            "coverageType": "AUTO_LIABILITY",
            "insurerName": "Great Plains Mutual",
            "policyNumber": "AL-1",
            "amountCents": 100_000_000,
            "effectiveDate": "2024-07-01",
            "expiryDate": "2024-06-30",
        },
        headers=headers,
    )

    assert response.status_code == 422


async def test_decision_visible_to_own_carrier_and_shippers_only(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    organization, own_headers = await _member(resources, settings)
    carrier = await create_carrier(resources.sessionmaker, organization=organization)  # type: ignore[arg-type]
    _, other_carrier_headers = await _member(resources, settings)
    _, shipper_headers = await _member(
        resources, settings, OrganizationType.SHIPPER, Role.ORG_ADMIN
    )
    path = f"/carriers/{carrier.id}/eligibility"

    own = await client.get(path, params=DECISION_PARAMS, headers=own_headers)
    shipper = await client.get(path, params=DECISION_PARAMS, headers=shipper_headers)
    other = await client.get(path, params=DECISION_PARAMS, headers=other_carrier_headers)

    assert own.status_code == 200
    assert shipper.status_code == 200
    assert other.status_code == 404


async def test_decision_rejects_naive_time_or_zone(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    organization, headers = await _member(resources, settings)
    carrier = await create_carrier(resources.sessionmaker, organization=organization)  # type: ignore[arg-type]
    path = f"/carriers/{carrier.id}/eligibility"

    naive = await client.get(
        path,
        params={"pickupAt": "2024-07-01T08:00:00", "timeZone": "America/Chicago"},
        headers=headers,
    )
    zone = await client.get(
        path,
        params={"pickupAt": "2024-07-01T08:00:00Z", "timeZone": "Mars/Olympus"},
        headers=headers,
    )

    assert naive.status_code == 422
    assert zone.status_code == 422


async def test_decision_naive_pickup_names_field(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    organization, headers = await _member(resources, settings)
    carrier = await create_carrier(resources.sessionmaker, organization=organization)  # type: ignore[arg-type]

    response = await client.get(
        f"/carriers/{carrier.id}/eligibility",
        params={"pickupAt": "2024-07-01T08:00:00", "timeZone": "America/Chicago"},
        headers=headers,
    )

    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "pickupAt"
    assert "Z or -05:00" in error["message"]


async def test_decision_unencoded_plus_offset_names_fix(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    organization, headers = await _member(resources, settings)
    carrier = await create_carrier(resources.sessionmaker, organization=organization)  # type: ignore[arg-type]

    # Written into the URL by hand: the '+' reaches the server as a space.
    response = await client.get(
        f"/carriers/{carrier.id}/eligibility?pickupAt=2024-07-01T08:00:00+06:00&timeZone=UTC",
        headers=headers,
    )

    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "pickupAt"
    assert "%2B" in error["message"]
