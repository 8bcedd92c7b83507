"""Another tenant's load id answers 404, whatever the method."""

from __future__ import annotations

import uuid

import httpx
import pytest

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from tests.loads.factories import Party, add_user, create_party, insert_load, load_payload


@pytest.fixture
async def world(resources: Resources, settings: Settings) -> dict[str, object]:
    sm = resources.sessionmaker
    owner = await create_party(sm, settings, OrganizationType.SHIPPER)
    rival_shipper = await create_party(sm, settings, OrganizationType.SHIPPER)
    carrier = await create_party(sm, settings, OrganizationType.CARRIER)
    rival_carrier = await create_party(sm, settings, OrganizationType.CARRIER)
    rival_driver = await add_user(sm, settings, rival_carrier, Role.DRIVER)
    draft = await insert_load(sm, owner.organization, status=LoadStatus.DRAFT)
    posted = await insert_load(sm, owner.organization)
    assigned = await insert_load(
        sm, owner.organization, status=LoadStatus.ASSIGNED, carrier=carrier.organization
    )
    return {
        "rival_shipper": rival_shipper,
        "rival_carrier": rival_carrier,
        "rival_driver": rival_driver,
        "draft": draft.id,
        "posted": posted.id,
        "assigned": assigned.id,
        "carrier_id": carrier.organization.id,
    }


# (who, method, path template, load key, body)
PROBES = [
    ("rival_shipper", "GET", "/loads/{id}", "draft", None),
    ("rival_shipper", "GET", "/loads/{id}", "assigned", None),
    ("rival_shipper", "PATCH", "/loads/{id}", "posted", {"commodity": "Sand"}),
    ("rival_shipper", "POST", "/loads/{id}/post", "draft", None),
    ("rival_shipper", "POST", "/loads/{id}/cancel", "posted", {"reason": "not mine"}),
    ("rival_shipper", "GET", "/loads/{id}/interests", "posted", None),
    ("rival_shipper", "GET", "/loads/{id}/events", "posted", None),
    ("rival_shipper", "POST", "/loads/{id}/assign", "posted", {"carrierOrganizationId": "CARRIER"}),
    ("rival_shipper", "POST", "/loads/{id}/complete", "assigned", None),
    ("rival_carrier", "GET", "/loads/{id}", "draft", None),
    ("rival_carrier", "GET", "/loads/{id}", "assigned", None),
    ("rival_carrier", "GET", "/loads/{id}/events", "assigned", None),
    ("rival_carrier", "PUT", "/loads/{id}/interest", "draft", {}),
    ("rival_carrier", "PUT", "/loads/{id}/interest", "assigned", {}),
    ("rival_carrier", "POST", "/loads/{id}/release", "assigned", {"driverUserId": "DRIVER"}),
    ("rival_driver", "GET", "/loads/{id}", "assigned", None),
    ("rival_driver", "GET", "/loads/{id}", "posted", None),
]


@pytest.mark.parametrize(("who", "method", "path", "load", "body"), PROBES)
async def test_idor_probe_answers_404(
    client: httpx.AsyncClient,
    world: dict[str, object],
    who: str,
    method: str,
    path: str,
    load: str,
    body: dict[str, str] | None,
) -> None:
    party = world[who]
    assert isinstance(party, Party)
    if body is not None:
        body = {
            k: str(world["carrier_id"])
            if v == "CARRIER"
            else str(party.user.id)
            if v == "DRIVER"
            else v
            for k, v in body.items()
        }

    response = await client.request(
        method, path.format(id=world[load]), json=body, headers=party.headers
    )

    assert response.status_code == 404, response.text


async def test_idor_unknown_load_id_is_404_like_a_foreign_one(
    client: httpx.AsyncClient, world: dict[str, object]
) -> None:
    party = world["rival_shipper"]
    assert isinstance(party, Party)

    response = await client.get(f"/loads/{uuid.uuid4()}", headers=party.headers)

    assert response.json()["code"] == "load_not_found"


async def test_idor_posted_load_is_visible_to_any_carrier(
    client: httpx.AsyncClient, world: dict[str, object]
) -> None:
    party = world["rival_carrier"]
    assert isinstance(party, Party)

    response = await client.get(f"/loads/{world['posted']}", headers=party.headers)

    assert response.status_code == 200


async def test_idor_my_loads_lists_only_my_organization(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, world: dict[str, object]
) -> None:
    party = world["rival_shipper"]
    assert isinstance(party, Party)
    mine = await client.post("/loads", json=load_payload(), headers=party.headers)

    response = await client.get("/loads/mine", headers=party.headers)

    assert [item["id"] for item in response.json()["items"]] == [mine.json()["id"]]


async def test_carrier_cannot_create_loads(
    client: httpx.AsyncClient, world: dict[str, object]
) -> None:
    party = world["rival_carrier"]
    assert isinstance(party, Party)

    response = await client.post("/loads", json=load_payload(), headers=party.headers)

    assert (response.status_code, response.json()["code"]) == (403, "load_action_forbidden")
