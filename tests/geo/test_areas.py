"""Geofence shapes: circles measured on the geodesic, polygons in local metres."""

from __future__ import annotations

import pytest

from superior_one.geo.areas import Circle, Polygon, point_in_circle, point_in_polygon
from superior_one.geo.geodesy import LatLng, destination, distance_m

CENTER = LatLng(41.525, -88.0817)

# A rectangular quarry pit about 1.7 km x 1.1 km west of Joliet, IL.
QUARRY = (
    LatLng(41.520, -88.090),
    LatLng(41.530, -88.090),
    LatLng(41.530, -88.070),
    LatLng(41.520, -88.070),
)


def test_circle_edge_distance_is_geodesic_minus_radius() -> None:
    point = LatLng(41.525159, -88.075629)

    assert Circle(CENTER, 500.0).edge_distance_m(point) == pytest.approx(
        distance_m(CENTER, point) - 500.0
    )


def test_circle_contains_point_on_edge() -> None:
    on_edge = destination(CENTER, 45.0, 499.999)

    assert point_in_circle(CENTER, 500.0, on_edge)


def test_circle_excludes_point_past_edge() -> None:
    assert not point_in_circle(CENTER, 500.0, destination(CENTER, 45.0, 500.01))


def test_circle_rejects_zero_radius() -> None:
    with pytest.raises(ValueError, match="radius_m"):
        Circle(CENTER, 0.0)


def test_circle_edge_distances_match_scalar() -> None:
    circle = Circle(CENTER, 500.0)
    points = [destination(CENTER, az, 700.0) for az in (0.0, 90.0, 200.0)]

    batch = circle.edge_distances_m([p.lat for p in points], [p.lng for p in points])

    for got, point in zip(batch, points, strict=True):
        assert got == pytest.approx(circle.edge_distance_m(point), abs=1e-6)


def test_polygon_contains_its_centre() -> None:
    assert point_in_polygon(QUARRY, LatLng(41.525, -88.080))


def test_polygon_edge_distance_inside_negative() -> None:
    # 0.005 degrees of latitude south of the north edge is about 555 m.
    inside = LatLng(41.525, -88.080)

    assert Polygon(QUARRY).edge_distance_m(inside) == pytest.approx(-555.3, abs=1.0)


def test_polygon_edge_distance_outside_matches_geodesic() -> None:
    outside = LatLng(41.535, -88.080)
    expected = distance_m(LatLng(41.530, -88.080), outside)

    assert Polygon(QUARRY).edge_distance_m(outside) == pytest.approx(expected, abs=0.5)


def test_polygon_accepts_closed_ring() -> None:
    closed = Polygon((*QUARRY, QUARRY[0]))

    assert closed.contains(LatLng(41.525, -88.080))


def test_polygon_rejects_two_vertices() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        Polygon(QUARRY[:2])


def test_polygon_rejects_self_crossing_ring() -> None:
    bow_tie = (QUARRY[0], QUARRY[2], QUARRY[1], QUARRY[3])

    with pytest.raises(ValueError, match="cross"):
        Polygon(bow_tie)
