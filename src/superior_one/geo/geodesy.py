"""Distances and radius prefilters on the WGS84 ellipsoid.

Every distance is a geodesic on WGS84 computed by pyproj's ``Geod`` (Karney's
algorithm, the same as geographiclib and PostGIS ``geography``), so Python and
the database agree to the millimetre. Points are ``(lat, lng)`` in degrees in
Python; PostGIS stores them the other way round, ``POINT(lng lat)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from pyproj import Geod

METRES_PER_MILE = 1609.344  # international mile, exact by definition

# Mean Earth radius (IUGG R1 = (2a + b) / 3). Used only for the spherical
# bounding-box formula below, never for a reported distance.
MEAN_EARTH_RADIUS_M = 6_371_008.8

# Relative margin added to the spherical bounding box. On WGS84 the radius of
# curvature ranges from about 6,335 km (meridian, at the equator) to 6,400 km
# (at the poles), up to 0.6 % away from the mean radius. A box computed on the
# mean sphere can therefore be too small by that much, and 1 % covers it.
BOX_PADDING = 0.01

WGS84 = Geod(ellps="WGS84")

FloatArray = npt.NDArray[np.float64]


class LatLng(NamedTuple):
    """A point in degrees, latitude first."""

    lat: float
    lng: float


def metres_to_miles(metres: float) -> float:
    return metres / METRES_PER_MILE


def miles_to_metres(miles: float) -> float:
    return miles * METRES_PER_MILE


def distance_m(a: LatLng | tuple[float, float], b: LatLng | tuple[float, float]) -> float:
    """Return the WGS84 geodesic distance between two points, in metres."""
    _, _, dist = WGS84.inv(a[1], a[0], b[1], b[0])
    return float(dist)


def distance_mi(a: LatLng | tuple[float, float], b: LatLng | tuple[float, float]) -> float:
    """Return the WGS84 geodesic distance between two points, in miles."""
    return distance_m(a, b) / METRES_PER_MILE


def distances_m(
    lats_a: npt.ArrayLike,
    lngs_a: npt.ArrayLike,
    lats_b: npt.ArrayLike,
    lngs_b: npt.ArrayLike,
) -> FloatArray:
    """Return element-wise geodesic distances in metres for arrays of points.

    The arrays broadcast against each other, so one centre against many fixes
    works as ``distances_m(lat0, lng0, lats, lngs)``.
    """
    la, ga, lb, gb = np.broadcast_arrays(
        np.asarray(lats_a, dtype=np.float64),
        np.asarray(lngs_a, dtype=np.float64),
        np.asarray(lats_b, dtype=np.float64),
        np.asarray(lngs_b, dtype=np.float64),
    )
    if la.size == 0:
        return np.zeros(la.shape, dtype=np.float64)
    _, _, dist = WGS84.inv(
        np.ascontiguousarray(ga),
        np.ascontiguousarray(la),
        np.ascontiguousarray(gb),
        np.ascontiguousarray(lb),
    )
    return np.asarray(dist, dtype=np.float64).reshape(la.shape)


def distances_mi(
    lats_a: npt.ArrayLike,
    lngs_a: npt.ArrayLike,
    lats_b: npt.ArrayLike,
    lngs_b: npt.ArrayLike,
) -> FloatArray:
    """Return element-wise geodesic distances in miles; see :func:`distances_m`."""
    return distances_m(lats_a, lngs_a, lats_b, lngs_b) / METRES_PER_MILE


def step_distances_m(lats: npt.ArrayLike, lngs: npt.ArrayLike) -> FloatArray:
    """Return the geodesic length of each step of a track (``len(points) - 1`` values)."""
    lat_arr = np.asarray(lats, dtype=np.float64)
    lng_arr = np.asarray(lngs, dtype=np.float64)
    if lat_arr.size < 2:
        return np.zeros(0, dtype=np.float64)
    return distances_m(lat_arr[:-1], lng_arr[:-1], lat_arr[1:], lng_arr[1:])


def track_length_m(lats: npt.ArrayLike, lngs: npt.ArrayLike) -> float:
    """Return the geodesic length of a track through the points in order, in metres."""
    return float(step_distances_m(lats, lngs).sum())


def destination(origin: LatLng, azimuth_deg: float, distance: float) -> LatLng:
    """Return the point ``distance`` metres from ``origin`` along ``azimuth_deg``."""
    lng, lat, _ = WGS84.fwd(origin.lng, origin.lat, azimuth_deg, distance)
    return LatLng(float(lat), float(lng))


def interpolate(a: LatLng, b: LatLng, count: int) -> list[LatLng]:
    """Return ``count`` equally spaced points strictly between ``a`` and ``b`` on the geodesic."""
    if count <= 0:
        return []
    points = WGS84.npts(a.lng, a.lat, b.lng, b.lat, count)
    return [LatLng(float(lat), float(lng)) for lng, lat in points]


def is_within_radius(center: LatLng, point: LatLng, radius_m: float) -> bool:
    """Return whether ``point`` is at most ``radius_m`` metres (geodesic) from ``center``."""
    return distance_m(center, point) <= radius_m


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A latitude/longitude box that contains a geodesic circle, for index prefilters.

    When the circle crosses the antimeridian ``min_lng > max_lng`` and the box is
    the union of ``[min_lng, 180]`` and ``[-180, max_lng]``. A box is only a
    prefilter: its corners are outside the circle, so an exact distance test must
    always follow it.
    """

    min_lat: float
    max_lat: float
    min_lng: float
    max_lng: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.min_lng > self.max_lng

    def contains(self, point: LatLng) -> bool:
        if not self.min_lat <= point.lat <= self.max_lat:
            return False
        if self.crosses_antimeridian:
            return point.lng >= self.min_lng or point.lng <= self.max_lng
        return self.min_lng <= point.lng <= self.max_lng


def box_half_extents_deg(
    lat: float, radius_m: float, *, padding: float = BOX_PADDING
) -> tuple[float, float]:
    """Return ``(half_height, half_width)`` in degrees of a box around a circle.

    Spherical formulas on the mean radius: the angular radius is
    ``r = radius / R``; the half-height is ``r``; the half-width is
    ``asin(sin r / cos lat)``, the longitude of the tangent meridians. Dividing
    by ``cos lat`` widens the box away from the equator; multiplying by it, a
    common mistake, shrinks the box and drops points inside the radius. Both
    values are then scaled by ``1 + padding`` to cover the ellipsoid. A
    half-width of 180 means the circle reaches a pole, so every longitude is in.
    """
    if radius_m < 0:
        raise ValueError(f"radius_m must be >= 0, got {radius_m}")
    angular = radius_m / MEAN_EARTH_RADIUS_M
    half_height = math.degrees(angular) * (1 + padding)

    if abs(lat) + half_height >= 90.0 or angular >= math.pi / 2:
        return half_height, 180.0
    ratio = math.sin(angular) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return half_height, 180.0
    half_width = math.degrees(math.asin(ratio)) * (1 + padding)
    return half_height, min(half_width, 180.0)


def bounding_box(center: LatLng, radius_m: float, *, padding: float = BOX_PADDING) -> BoundingBox:
    """Return a box that contains every point within ``radius_m`` of ``center``."""
    half_height, half_width = box_half_extents_deg(center.lat, radius_m, padding=padding)
    min_lat = max(center.lat - half_height, -90.0)
    max_lat = min(center.lat + half_height, 90.0)
    if half_width >= 180.0:
        return BoundingBox(min_lat, max_lat, -180.0, 180.0)
    return BoundingBox(
        min_lat,
        max_lat,
        _wrap_lng(center.lng - half_width),
        _wrap_lng(center.lng + half_width),
    )


def _wrap_lng(lng: float) -> float:
    # Keeps 180 as 180 rather than folding it to -180, so a box never inverts by accident.
    if -180.0 <= lng <= 180.0:
        return lng
    return (lng + 180.0) % 360.0 - 180.0
