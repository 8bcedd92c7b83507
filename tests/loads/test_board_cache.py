"""Board results are cached in Redis, invalidated on change, and served without Redis."""

from __future__ import annotations

import httpx

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.loads.factories import Party, insert_load


async def _ids(client: httpx.AsyncClient, party: Party) -> list[str]:
    response = await client.get("/loads", headers=party.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_board_cache_serves_the_cached_page_within_its_ttl(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    first = await insert_load(resources.sessionmaker, shipper.organization)
    await _ids(client, carrier)
    # Written behind the service's back: only a cache hit can miss it.
    await insert_load(resources.sessionmaker, shipper.organization)

    assert await _ids(client, carrier) == [str(first.id)]


async def test_board_cache_drops_a_load_once_it_is_assigned(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    load = await insert_load(resources.sessionmaker, shipper.organization)
    await client.put(f"/loads/{load.id}/interest", json={}, headers=carrier.headers)
    assert await _ids(client, carrier) == [str(load.id)]

    assigned = await client.post(
        f"/loads/{load.id}/assign",
        json={"carrierOrganizationId": str(carrier.organization.id)},
        headers=shipper.headers,
    )
    assert assigned.status_code == 200, assigned.text

    assert await _ids(client, carrier) == []


async def test_board_cache_drops_a_load_once_it_is_cancelled(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    load = await insert_load(resources.sessionmaker, shipper.organization)
    assert await _ids(client, carrier) == [str(load.id)]

    cancelled = await client.post(
        f"/loads/{load.id}/cancel", json={"reason": "job postponed"}, headers=shipper.headers
    )
    assert cancelled.status_code == 200, cancelled.text

    assert await _ids(client, carrier) == []


async def test_board_cache_shows_an_edited_posted_load_at_once(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    load = await insert_load(resources.sessionmaker, shipper.organization)
    await _ids(client, carrier)

    await client.patch(f"/loads/{load.id}", json={"commodity": "Riprap"}, headers=shipper.headers)

    response = await client.get("/loads", headers=carrier.headers)
    assert response.json()["items"][0]["commodity"] == "Riprap"


async def test_board_without_redis_serves_from_postgresql(
    resources: Resources, settings: Settings, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    load = await insert_load(resources.sessionmaker, shipper.organization)
    # Nothing listens on port 1: every Redis call fails with a connection error.
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            ids = await _ids(http, carrier)

    assert ids == [str(load.id)]
