"""Geofence shapes: a geodesic circle or a polygon, with a signed distance to the edge.

The signed edge distance is what geofence rules compare against: negative or
zero inside, the distance to the boundary in metres outside. For a circle it is
``geodesic(center, point) - radius``. For a polygon (a quarry, a job site) the
vertices and the point are projected onto a local azimuthal equidistant plane
centred on the polygon, where shapely measures in metres. Over a few kilometres
that projection is accurate to well under a metre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from pyproj import Transformer
from shapely import Point as ShapelyPoint
from shapely import Polygon as ShapelyPolygon
from shapely import prepare

from superior_one.geo.geodesy import LatLng, distance_m, distances_m


@dataclass(frozen=True, slots=True)
class Circle:
    """A geodesic circle: every point at most ``radius_m`` metres from ``center``."""

    center: LatLng
    radius_m: float

    def __post_init__(self) -> None:
        if not self.radius_m > 0:
            raise ValueError(f"radius_m must be > 0, got {self.radius_m}")

    def edge_distance_m(self, point: LatLng) -> float:
        return distance_m(self.center, point) - self.radius_m

    def contains(self, point: LatLng) -> bool:
        return self.edge_distance_m(point) <= 0.0

    def edge_distances_m(self, lats: Sequence[float], lngs: Sequence[float]) -> list[float]:
        """Return the signed edge distance of many points at once (vectorized)."""
        dist = distances_m(self.center.lat, self.center.lng, np.asarray(lats), np.asarray(lngs))
        return [float(d) - self.radius_m for d in dist]


@dataclass(frozen=True, slots=True)
class Polygon:
    """A simple polygon given by its vertices in order, ``(lat, lng)`` each.

    Meant for facility-sized areas (up to tens of kilometres across). The ring
    closes itself; repeating the first vertex at the end is allowed.
    """

    vertices: tuple[LatLng, ...]
    _projected: ShapelyPolygon = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ring = list(self.vertices)
        if len(ring) >= 2 and ring[0] == ring[-1]:
            ring = ring[:-1]
        if len(ring) < 3:
            raise ValueError(f"a polygon needs at least 3 distinct vertices, got {len(ring)}")
        transformer = _local_transformer(*_anchor(ring))
        xs, ys = transformer.transform([p.lng for p in ring], [p.lat for p in ring])
        projected = ShapelyPolygon(list(zip(xs, ys, strict=True)))
        if not projected.is_valid:
            raise ValueError("polygon vertices cross each other; give them in ring order")
        object.__setattr__(self, "_projected", projected)
        prepare(projected)

    @property
    def anchor(self) -> LatLng:
        return _anchor(list(self.vertices))

    def edge_distance_m(self, point: LatLng) -> float:
        x, y = _local_transformer(*self.anchor).transform(point.lng, point.lat)
        projected_point = ShapelyPoint(x, y)
        if self._projected.contains(projected_point) or self._projected.touches(projected_point):
            return -float(self._projected.exterior.distance(projected_point))
        return float(self._projected.distance(projected_point))

    def contains(self, point: LatLng) -> bool:
        return self.edge_distance_m(point) <= 0.0


Area = Circle | Polygon


def point_in_circle(center: LatLng, radius_m: float, point: LatLng) -> bool:
    return Circle(center, radius_m).contains(point)


def point_in_polygon(vertices: Sequence[LatLng | tuple[float, float]], point: LatLng) -> bool:
    return Polygon(tuple(LatLng(v[0], v[1]) for v in vertices)).contains(point)


def _anchor(ring: Sequence[LatLng]) -> LatLng:
    # Vertex mean, rounded so that polygons of one facility share one cached transformer.
    # NOTE: the plain mean of longitudes is wrong for a polygon that crosses the
    # antimeridian (western Aleutians); no US facility polygon does so far.
    lat = round(sum(p.lat for p in ring) / len(ring), 5)
    lng = round(sum(p.lng for p in ring) / len(ring), 5)
    return LatLng(lat, lng)


@lru_cache(maxsize=4096)
def _local_transformer(lat: float, lng: float) -> Transformer:
    return Transformer.from_crs(
        "EPSG:4326",
        f"+proj=aeqd +lat_0={lat} +lon_0={lng} +ellps=WGS84 +units=m +no_defs",
        always_xy=True,
    )
