"""Creating a load with bad fields answers 422 naming each of them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from superior_one.accounts.models import OrganizationType
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.loads.factories import Party, create_party, load_payload


@pytest.fixture
async def shipper(resources: Resources, settings: Settings) -> Party:
    return await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)


def _with_stop(stop: str, **changes: Any) -> dict[str, Any]:
    body = load_payload()
    body[stop] = {**body[stop], **changes}
    return body


CASES = [
    (_with_stop("pickup", lat=95.0, lng=-122.3), ["pickup.lat"]),
    (_with_stop("pickup", lat=47.6, lng=-190.0), ["pickup.lng"]),
    (_with_stop("pickup", lat=0, lng=0), ["pickup.lng"]),
    (_with_stop("pickup", lat=47.6), ["pickup.lng"]),
    (_with_stop("pickup", state="OR"), ["pickup.state"]),
    (_with_stop("delivery", zip="00000"), ["delivery.zip"]),
    (_with_stop("delivery", zip="98-01"), ["delivery.zip"]),
    (_with_stop("pickup", timeZone="Pacific/Nowhere"), ["pickup.timeZone"]),
    (_with_stop("pickup", windowStart="2030-01-02T08:00:00"), ["pickup.windowStart"]),
    (
        _with_stop(
            "pickup", windowStart="2030-01-02T08:00:00-08:00", windowEnd="2030-01-02T07:00:00-08:00"
        ),
        ["pickup.windowEnd"],
    ),
    (load_payload(rate="18.505"), ["rate"]),
    (load_payload(rate="-5"), ["rate"]),
    (load_payload(rate="0"), ["rate"]),
    (load_payload(units=None), ["units"]),
    (load_payload(rateMode="FLAT"), ["units"]),
    (load_payload(weightLbs=0), ["weightLbs"]),
    (load_payload(haulType="SIDEWAYS"), ["haulType"]),
    # Paris coordinates with a Seattle ZIP; latitude and longitude swapped.
    (_with_stop("pickup", lat=48.8566, lng=2.3522), ["pickup"]),
    (_with_stop("pickup", lat=-122.33, lng=47.6), ["pickup.lat"]),
    ({k: v for k, v in load_payload().items() if k != "units"}, ["units"]),
    (load_payload(rate="99999999999999999.99"), ["rate"]),
    (
        _with_stop(
            "delivery",
            windowStart="2020-01-02T08:00:00-08:00",
            windowEnd="2020-01-02T12:00:00-08:00",
        ),
        ["delivery"],
    ),
    (
        {**_with_stop("pickup", state="OR"), "rate": "1.001", "weightLbs": -1},
        ["pickup.state", "rate", "weightLbs"],
    ),
    # Numbers beyond what the columns hold (BIGINT cents, NUMERIC(12, 2) units,
    # NUMERIC(8, 1) miles, INTEGER pounds and metres).
    (load_payload(units=1e300), ["units"]),
    (load_payload(units="1e300"), ["units"]),
    (load_payload(units="100000.01"), ["units"]),
    (load_payload(units="22.001"), ["units"]),
    (load_payload(rate=1e300), ["rate"]),
    (load_payload(rate=10**30), ["rate"]),
    (load_payload(miles=1e17), ["miles"]),
    (load_payload(miles="0.04"), ["miles"]),
    (load_payload(weightLbs=1e17), ["weightLbs"]),
    (_with_stop("pickup", geofenceRadiusM=10**20), ["pickup.geofenceRadiusM"]),
]


@pytest.mark.parametrize(("body", "fields"), CASES)
async def test_load_validation_names_each_bad_field(
    client: httpx.AsyncClient, shipper: Party, body: dict[str, Any], fields: list[str]
) -> None:
    response = await client.post("/loads", json=body, headers=shipper.headers)

    reported = sorted({e["field"] for e in response.json().get("errors", [])})
    assert (response.status_code, reported) == (422, fields)


async def test_load_validation_unknown_equipment_is_422(
    client: httpx.AsyncClient, shipper: Party
) -> None:
    response = await client.post(
        "/loads", json=load_payload(equipmentType="HOVERCRAFT"), headers=shipper.headers
    )

    assert (response.status_code, [e["field"] for e in response.json()["errors"]]) == (
        422,
        ["equipmentType"],
    )


async def test_load_zip_fills_coordinates_and_time_zone(
    client: httpx.AsyncClient, shipper: Party
) -> None:
    response = await client.post("/loads", json=load_payload(), headers=shipper.headers)

    pickup = response.json()["pickup"]
    assert (round(pickup["lat"], 1), round(pickup["lng"], 1), pickup["timeZone"]) == (
        47.6,
        -122.3,
        "America/Los_Angeles",
    )


async def test_load_without_miles_gets_road_miles_from_the_freeway_graph(
    client: httpx.AsyncClient, shipper: Party
) -> None:
    body = load_payload(miles=None, rateMode="PER_MILE", rate="3.10", units=None)
    body["delivery"] = {**body["delivery"], "city": "Portland", "state": "OR", "zip": "97204"}

    response = await client.post("/loads", json=body, headers=shipper.headers)

    # Seattle to Portland is about 174 road miles on I-5 (145 miles as the crow flies).
    assert 160 <= response.json()["miles"] <= 190


async def test_load_post_with_past_pickup_window_is_rejected(
    client: httpx.AsyncClient, shipper: Party
) -> None:
    body = _with_stop(
        "pickup", windowStart="2020-01-02T08:00:00-08:00", windowEnd="2020-01-02T12:00:00-08:00"
    )
    body["post"] = True

    response = await client.post("/loads", json=body, headers=shipper.headers)

    assert (response.status_code, [e["field"] for e in response.json()["errors"]]) == (
        422,
        ["pickup.windowEnd"],
    )


async def test_load_edit_is_refused_once_assigned(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, shipper: Party
) -> None:
    from superior_one.loads.models import LoadStatus
    from tests.loads.factories import insert_load

    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    load = await insert_load(
        resources.sessionmaker,
        shipper.organization,
        status=LoadStatus.ASSIGNED,
        carrier=carrier.organization,
    )

    response = await client.patch(
        f"/loads/{load.id}", json={"commodity": "Sand"}, headers=shipper.headers
    )

    assert (response.status_code, response.json()["code"]) == (409, "load_not_editable")


async def test_load_edit_recomputes_gross_revenue(
    client: httpx.AsyncClient, shipper: Party
) -> None:
    created = (await client.post("/loads", json=load_payload(), headers=shipper.headers)).json()

    response = await client.patch(
        f"/loads/{created['id']}", json={"rate": "20.00", "units": "21.5"}, headers=shipper.headers
    )

    assert response.json()["grossRevenue"] == "430.00"


@pytest.mark.parametrize(
    ("body", "field", "maximum"),
    [
        (load_payload(units=1e300), "units", "100000"),
        (load_payload(rate=1e300), "rate", "10000000.00"),
        (load_payload(miles=1e17), "miles", "5000"),
    ],
)
async def test_load_number_above_maximum_names_it(
    client: httpx.AsyncClient, shipper: Party, body: dict[str, Any], field: str, maximum: str
) -> None:
    response = await client.post("/loads", json=body, headers=shipper.headers)

    (error,) = response.json()["errors"]
    assert error["field"] == field
    assert maximum in error["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rate": 1e300}, "rate"),
        ({"rate": "99999999999999999.99"}, "rate"),
        ({"units": 1e300}, "units"),
        ({"miles": "1e17"}, "miles"),
        ({"weightLbs": 10**20}, "weightLbs"),
    ],
)
async def test_load_edit_number_above_maximum_is_422(
    client: httpx.AsyncClient, shipper: Party, change: dict[str, Any], field: str
) -> None:
    created = (await client.post("/loads", json=load_payload(), headers=shipper.headers)).json()

    response = await client.patch(f"/loads/{created['id']}", json=change, headers=shipper.headers)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("counter", [1e30, "99999999999999999999", 10**25, "10000000.01"])
async def test_interest_counter_rate_above_maximum_is_422(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    shipper: Party,
    counter: object,
) -> None:
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    posted = await client.post("/loads", json=load_payload(post=True), headers=shipper.headers)

    response = await client.put(
        f"/loads/{posted.json()['id']}/interest",
        json={"counterRate": counter},
        headers=carrier.headers,
    )

    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "counterRate"
    assert "exceeds the maximum of 10000000.00" in error["message"]


async def test_load_negative_rate_message(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await client.post("/loads", json=load_payload(rate="-5"), headers=shipper.headers)

    (error,) = response.json()["errors"]
    assert error["field"] == "rate"
    assert "must be greater than 0" in error["message"]


async def test_load_rate_wrong_type_is_one_error(client: httpx.AsyncClient, shipper: Party) -> None:
    response = await client.post("/loads", json=load_payload(rate=[1]), headers=shipper.headers)

    (error,) = response.json()["errors"]
    assert error["field"] == "rate"
    assert "expected an amount in US dollars" in error["message"]


async def test_load_largest_amounts_are_accepted(client: httpx.AsyncClient, shipper: Party) -> None:
    body = load_payload(rate="10000000.00", units="100000", miles="5000")

    response = await client.post("/loads", json=body, headers=shipper.headers)

    assert response.status_code == 201
    assert response.json()["grossRevenue"] == "1000000000000.00"
