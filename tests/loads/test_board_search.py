"""Board search: filters, sort orders, keyset cursors, legacy parameters and totals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.loads.cache import BoardCache
from superior_one.loads.models import HaulType, LoadStatus
from superior_one.loads.service import expire_posted_loads
from superior_one.resources import Resources
from tests.loads.factories import Party, future, insert_load

SEATTLE = (47.6062, -122.3321)
PORTLAND = (45.5152, -122.6784)
DENVER = (39.7392, -104.9903)


async def _search(client: httpx.AsyncClient, carrier: Party, query: str) -> dict[str, Any]:
    response = await client.get(f"/loads?{query}", headers=carrier.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refs(body: dict[str, Any]) -> list[str]:
    return [item["reference"] for item in body["items"]]


async def test_board_shows_only_posted_loads(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    org = shipper.organization
    await insert_load(resources.sessionmaker, org, reference="posted")
    await insert_load(resources.sessionmaker, org, reference="draft", status=LoadStatus.DRAFT)
    await insert_load(resources.sessionmaker, org, reference="taken", status=LoadStatus.CANCELLED)

    assert _refs(await _search(client, carrier, "")) == ["posted"]


async def test_board_drops_a_late_load_once_the_expiry_job_ran(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    parties: tuple[Party, Party],
) -> None:
    shipper, carrier = parties
    await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(-10))
    await _search(client, carrier, "")

    await expire_posted_loads(resources.sessionmaker, BoardCache(resources.redis, settings))

    assert _refs(await _search(client, carrier, "")) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("originState=OR", ["portland"]),
        ("state=OR", ["portland"]),
        ("destinationState=CO", ["denver"]),
        ("equipmentType=FLATBED", ["denver"]),
        ("equipmentType=FLATBED,LOWBOY", ["portland", "denver"]),
        ("haulType=LONG_HAUL", ["denver"]),
        ("minRate=2000", ["denver"]),
        ("minRatePerMile=40", ["seattle"]),
        ("maxDistance=100", ["seattle"]),
        ("commodity=STEEL", ["denver"]),
        ("originLat=45.52&originLng=-122.68&originRadiusMi=25", ["portland"]),
        ("destinationLat=39.74&destinationLng=-104.99&destinationRadiusMi=10", ["denver"]),
    ],
)
async def test_board_filter_selects_matching_loads(
    client: httpx.AsyncClient,
    resources: Resources,
    parties: tuple[Party, Party],
    query: str,
    expected: list[str],
) -> None:
    shipper, carrier = parties
    org = shipper.organization
    await insert_load(resources.sessionmaker, org, reference="seattle", pickup_start=future(10))
    await insert_load(
        resources.sessionmaker,
        org,
        reference="portland",
        pickup=PORTLAND,
        pickup_state="OR",
        equipment_type="LOWBOY",
        haul_type=HaulType.REGIONAL,
        commodity="Excavator",
        rate_cents=180_000,
        miles=Decimal("174"),
        pickup_start=future(20),
    )
    await insert_load(
        resources.sessionmaker,
        org,
        reference="denver",
        delivery=DENVER,
        delivery_state="CO",
        equipment_type="FLATBED",
        haul_type=HaulType.LONG_HAUL,
        commodity="Structural steel beams",
        rate_cents=350_000,
        miles=Decimal("1320"),
        pickup_start=future(30),
    )

    assert _refs(await _search(client, carrier, query)) == expected


async def test_board_pickup_date_range_bounds_the_window_start(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for hours in (5, 30, 60):
        await insert_load(
            resources.sessionmaker,
            shipper.organization,
            reference=f"h{hours}",
            pickup_start=future(hours),
        )
    params = httpx.QueryParams(
        {"pickupFrom": future(10).isoformat(), "pickupTo": future(40).isoformat()}
    )

    assert _refs(await _search(client, carrier, str(params))) == ["h30"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("pickupDate", ["a", "b", "c"]),
        ("rate", ["c", "b", "a"]),
        ("ratePerMile", ["a", "c", "b"]),
    ],
)
async def test_board_sort_orders(
    client: httpx.AsyncClient,
    resources: Resources,
    parties: tuple[Party, Party],
    sort: str,
    expected: list[str],
) -> None:
    shipper, carrier = parties
    # a: $1,000 over 10 mi; b: $2,000 over 400 mi; c: $3,000 over 100 mi
    for ref, hours, cents, miles in (
        ("a", 10, 100_000, "10"),
        ("b", 20, 200_000, "400"),
        ("c", 30, 300_000, "100"),
    ):
        await insert_load(
            resources.sessionmaker,
            shipper.organization,
            reference=ref,
            pickup_start=future(hours),
            rate_cents=cents,
            miles=Decimal(miles),
        )

    assert _refs(await _search(client, carrier, f"sort={sort}")) == expected


@pytest.mark.parametrize("sort", ["pickupDate", "rate", "ratePerMile", "distance"])
async def test_board_cursor_walks_every_load_once_in_order(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party], sort: str
) -> None:
    shipper, carrier = parties
    for n in range(7):
        # Equal sort keys in pairs, so the id tie-breaker is exercised.
        await insert_load(
            resources.sessionmaker,
            shipper.organization,
            reference=f"r{n}",
            pickup=(SEATTLE[0] + (n // 2) * 0.1, SEATTLE[1]),
            pickup_start=future(10 + n // 2),
            rate_cents=100_000 + (n // 2) * 1000,
        )
    base = f"sort={sort}&limit=2&originLat={SEATTLE[0]}&originLng={SEATTLE[1]}"
    full = _refs(await _search(client, carrier, base.replace("limit=2", "limit=50")))

    walked: list[str] = []
    body = await _search(client, carrier, base)
    walked += _refs(body)
    while body["nextCursor"]:
        body = await _search(client, carrier, f"{base}&cursor={body['nextCursor']}")
        walked += _refs(body)

    assert walked == full


async def test_board_cursor_is_stable_while_loads_are_inserted(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    originals = []
    for n in range(10):
        load = await insert_load(
            resources.sessionmaker,
            shipper.organization,
            reference=f"o{n}",
            pickup_start=future(10 + n),
        )
        originals.append(load.reference)

    seen: list[str] = []
    body = await _search(client, carrier, "limit=3")
    seen += _refs(body)
    inserted = 0
    while body["nextCursor"]:
        # New loads before and after the cursor position between every page.
        for hours in (1, 100 + inserted):
            await insert_load(
                resources.sessionmaker,
                shipper.organization,
                reference=f"new{inserted}",
                pickup_start=future(hours),
            )
            inserted += 1
        body = await _search(client, carrier, f"limit=3&cursor={body['nextCursor']}")
        seen += _refs(body)

    originals_seen = [ref for ref in seen if ref.startswith("o")]
    assert (originals_seen, len(seen) == len(set(seen))) == (originals, True)


async def test_board_cursor_from_another_search_is_rejected(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for n in range(3):
        await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(10 + n))
    cursor = (await _search(client, carrier, "limit=1"))["nextCursor"]

    response = await client.get(
        f"/loads?limit=1&originState=WA&cursor={cursor}", headers=carrier.headers
    )

    assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor")


async def test_board_legacy_pages_match_cursor_pages(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for n in range(9):
        await insert_load(
            resources.sessionmaker,
            shipper.organization,
            reference=f"p{n}",
            pickup_start=future(10 + n),
        )

    pages = [
        _refs(await _search(client, carrier, f"state=WA&page={page}&limit=2"))
        for page in (1, 2, 3, 4, 5, 6)
    ]

    assert pages == [["p0", "p1"], ["p2", "p3"], ["p4", "p5"], ["p6", "p7"], ["p8"], []]


async def test_board_legacy_jump_to_a_deep_page_finds_its_rows(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for n in range(9):
        await insert_load(
            resources.sessionmaker,
            shipper.organization,
            reference=f"p{n}",
            pickup_start=future(10 + n),
        )

    assert _refs(await _search(client, carrier, "page=4&limit=2")) == ["p6", "p7"]


async def test_board_legacy_pages_read_in_sequence_use_no_offset(
    client: httpx.AsyncClient,
    resources: Resources,
    parties: tuple[Party, Party],
    statement_log: list[str],
) -> None:
    shipper, carrier = parties
    for n in range(9):
        await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(10 + n))

    for page in (1, 2, 3, 4):
        await _search(client, carrier, f"page={page}&limit=2")

    assert [s for s in statement_log if "OFFSET" in s.upper()] == []


async def test_board_total_is_exact_when_small(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for n in range(3):
        await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(10 + n))

    body = await _search(client, carrier, "limit=1")

    assert (body["total"], body["totalExact"]) == (3, True)


async def test_board_total_is_capped_and_marked_above_the_cap(
    resources: Resources, settings: Settings, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for n in range(5):
        await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(10 + n))
    app = create_app(settings.model_copy(update={"board_count_cap": 3}))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            body = (await http.get("/loads", headers=carrier.headers)).json()

    assert (body["total"], body["totalExact"]) == (3, False)


async def _search_with_cap(
    settings: Settings, carrier: Party, query: str, cap: int
) -> dict[str, Any]:
    app = create_app(settings.model_copy(update={"board_count_cap": cap}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            body: dict[str, Any] = (
                await http.get(f"/loads?{query}", headers=carrier.headers)
            ).json()
    return body


RADIUS_AND_EQUIPMENT = (
    f"originLat={SEATTLE[0]}&originLng={SEATTLE[1]}&originRadiusMi=50&equipmentType=FLATBED"
)


async def test_board_total_of_a_radius_with_filters_is_exact_within_its_budget(
    resources: Resources, settings: Settings, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for equipment in ("FLATBED", "END_DUMP", "END_DUMP"):
        await insert_load(resources.sessionmaker, shipper.organization, equipment_type=equipment)

    # Cap 2: the count reads at most 4 loads of the circle; it holds 3.
    body = await _search_with_cap(settings, carrier, RADIUS_AND_EQUIPMENT, cap=2)

    assert (body["total"], body["totalExact"]) == (1, True)


async def test_board_total_of_a_radius_with_filters_is_a_lower_bound_past_its_budget(
    resources: Resources, settings: Settings, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for equipment in ("FLATBED", "END_DUMP", "END_DUMP", "END_DUMP", "END_DUMP", "END_DUMP"):
        await insert_load(resources.sessionmaker, shipper.organization, equipment_type=equipment)

    # Cap 2: the count reads at most 4 of the circle's 6 loads, so it cannot be exact.
    # (Sorted by pickup date, a walk of the equipment's own rows would count them all.)
    query = f"{RADIUS_AND_EQUIPMENT}&sort=distance"
    body = await _search_with_cap(settings, carrier, query, cap=2)

    assert (body["totalExact"], body["total"] <= 1) == (False, True)


async def test_board_total_of_a_radius_walk_over_every_match_is_exact(
    resources: Resources, settings: Settings, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for equipment in ("FLATBED", "END_DUMP", "END_DUMP", "END_DUMP", "END_DUMP", "END_DUMP"):
        await insert_load(resources.sessionmaker, shipper.organization, equipment_type=equipment)

    # Past the circle's count budget, but the walk along the FLATBED loads saw them all.
    body = await _search_with_cap(settings, carrier, RADIUS_AND_EQUIPMENT, cap=2)

    assert (body["total"], body["totalExact"]) == (1, True)


async def test_board_total_is_omitted_on_cursor_pages(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    for n in range(3):
        await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(10 + n))
    cursor = (await _search(client, carrier, "limit=1"))["nextCursor"]

    assert (await _search(client, carrier, f"limit=1&cursor={cursor}"))["total"] is None


async def test_board_windows_are_given_in_the_facility_time_zone(
    client: httpx.AsyncClient, resources: Resources, parties: tuple[Party, Party]
) -> None:
    shipper, carrier = parties
    await insert_load(resources.sessionmaker, shipper.organization)

    window_start = (await _search(client, carrier, ""))["items"][0]["pickup"]["windowStart"]

    assert window_start[-6:] in {"-08:00", "-07:00"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("originLat=47.6", "originLng"),
        ("originRadiusMi=50", "originRadiusMi"),
        ("originLat=0&originLng=0", "originLat"),
        ("originLat=91&originLng=0", "originLat"),
        ("originLat=47.6&originLng=-122.3&originRadiusMi=5000", "originRadiusMi"),
        ("equipmentType=SPACESHIP", "equipmentType"),
        ("limit=1000", "limit"),
        ("sort=distance", "sort"),
        ("sort=cheapest", "sort"),
        ("minRate=10.001", "minRate"),
        ("pickupFrom=2026-12-01T00:00:00", "pickupFrom"),
        ("state=Washington", "state"),
        ("cursor=abc&page=2", "page"),
    ],
)
async def test_board_invalid_parameter_is_named_in_422(
    client: httpx.AsyncClient, parties: tuple[Party, Party], query: str, field: str
) -> None:
    _, carrier = parties

    response = await client.get(f"/loads?{query}", headers=carrier.headers)

    assert (response.status_code, [e["field"] for e in response.json()["errors"]]) == (422, [field])


async def test_board_requires_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/loads")).status_code == 401
