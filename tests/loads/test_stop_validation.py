"""A stop's city and time zone must be those of its ZIP, on create and on edit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from superior_one.accounts.models import OrganizationType
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.loads.factories import Party, create_party, load_payload

JOLIET = {"city": "Joliet", "state": "IL", "zip": "60435"}


@pytest.fixture
async def shipper(resources: Resources, settings: Settings) -> Party:
    return await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)


def _pickup(**changes: Any) -> dict[str, Any]:
    return {**load_payload()["pickup"], **JOLIET, **changes}


def _errors(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["field"], e["message"]) for e in response.json().get("errors", [])]


async def _create(client: httpx.AsyncClient, shipper: Party, **pickup: Any) -> httpx.Response:
    body = load_payload(pickup=_pickup(**pickup))
    return await client.post("/loads", json=body, headers=shipper.headers)


async def test_stop_foreign_time_zone_is_422(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await _create(client, shipper, timeZone="Asia/Tokyo")

    ((field, message),) = _errors(response)
    assert response.status_code == 422
    assert field == "pickup.timeZone"
    assert "send America/Chicago" in message


async def test_stop_other_state_time_zone_is_422(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await _create(client, shipper, timeZone="America/New_York")

    assert [field for field, _ in _errors(response)] == ["pickup.timeZone"]


async def test_stop_zip_time_zone_is_accepted(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await _create(client, shipper, timeZone="America/Chicago")

    assert response.status_code == 201
    assert response.json()["pickup"]["timeZone"] == "America/Chicago"


async def test_stop_same_state_time_zone_is_accepted(
    client: httpx.AsyncClient, shipper: Party
) -> None:
    # Houston is on Central time; El Paso, in the same state, on Mountain time.
    houston = {"city": "Houston", "state": "TX", "zip": "77002", "timeZone": "America/Denver"}

    response = await _create(client, shipper, **houston)

    assert response.status_code == 201, response.text


async def test_stop_time_zone_defaults_to_zips(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await _create(client, shipper)

    assert response.json()["pickup"]["timeZone"] == "America/Chicago"


async def test_stop_wrong_city_is_422(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await _create(client, shipper, city="Springfield")

    ((field, message),) = _errors(response)
    assert field == "pickup.city"
    assert "send 'Joliet' or 'Crest Hill'" in message


@pytest.mark.parametrize(
    ("city", "zip_code", "state"),
    [
        ("JOLIET", "60435", "IL"),
        ("crest hill", "60435", "IL"),
        ("St. Louis", "63101", "MO"),
        ("Winston-Salem", "27101", "NC"),
    ],
)
async def test_stop_city_variant_is_accepted(
    client: httpx.AsyncClient, shipper: Party, city: str, zip_code: str, state: str
) -> None:
    response = await _create(client, shipper, city=city, zip=zip_code, state=state)

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("pickup", "field"),
    [
        ({"city": "X"}, "pickup.city"),
        ({"timeZone": "Asia/Tokyo"}, "pickup.timeZone"),
    ],
)
async def test_stop_edit_mismatch_is_422(
    client: httpx.AsyncClient, shipper: Party, pickup: dict[str, Any], field: str
) -> None:
    created = await _create(client, shipper)

    response = await client.patch(
        f"/loads/{created.json()['id']}",
        json={"pickup": _pickup(**pickup)},
        headers=shipper.headers,
    )

    assert response.status_code == 422
    assert [f for f, _ in _errors(response)] == [field]


async def test_stop_unknown_zip_reports_zip_only(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await _create(client, shipper, zip="00000", timeZone="Asia/Tokyo")

    assert [field for field, _ in _errors(response)] == ["pickup.zip"]
