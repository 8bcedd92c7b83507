"""Geodesy on WGS84: distances in metres and miles, and radius prefilter boxes.

The radius-search case: 100 miles around downtown Seattle, five pickups near the
edge. The product's metric is the WGS84 geodesic (PostGIS geography), so L5 at
100.2 geodesic miles is outside even though spherical haversine puts it at 99.9.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superior_one.geo.geodesy import (
    BOX_PADDING,
    METRES_PER_MILE,
    LatLng,
    bounding_box,
    box_half_extents_deg,
    destination,
    distance_m,
    distance_mi,
    distances_m,
    distances_mi,
    interpolate,
    is_within_radius,
    miles_to_metres,
    track_length_m,
)

SEATTLE = LatLng(47.6062, -122.3321)
RADIUS_MI = 100.0

# id -> (pickup, geodesic miles given by the case, rounded to 0.1)
RADIUS_CASE_LOADS = {
    "L1": (LatLng(47.588184, -120.299255), 95.0),
    "L2": (LatLng(49.039023, -122.3321), 99.0),
    "L3": (LatLng(47.585837, -120.170929), 101.0),
    "L4": (LatLng(48.618392, -120.790163), 99.9),
    "L5": (LatLng(47.586158, -120.188038), 100.2),
}


def test_mile_is_exactly_1609_344_metres() -> None:
    assert METRES_PER_MILE == 1609.344
    assert miles_to_metres(100) == pytest.approx(160_934.4, abs=1e-9)


@pytest.mark.parametrize("load_id", sorted(RADIUS_CASE_LOADS))
def test_distance_mi_matches_geodesic_reference(load_id: str) -> None:
    pickup, expected_mi = RADIUS_CASE_LOADS[load_id]

    assert round(distance_mi(SEATTLE, pickup), 1) == expected_mi


def test_radius_filter_geodesic_keeps_l1_l2_l4() -> None:
    within = {
        load_id
        for load_id, (pickup, _) in RADIUS_CASE_LOADS.items()
        if is_within_radius(SEATTLE, pickup, miles_to_metres(RADIUS_MI))
    }

    assert within == {"L1", "L2", "L4"}


def test_radius_filter_excludes_l5_that_haversine_would_include() -> None:
    pickup, _ = RADIUS_CASE_LOADS["L5"]

    assert distance_mi(SEATTLE, pickup) > RADIUS_MI


def test_box_half_extents_match_spherical_formula() -> None:
    half_height, half_width = box_half_extents_deg(
        SEATTLE.lat, miles_to_metres(RADIUS_MI), padding=0.0
    )

    assert half_height == pytest.approx(1.4473, abs=5e-5)
    assert half_width == pytest.approx(2.1469, abs=5e-5)


def test_box_half_width_divides_by_cos_latitude() -> None:
    half_height, half_width = box_half_extents_deg(
        SEATTLE.lat, miles_to_metres(RADIUS_MI), padding=0.0
    )
    wrong_half_width = half_height * math.cos(math.radians(SEATTLE.lat))

    assert wrong_half_width == pytest.approx(0.9758, abs=5e-5)
    assert half_width > half_height > wrong_half_width


@pytest.mark.parametrize("load_id", ["L1", "L4"])
def test_box_keeps_loads_a_cos_multiplied_box_drops(load_id: str) -> None:
    pickup, _ = RADIUS_CASE_LOADS[load_id]
    half_height, _ = box_half_extents_deg(SEATTLE.lat, miles_to_metres(RADIUS_MI), padding=0.0)
    wrong_half_width = half_height * math.cos(math.radians(SEATTLE.lat))
    box = bounding_box(SEATTLE, miles_to_metres(RADIUS_MI))

    assert abs(pickup.lng - SEATTLE.lng) > wrong_half_width
    assert box.contains(pickup)


def test_box_contains_every_case_load() -> None:
    box = bounding_box(SEATTLE, miles_to_metres(RADIUS_MI))

    for load_id, (pickup, _) in RADIUS_CASE_LOADS.items():
        assert box.contains(pickup), load_id


def test_box_corner_is_outside_radius() -> None:
    box = bounding_box(SEATTLE, miles_to_metres(RADIUS_MI), padding=0.0)

    corner_mi = distance_mi(SEATTLE, LatLng(box.max_lat, box.max_lng))

    assert corner_mi == pytest.approx(140.6, abs=0.1)


def test_box_padding_is_applied() -> None:
    bare = box_half_extents_deg(SEATTLE.lat, 10_000.0, padding=0.0)
    padded = box_half_extents_deg(SEATTLE.lat, 10_000.0)

    assert padded[0] == pytest.approx(bare[0] * (1 + BOX_PADDING))
    assert padded[1] == pytest.approx(bare[1] * (1 + BOX_PADDING))


def test_box_near_pole_spans_all_longitudes() -> None:
    box = bounding_box(LatLng(89.5, 10.0), 100_000.0)

    assert (box.min_lng, box.max_lng, box.max_lat) == (-180.0, 180.0, 90.0)


def test_box_across_antimeridian_wraps() -> None:
    center = LatLng(51.8, 179.9)  # Aleutians
    box = bounding_box(center, 50_000.0)

    assert box.crosses_antimeridian
    assert box.contains(destination(center, 90.0, 40_000.0))
    assert box.contains(destination(center, 270.0, 40_000.0))
    assert not box.contains(LatLng(51.8, 0.0))


def test_box_rejects_negative_radius() -> None:
    with pytest.raises(ValueError, match="radius_m"):
        box_half_extents_deg(0.0, -1.0)


def test_distances_m_matches_scalar_for_a_batch() -> None:
    pickups = [p for p, _ in RADIUS_CASE_LOADS.values()]
    lats, lngs = [p.lat for p in pickups], [p.lng for p in pickups]

    batch = distances_m(SEATTLE.lat, SEATTLE.lng, lats, lngs)

    assert batch.shape == (5,)
    for got, pickup in zip(batch, pickups, strict=True):
        assert got == pytest.approx(distance_m(SEATTLE, pickup), abs=1e-6)


def test_distances_mi_is_metres_over_mile() -> None:
    pickup, _ = RADIUS_CASE_LOADS["L2"]

    metres = distances_m(SEATTLE.lat, SEATTLE.lng, [pickup.lat], [pickup.lng])
    miles = distances_mi(SEATTLE.lat, SEATTLE.lng, [pickup.lat], [pickup.lng])

    assert miles[0] == pytest.approx(metres[0] / 1609.344)


def test_distances_m_of_empty_batch_is_empty() -> None:
    assert distances_m([], [], [], []).shape == (0,)


def test_track_length_sums_steps() -> None:
    a, b, c = LatLng(47.0, -122.0), LatLng(47.01, -122.0), LatLng(47.01, -122.01)

    total = track_length_m([a.lat, b.lat, c.lat], [a.lng, b.lng, c.lng])

    assert total == pytest.approx(distance_m(a, b) + distance_m(b, c), abs=1e-6)


def test_interpolate_spaces_points_evenly() -> None:
    a, b = LatLng(47.0, -122.0), LatLng(46.0, -121.0)

    points = interpolate(a, b, 3)
    steps = [distance_m(p, q) for p, q in zip([a, *points], [*points, b], strict=True)]

    assert len(points) == 3
    assert max(steps) - min(steps) < 0.01


latitudes = st.floats(min_value=-80.0, max_value=80.0)
longitudes = st.floats(min_value=-180.0, max_value=180.0)
radii = st.floats(min_value=10.0, max_value=1_000_000.0)


@settings(max_examples=200, deadline=None)
@given(lat=latitudes, lng=longitudes, radius=radii)
def test_box_contains_geodesic_circle(lat: float, lng: float, radius: float) -> None:
    center = LatLng(lat, lng)
    box = bounding_box(center, radius)
    azimuths = np.linspace(0.0, 360.0, 73)

    for azimuth in azimuths:
        point = destination(center, float(azimuth), radius)
        assert box.contains(point), (azimuth, point, box)


@settings(max_examples=200, deadline=None)
@given(lat1=latitudes, lng1=longitudes, lat2=latitudes, lng2=longitudes)
def test_distance_is_symmetric(lat1: float, lng1: float, lat2: float, lng2: float) -> None:
    a, b = LatLng(lat1, lng1), LatLng(lat2, lng2)

    assert distance_m(a, b) == pytest.approx(distance_m(b, a), abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(lat=latitudes, lng=longitudes, azimuth=st.floats(0.0, 360.0), radius=radii)
def test_destination_round_trips_distance(
    lat: float, lng: float, azimuth: float, radius: float
) -> None:
    center = LatLng(lat, lng)

    assert distance_m(center, destination(center, azimuth, radius)) == pytest.approx(
        radius, rel=1e-9, abs=1e-6
    )
