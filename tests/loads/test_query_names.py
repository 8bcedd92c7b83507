"""The loads routes with query parameters reject unknown names and repeats, like the board."""

from __future__ import annotations

import httpx
import pytest

from tests.loads.factories import Party

RECOMMENDATIONS = "/equipment-types/recommendations"
RECOMMENDATION_QUERY = "commodity=gravel&loadType=BULK&haulType=LOCAL&weightLbs=40000"


def _errors(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["field"], e["message"]) for e in response.json().get("errors", [])]


@pytest.mark.parametrize(
    ("path", "field", "accepted"),
    [
        ("/loads/mine?foo=1", "foo", "GET /loads/mine takes cursor, limit, status"),
        (
            f"{RECOMMENDATIONS}?{RECOMMENDATION_QUERY}&foo=1",
            "foo",
            f"GET {RECOMMENDATIONS} takes commodity, haulType, loadType, weightLbs",
        ),
    ],
)
async def test_query_unknown_parameter_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], path: str, field: str, accepted: str
) -> None:
    shipper, _ = parties

    response = await client.get(path, headers=shipper.headers)

    assert response.status_code == 422
    assert _errors(response) == [(field, f"unknown parameter 'foo'; {accepted}")]


async def test_query_misspelt_parameter_suggests_name(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    shipper, _ = parties

    response = await client.get("/loads/mine?Limit=5", headers=shipper.headers)

    assert _errors(response) == [("Limit", "unknown parameter 'Limit'; did you mean 'limit'?")]


async def test_query_repeated_parameter_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    shipper, _ = parties

    response = await client.get("/loads/mine?limit=5&limit=10", headers=shipper.headers)

    assert _errors(response) == [
        (
            "limit",
            "limit was sent with 2 different values; send it once (only status takes several)",
        )
    ]


async def test_query_repeated_list_parameter_is_accepted(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    shipper, _ = parties

    response = await client.get("/loads/mine?status=DRAFT&status=POSTED", headers=shipper.headers)

    assert response.status_code == 200


async def test_query_known_parameters_are_accepted(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    response = await client.get(
        f"{RECOMMENDATIONS}?{RECOMMENDATION_QUERY}", headers=carrier.headers
    )

    assert response.status_code == 200


async def test_query_unknown_parameter_unauthenticated_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/loads/mine?foo=1")).status_code == 401
