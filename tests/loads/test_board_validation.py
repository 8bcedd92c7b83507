"""Board query validation: each rule returns 422 naming the parameter and the fix."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
import pytest

from superior_one.loads.board import CURSOR_VERSION, BoardSearch, BoardSort
from superior_one.resources import Resources
from tests.loads.factories import Party, future, insert_load

PORTLAND = (45.5152, -122.6784)


async def _rejected(client: httpx.AsyncClient, carrier: Party, query: str) -> dict[str, Any]:
    response = await client.get(f"/loads?{query}", headers=carrier.headers)
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    return sorted(e["field"] for e in body["errors"])


def _messages(body: dict[str, Any]) -> str:
    return " | ".join(e["message"] for e in body["errors"])


async def _references(client: httpx.AsyncClient, carrier: Party, query: str) -> list[str]:
    response = await client.get(f"/loads?{query}", headers=carrier.headers)
    assert response.status_code == 200, response.text
    return [item["reference"] for item in response.json()["items"]]


async def _seattle_and_portland(resources: Resources, shipper: Party) -> None:
    org = shipper.organization
    await insert_load(resources.sessionmaker, org, reference="seattle", pickup_start=future(10))
    await insert_load(
        resources.sessionmaker,
        org,
        reference="portland",
        pickup=PORTLAND,
        pickup_state="OR",
        equipment_type="FLATBED",
        pickup_start=future(20),
    )


async def test_board_unknown_parameter_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    response = await client.get("/loads?q=grain", headers=carrier.headers)

    body = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert body["code"] == "validation_failed"
    assert _fields(body) == ["q"]


async def test_board_unknown_parameter_lists_accepted_names(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    message = _messages(await _rejected(client, carrier, "q=grain"))

    assert message.startswith("unknown parameter 'q'; the board takes commodity, cursor, ")


async def test_board_misspelt_parameter_suggests_closest_name(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    body = await _rejected(client, carrier, "equipmentTyp=FLATBED")

    assert _fields(body) == ["equipmentTyp"]
    assert _messages(body) == "unknown parameter 'equipmentTyp'; did you mean 'equipmentType'?"


async def test_board_misspelt_legacy_parameter_suggests_current_name(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    body = await _rejected(client, carrier, "State=OR")

    assert _messages(body) == "unknown parameter 'State'; did you mean 'originState'?"


async def test_board_unknown_parameters_are_each_named(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    body = await _rejected(client, carrier, "q=grain&pageSize=10&originState=WA")

    assert _fields(body) == ["pageSize", "q"]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("originState=WA&state=OR", ["originState", "state"]),
        ("originLat=47.6&origin_lat=45.5&originLng=-122.3", ["originLat", "origin_lat"]),
        ("originLat=47.6&originLng=-122.3&origin_lng=-122.6", ["originLng", "origin_lng"]),
        (
            "originLat=47.6&originLng=-122.3&originRadiusMi=50&radius_mi=100",
            ["originRadiusMi", "radius_mi"],
        ),
    ],
)
async def test_board_conflicting_legacy_name_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str, fields: list[str]
) -> None:
    _, carrier = parties

    assert _fields(await _rejected(client, carrier, query)) == fields


async def test_board_agreeing_legacy_name_is_accepted(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    await _seattle_and_portland(resources, shipper)

    assert await _references(client, carrier, "originState=or&state=OR") == ["portland"]


@pytest.mark.parametrize("name", ["originState", "destinationState", "state"])
async def test_board_unknown_state_code_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], name: str
) -> None:
    _, carrier = parties

    body = await _rejected(client, carrier, f"{name}=XX")

    assert _fields(body) == [name]
    assert "send a two-letter USPS code" in _messages(body)


async def test_board_lower_case_state_is_accepted(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    await _seattle_and_portland(resources, shipper)

    assert await _references(client, carrier, "originState=or") == ["portland"]


async def test_board_territory_state_is_accepted(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    assert await _references(client, carrier, "destinationState=PR") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("originState=WA&originState=OR", "originState"),
        ("limit=5&limit=10", "limit"),
        ("sort=rate&sort=ratePerMile", "sort"),
        ("cursor=abc&cursor=def", "cursor"),
    ],
)
async def test_board_repeated_parameter_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str, field: str
) -> None:
    _, carrier = parties

    assert _fields(await _rejected(client, carrier, query)) == [field]


async def test_board_repeated_identical_value_is_accepted(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    response = await client.get("/loads?limit=5&limit=5", headers=carrier.headers)

    assert response.status_code == 200
    assert response.json()["limit"] == 5


async def test_board_repeated_equipment_type_selects_each(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    await _seattle_and_portland(resources, shipper)

    query = "equipmentType=END_DUMP&equipmentType=FLATBED"

    assert await _references(client, carrier, query) == ["seattle", "portland"]


async def test_board_empty_equipment_type_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties

    assert _fields(await _rejected(client, carrier, "equipmentType=")) == ["equipmentType"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("destinationRadiusMi=25", "destinationRadiusMi"), ("radius_mi=25", "radius_mi")],
)
async def test_board_radius_without_centre_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str, field: str
) -> None:
    _, carrier = parties

    assert _fields(await _rejected(client, carrier, query)) == [field]


async def test_board_reversed_pickup_range_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties
    query = httpx.QueryParams(
        {"pickupFrom": future(48).isoformat(), "pickupTo": future(24).isoformat()}
    )

    assert _fields(await _rejected(client, carrier, str(query))) == ["pickupTo"]


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=101", "limit"), ("page=0", "page")]
)
async def test_board_page_limit_out_of_range_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str, field: str
) -> None:
    _, carrier = parties

    assert _fields(await _rejected(client, carrier, query)) == [field]


async def test_board_rejected_search_sends_no_sql(
    client: httpx.AsyncClient, parties: tuple[Party, Party], statement_log: list[str]
) -> None:
    _, carrier = parties
    # A first search caches the caller's principal, as in normal use.
    await _references(client, carrier, "")
    statement_log.clear()

    for query in (
        "q=grain",
        "originState=XX",
        "originState=WA&state=OR",
        "limit=1&limit=2",
        "minRate=1e400",
        "minRatePerMile=1e17",
    ):
        await _rejected(client, carrier, query)

    assert statement_log == []


async def test_board_unauthenticated_bad_query_is_401(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/loads?q=grain")).status_code == 401


@pytest.mark.parametrize(
    ("query", "field", "maximum"),
    [
        ("minRate=1e17", "minRate", "10000000.00"),
        ("minRate=99999999999999999999", "minRate", "10000000.00"),
        ("minRate=1e400", "minRate", "10000000.00"),
        ("minRate=10000000.01", "minRate", "10000000.00"),
        ("minRatePerMile=1e17", "minRatePerMile", "10000000.00"),
        ("maxDistance=1e17", "maxDistance", "5000"),
        ("originLat=1e400&originLng=-122.3", "originLat", "90"),
        ("originLat=47.6&originLng=1e17", "originLng", "180"),
        ("destinationLat=-1e17&destinationLng=-122.3", "destinationLat", "-90"),
        ("originLat=47.6&originLng=-122.3&originRadiusMi=1e400", "originRadiusMi", "500"),
        (
            "destinationLat=47.6&destinationLng=-122.3&destinationRadiusMi=1e17",
            "destinationRadiusMi",
            "500",
        ),
        ("limit=99999999999999999999", "limit", "100"),
        ("page=99999999999999999999", "page", "10000"),
    ],
)
async def test_board_number_above_maximum_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str, field: str, maximum: str
) -> None:
    _, carrier = parties

    body = await _rejected(client, carrier, query)

    assert _fields(body) == [field]
    assert maximum in _messages(body)


@pytest.mark.parametrize(
    "query",
    ["minRate=nan", "minRatePerMile=inf", "maxDistance=nan", "originLat=nan&originLng=1"],
)
async def test_board_number_not_finite_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str
) -> None:
    _, carrier = parties

    assert _fields(await _rejected(client, carrier, query)) == [query.split("=")[0]]


async def test_board_largest_filters_are_accepted(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    await _seattle_and_portland(resources, shipper)

    query = "minRate=10000000.00&minRatePerMile=10000000&maxDistance=5000"

    assert await _references(client, carrier, query) == []


async def test_board_cursor_key_beyond_bigint_is_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party]
) -> None:
    _, carrier = parties
    fingerprint = BoardSearch(sort=BoardSort.RATE, limit=25).fingerprint
    # A forged cursor: the format is not secret, so its key must be checked.
    forged = [CURSOR_VERSION, "rate", 2**63, uuid.uuid4().hex, fingerprint[:8]]
    cursor = base64.urlsafe_b64encode(orjson.dumps(forged)).rstrip(b"=").decode()

    body = await _rejected(client, carrier, f"sort=rate&cursor={cursor}")

    assert body["code"] == "invalid_cursor"
    assert body["field"] == "cursor"
