"""Road miles and routes on the US freeway graph shipped with ``scgraph==2.15.0``.

The graph (``scgraph.geographs.us_freeway``, 14,591 nodes, edge lengths in km)
ships inside that wheel, so nothing is downloaded. scgraph 3.x fetches graphs
over the network, so the pin must stay at 2.15.0. Loading it takes about 0.35 s
and a few tens of MB, so :func:`road_network` loads it once per process.

How a trip is measured:

1. Each end is snapped to its nearest graph node. The leg from the point to that
   node is off the graph and counts as ``geodesic * DETOUR_FACTOR``.
2. Dijkstra on the graph gives the freeway part. scgraph's
   ``GeoGraph.get_shortest_path`` appends temporary nodes to the shared graph,
   which is unsafe across threads, so this module runs
   ``Graph.dijkstra_makowski`` between the snapped nodes itself; that only reads
   the graph.
3. The result is an estimate, ``geodesic(origin, destination) * DETOUR_FACTOR``,
   flagged ``estimated=True``, when an end is more than ``MAX_SNAP_M`` from the
   graph (Alaska, Hawaii, Puerto Rico, remote ranches), when the graph does not
   connect the two nodes, or when the straight line is shorter than the two
   off-graph legs together (a local trip that would not use a freeway).

Road miles are never reported below the geodesic miles between the two points.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from superior_one.geo.geodesy import (
    METRES_PER_MILE,
    LatLng,
    distance_m,
    distances_m,
    interpolate,
)

# Road distance per straight-line distance (circuity), applied to off-graph legs
# and to the estimate. Studies summarised in Wikibooks' "Transportation Geography
# and Network Science/Circuity" put road networks at about 1.2 (Newell 1980) to
# 1.23 (O'Sullivan 1996). It is an average, so any single trip may differ.
DETOUR_FACTOR = 1.2

# Farther than this from the nearest freeway node, a point is treated as off the
# network and the trip is estimated. 50 km keeps rural ZIPs on the graph while
# catching islands and points in another landmass.
MAX_SNAP_M = 50_000.0

# Spacing of the straight-line points returned for an estimated route.
ESTIMATE_POINT_SPACING_M = 5_000.0

_KM = 1000.0

RouteMethod = Literal["graph", "estimate"]


@dataclass(frozen=True, slots=True)
class RoadRoute:
    """A route between two points: its road miles and the points along it."""

    miles: float
    points: tuple[LatLng, ...]  # origin first, destination last
    method: RouteMethod
    off_graph_m: float  # straight-line metres from the ends to the graph (0 for estimates)

    @property
    def estimated(self) -> bool:
        return self.method == "estimate"

    def densified(self, max_step_m: float) -> list[LatLng]:
        """Return the route's points with geodesic points added so no step exceeds ``max_step_m``.

        The freeway graph is simplified (straight edges up to about 70 km), so a
        simulator that moves a truck along the route needs the extra points.
        """
        if max_step_m <= 0:
            raise ValueError(f"max_step_m must be > 0, got {max_step_m}")
        dense = [self.points[0]]
        for start, end in pairwise(self.points):
            extra = math.ceil(distance_m(start, end) / max_step_m) - 1
            dense.extend(interpolate(start, end, extra))
            dense.append(end)
        return dense


class RoadNetwork:
    """The freeway graph with snapping and shortest paths.

    After loading, nothing here writes to the graph, the node list or the k-d
    tree, so one instance serves every thread of a process.

    It shares the lists of scgraph's module-level ``us_freeway_geograph``. Code in
    the same process must not call that object's ``get_shortest_path``, which
    appends and removes temporary nodes on those lists.
    """

    def __init__(self, graph: list[dict[int, float]], nodes: list[list[float]], kdtree: Any):
        self._graph = graph
        self._nodes = nodes
        self._kdtree = kdtree

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def snap(self, point: LatLng) -> tuple[int, float]:
        """Return the nearest graph node's id and its geodesic distance in metres."""
        node_id = int(self._kdtree.closest_idx(point=[point.lat, point.lng]))
        node = self._nodes[node_id]
        return node_id, distance_m(point, (node[0], node[1]))

    def route(self, origin: LatLng, destination: LatLng) -> RoadRoute:
        """Return the road route between two points (see the module notes for the rules)."""
        direct_m = distance_m(origin, destination)
        origin_node, origin_snap_m = self.snap(origin)
        dest_node, dest_snap_m = self.snap(destination)

        if not _graph_applies(direct_m, origin_snap_m, dest_snap_m):
            return _estimate(origin, destination, direct_m)
        try:
            path_km, node_path = self._shortest_path(origin_node, dest_node)
        except _DisconnectedError:
            return _estimate(origin, destination, direct_m)

        off_graph_m = origin_snap_m + dest_snap_m
        road_m = path_km * _KM + off_graph_m * DETOUR_FACTOR
        points = (
            origin,
            *(LatLng(self._nodes[n][0], self._nodes[n][1]) for n in node_path),
            destination,
        )
        return RoadRoute(
            miles=max(road_m, direct_m) / METRES_PER_MILE,
            points=points,
            method="graph",
            off_graph_m=off_graph_m,
        )

    def miles(self, origin: LatLng, destination: LatLng) -> tuple[float, bool]:
        """Return ``(road_miles, estimated)`` between two points."""
        result = self.route(origin, destination)
        return result.miles, result.estimated

    def miles_matrix(
        self, origins: Sequence[LatLng], destinations: Sequence[LatLng]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Return road miles for every origin/destination pair and which of them are estimates.

        One shortest-path tree is grown per distinct origin node, so a matrix of
        many pairs costs about as much as one long route per origin.
        """
        from scgraph.spanning import SpanningTree

        o_snaps = [self.snap(p) for p in origins]
        d_snaps = [self.snap(p) for p in destinations]
        d_nodes = np.array([n for n, _ in d_snaps], dtype=np.int64)
        d_snap_m = np.array([m for _, m in d_snaps], dtype=np.float64)
        d_lats = np.array([p.lat for p in destinations], dtype=np.float64)
        d_lngs = np.array([p.lng for p in destinations], dtype=np.float64)

        miles = np.zeros((len(origins), len(destinations)), dtype=np.float64)
        estimated = np.zeros((len(origins), len(destinations)), dtype=np.bool_)
        trees: dict[int, npt.NDArray[np.float64]] = {}
        for i, (origin, (o_node, o_snap_m)) in enumerate(zip(origins, o_snaps, strict=True)):
            if o_node not in trees:
                tree = SpanningTree.makowskis_spanning_tree(graph=self._graph, node_id=o_node)
                trees[o_node] = np.asarray(tree["distance_matrix"], dtype=np.float64)
            path_km = trees[o_node][d_nodes]
            direct_m = distances_m(origin.lat, origin.lng, d_lats, d_lngs)

            graph_m = path_km * _KM + (o_snap_m + d_snap_m) * DETOUR_FACTOR
            use_estimate = (
                ~np.isfinite(path_km)
                | (o_snap_m > MAX_SNAP_M)
                | (d_snap_m > MAX_SNAP_M)
                | (direct_m < o_snap_m + d_snap_m)
            )
            road_m = np.where(use_estimate, direct_m * DETOUR_FACTOR, np.maximum(graph_m, direct_m))
            miles[i] = road_m / METRES_PER_MILE
            estimated[i] = use_estimate
        return miles, estimated

    def _shortest_path(self, origin_node: int, dest_node: int) -> tuple[float, list[int]]:
        from scgraph.graph import Graph

        if origin_node == dest_node:
            return 0.0, [origin_node]
        try:
            result = Graph.dijkstra_makowski(
                graph=self._graph, origin_id=origin_node, destination_id=dest_node
            )
        except Exception as exc:  # scgraph raises a bare Exception for disconnected nodes
            if "not connected" in str(exc):
                raise _DisconnectedError from exc
            raise
        length = float(result["length"])
        if not math.isfinite(length):
            raise _DisconnectedError
        return length, [int(n) for n in result["path"]]


class _DisconnectedError(Exception):
    pass


def _graph_applies(direct_m: float, origin_snap_m: float, dest_snap_m: float) -> bool:
    if origin_snap_m > MAX_SNAP_M or dest_snap_m > MAX_SNAP_M:
        return False
    return direct_m >= origin_snap_m + dest_snap_m


def _estimate(origin: LatLng, destination: LatLng, direct_m: float) -> RoadRoute:
    count = int(direct_m // ESTIMATE_POINT_SPACING_M)
    points = (origin, *interpolate(origin, destination, count), destination)
    return RoadRoute(
        miles=direct_m * DETOUR_FACTOR / METRES_PER_MILE,
        points=points,
        method="estimate",
        off_graph_m=0.0,
    )


_lock = threading.Lock()
_network: RoadNetwork | None = None


def road_network() -> RoadNetwork:
    """Return the process-wide road network, loading the graph on first use."""
    global _network
    if _network is None:
        with _lock:
            if _network is None:
                _network = _load()
    return _network


def _load() -> RoadNetwork:
    from scgraph.geographs.us_freeway import us_freeway_geograph
    from scgraph.helpers.kd_tree import GeoKDTree

    return RoadNetwork(
        graph=us_freeway_geograph.graph,
        nodes=us_freeway_geograph.nodes,
        kdtree=GeoKDTree(points=us_freeway_geograph.nodes),
    )


def road_route(origin: LatLng, destination: LatLng) -> RoadRoute:
    return road_network().route(origin, destination)


def road_miles(origin: LatLng, destination: LatLng) -> float:
    return road_network().route(origin, destination).miles
