"""Case C05: radius search in miles, WGS84 geodesic through PostGIS geography.

The product's documented metric is the WGS84 geodesic (ST_DWithin / ST_Distance
on geography with the spheroid), so L5 at 100.2 geodesic miles is outside a
100-mile radius although a spherical haversine puts it at 99.905 miles.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from superior_one.accounts.models import OrganizationType
from superior_one.config import Settings
from superior_one.geo.geodesy import METRES_PER_MILE, distance_mi
from superior_one.resources import Resources
from tests.loads.factories import create_party, insert_load

ORIGIN = (47.6062, -122.3321)
C05_PICKUPS = {
    "L1": (47.588184, -120.299255),
    "L2": (49.039023, -122.3321),
    "L3": (47.585837, -120.170929),
    "L4": (48.618392, -120.790163),
    "L5": (47.586158, -120.188038),
}
C05_QUERY = "/loads?origin_lat=47.6062&origin_lng=-122.3321&radius_mi=100&limit=50"


@pytest.fixture
async def c05(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> dict[str, Any]:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    for reference, pickup in C05_PICKUPS.items():
        await insert_load(
            resources.sessionmaker, shipper.organization, pickup=pickup, reference=reference
        )
    response = await client.get(C05_QUERY, headers=carrier.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_board_c05_radius_returns_l1_l2_l4(c05: dict[str, Any]) -> None:
    assert {item["reference"] for item in c05["items"]} == {"L1", "L2", "L4"}


async def test_board_c05_distances_are_geodesic_miles_to_one_decimal(c05: dict[str, Any]) -> None:
    distances = {item["reference"]: item["originDistanceMi"] for item in c05["items"]}
    assert distances == {"L1": 95.0, "L2": 99.0, "L4": 99.9}


async def test_board_c05_response_states_its_metric(c05: dict[str, Any]) -> None:
    assert c05["distanceMetric"] == "WGS84 geodesic (PostGIS geography), statute miles"


async def test_board_c05_l5_is_just_outside_on_the_ellipsoid(resources: Resources) -> None:
    async with resources.engine.connect() as conn:
        metres = (
            await conn.execute(
                text(
                    "SELECT ST_Distance('SRID=4326;POINT(-122.3321 47.6062)'::geography, "
                    "'SRID=4326;POINT(-120.188038 47.586158)'::geography)"
                )
            )
        ).scalar_one()
    assert round(metres / METRES_PER_MILE, 3) == 100.200


def test_board_c05_postgis_and_pyproj_agree_on_l5() -> None:
    # The same metric in Python (pyproj Geod, WGS84) and in the database.
    assert round(distance_mi(ORIGIN, C05_PICKUPS["L5"]), 3) == 100.200


async def test_board_c05_sorted_by_distance_nearest_first(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    for reference, pickup in C05_PICKUPS.items():
        await insert_load(
            resources.sessionmaker, shipper.organization, pickup=pickup, reference=reference
        )

    response = await client.get(C05_QUERY + "&sort=distance", headers=carrier.headers)

    assert [i["reference"] for i in response.json()["items"]] == ["L1", "L2", "L4"]
