"""Road miles and routes on the offline US freeway graph (scgraph 2.15.0)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from superior_one.geo.geodesy import LatLng, distance_m, distance_mi
from superior_one.geo.roads import DETOUR_FACTOR, road_miles, road_network, road_route
from superior_one.geo.zips import lookup_zip

SEATTLE = LatLng(47.6062, -122.3321)
PORTLAND = LatLng(45.5152, -122.6784)
NEW_YORK = LatLng(40.7128, -74.0060)
LOS_ANGELES = LatLng(34.0522, -118.2437)
HONOLULU = LatLng(21.3069, -157.8583)
ANCHORAGE = LatLng(61.2181, -149.9003)


def test_route_seattle_to_portland_has_plausible_miles() -> None:
    # I-5 downtown to downtown is about 174 miles.
    route = road_route(SEATTLE, PORTLAND)

    assert route.method == "graph"
    assert not route.estimated
    assert 165.0 < route.miles < 185.0


def test_route_starts_and_ends_at_the_requested_points() -> None:
    route = road_route(SEATTLE, PORTLAND)

    assert route.points[0] == SEATTLE
    assert route.points[-1] == PORTLAND
    assert len(route.points) > 10


def test_route_steps_stay_on_simplified_graph_edges() -> None:
    route = road_route(SEATTLE, PORTLAND)

    steps = [distance_m(a, b) for a, b in pairwise(route.points)]

    # Graph edges are straight lines of up to about 70 km; a longer step means a jump.
    assert max(steps) < 100_000.0


def test_densified_route_has_no_step_above_limit() -> None:
    route = road_route(SEATTLE, PORTLAND)

    dense = route.densified(1_000.0)
    steps = [distance_m(a, b) for a, b in pairwise(dense)]

    assert max(steps) <= 1_000.0 + 1e-6
    assert dense[0] == SEATTLE
    assert dense[-1] == PORTLAND
    assert sum(steps) == pytest.approx(
        sum(distance_m(a, b) for a, b in pairwise(route.points)),
        rel=1e-9,
    )


def test_route_zip_to_zip_coast_to_coast() -> None:
    origin, destination = lookup_zip("10001"), lookup_zip("90012")
    assert origin is not None
    assert destination is not None

    miles = road_miles(origin.point, destination.point)

    # Interstate routes are about 2,780-2,800 miles.
    assert 2_700.0 < miles < 2_900.0


def test_road_miles_never_below_geodesic() -> None:
    assert road_miles(NEW_YORK, LOS_ANGELES) >= distance_mi(NEW_YORK, LOS_ANGELES)


def test_route_off_graph_is_estimated() -> None:
    route = road_route(HONOLULU, LatLng(21.3, -157.0))

    assert route.estimated
    assert route.miles == pytest.approx(distance_mi(HONOLULU, LatLng(21.3, -157.0)) * DETOUR_FACTOR)


def test_route_to_disconnected_region_is_estimated() -> None:
    route = road_route(ANCHORAGE, SEATTLE)

    assert route.estimated
    assert route.points[0] == ANCHORAGE
    assert route.points[-1] == SEATTLE


def test_local_trip_is_estimated_not_routed_via_freeway() -> None:
    near = LatLng(47.6100, -122.3300)

    route = road_route(SEATTLE, near)

    assert route.estimated
    assert route.miles == pytest.approx(distance_mi(SEATTLE, near) * DETOUR_FACTOR)


def test_miles_matrix_matches_single_routes() -> None:
    points = [SEATTLE, PORTLAND, NEW_YORK, LOS_ANGELES, HONOLULU]
    network = road_network()

    miles, estimated = network.miles_matrix(points, points)

    for i, origin in enumerate(points):
        for j, destination in enumerate(points):
            if i == j:
                continue
            route = network.route(origin, destination)
            assert miles[i, j] == pytest.approx(route.miles, rel=1e-6), (i, j)
            assert bool(estimated[i, j]) == route.estimated, (i, j)


def test_road_network_is_loaded_once() -> None:
    assert road_network() is road_network()
