"""Assigning a load runs the carrier eligibility check and refuses with every reason."""

from __future__ import annotations

from datetime import date, timedelta

import httpx

from superior_one.accounts.models import OrganizationType
from superior_one.carriers.models import CarrierStatus
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.carriers.factories import create_carrier, policy_model
from tests.loads.factories import create_party, future, insert_load


async def _assign(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, carrier: object
) -> httpx.Response:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    load = await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(72))
    interest = await client.put(
        f"/loads/{load.id}/interest",
        json={},
        headers=carrier.headers,  # type: ignore[attr-defined]
    )
    assert interest.status_code == 200, interest.text
    return await client.post(
        f"/loads/{load.id}/assign",
        json={"carrierOrganizationId": str(carrier.organization.id)},  # type: ignore[attr-defined]
        headers=shipper.headers,
    )


async def test_assign_refuses_carrier_insured_until_before_pickup(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    carrier = await create_party(
        resources.sessionmaker, settings, OrganizationType.CARRIER, vetted=False
    )
    expiry = date.today() + timedelta(days=1)
    await create_carrier(
        resources.sessionmaker,
        organization=carrier.organization,
        dot_number=3000502,
        policies=[policy_model(expiry_date=expiry)],
    )

    response = await _assign(client, resources, settings, carrier)

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "carrier_ineligible"
    assert response.json()["reasons"] == [
        {
            "code": "insurance_expires_before_pickup",
            "field": "insurancePolicies.expiryDate",
            "value": expiry.isoformat(),
            "message": response.json()["reasons"][0]["message"],
        }
    ]


async def test_assign_refuses_unavailable_verification(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    carrier = await create_party(
        resources.sessionmaker, settings, OrganizationType.CARRIER, vetted=False
    )
    await create_carrier(
        resources.sessionmaker,
        organization=carrier.organization,
        dot_number=3000503,
        status=CarrierStatus.UNAVAILABLE,
        last_result_status=CarrierStatus.VERIFIED,
        unavailable_reason="circuit_open",
        policies=[policy_model(expiry_date=date.today() + timedelta(days=365))],
    )

    response = await _assign(client, resources, settings, carrier)

    assert response.status_code == 409
    assert [r["code"] for r in response.json()["reasons"]] == ["verification_unavailable"]


async def test_assign_refuses_carrier_without_usdot(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    carrier = await create_party(
        resources.sessionmaker, settings, OrganizationType.CARRIER, vetted=False
    )

    response = await _assign(client, resources, settings, carrier)

    assert response.status_code == 409
    assert [r["code"] for r in response.json()["reasons"]] == ["not_registered"]


async def test_assign_accepts_vetted_carrier(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)

    response = await _assign(client, resources, settings, carrier)

    assert response.status_code == 200, response.text
