"""Geofence at a pickup edge: GPS scatter and a coarse fix must not flap the state.

A parked truck sits about 490-512 m from the centre of a 500 m pickup fence,
reporting every 30 s. One cell-tower fix (accuracy 1.8 km) lands 1.5 km out.
Then the truck drives away. Expected: one ENTERED (first fix), arrival after
the dwell, and one EXITED plus DEPARTED_PICKUP at the second confidently
outside fix; nothing in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from superior_one.geo.geodesy import LatLng, distance_m
from superior_one.tracking.fixes import Fix
from superior_one.tracking.geofence import (
    FixOutcome,
    GeofenceEventType,
    GeofenceState,
    StopFence,
    StopKind,
    process_fixes,
)
from superior_one.tracking.rules import GEOFENCE_RULES

PICKUP_CENTER = (41.525, -88.0817)
LOAD_ID = "L-7001"


@dataclass(frozen=True)
class Ping:
    n: int
    ts: str
    lat: float
    lng: float
    speed_mps: float
    heading: float
    accuracy_m: float
    dist_m: float  # geodesic distance to the centre given by the case


PINGS = [
    Ping(1, "2024-06-12T14:00:00Z", 41.525, -88.075829, 0.0, 90, 15, 490.0),
    Ping(2, "2024-06-12T14:00:30Z", 41.525159, -88.075629, 0.3, 88, 20, 507.0),
    Ping(3, "2024-06-12T14:01:00Z", 41.524922, -88.075794, 0.0, 91, 15, 493.0),
    Ping(4, "2024-06-12T14:01:30Z", 41.52508, -88.075567, 0.4, 89, 25, 512.0),
    Ping(5, "2024-06-12T14:02:00Z", 41.525, -88.075853, 0.0, 90, 15, 488.0),
    Ping(6, "2024-06-12T14:02:30Z", 41.52484, -88.075605, 0.2, 92, 20, 509.0),
    Ping(7, "2024-06-12T14:03:00Z", 41.538506, -88.0817, 0.0, 0, 1800, 1500.0),
    Ping(8, "2024-06-12T14:03:30Z", 41.525, -88.075829, 0.0, 90, 15, 490.0),
    Ping(9, "2024-06-12T14:30:00Z", 41.524466, -88.073584, 9.0, 95, 10, 680.0),
    Ping(10, "2024-06-12T14:30:30Z", 41.523792, -88.068619, 12.0, 97, 10, 1100.0),
]


def _fix(ping: Ping) -> Fix:
    return Fix(
        fix_id=f"{LOAD_ID}/{ping.n}",
        fix_time=datetime.fromisoformat(ping.ts),
        lat=ping.lat,
        lng=ping.lng,
        accuracy_m=ping.accuracy_m,
        speed_mps=ping.speed_mps,
        heading_deg=ping.heading,
    )


def _released_load() -> GeofenceState:
    # A load released to its driver: pickup pending, delivery 200 km away in Indianapolis.
    return GeofenceState.start(
        LOAD_ID,
        [
            StopFence(stop_id="pickup", kind=StopKind.PICKUP, center=PICKUP_CENTER),
            StopFence(stop_id="delivery", kind=StopKind.DELIVERY, center=(39.7684, -86.1581)),
        ],
    )


def _types_with_fix(state: GeofenceState, fixes: list[Fix]) -> list[tuple[GeofenceEventType, str]]:
    result = process_fixes(state, fixes)
    return [(e.type, e.fix_id) for e in result.events]


def test_case_rules_are_the_product_rules() -> None:
    # The expected events below hold for these constants; a change must revisit them.
    assert GEOFENCE_RULES.default_radius_m == 500.0
    assert GEOFENCE_RULES.exit_margin_m == 50.0
    assert GEOFENCE_RULES.exit_min_fixes == 2
    assert GEOFENCE_RULES.max_accuracy_m == 200.0


@pytest.mark.parametrize("ping", PINGS, ids=lambda p: f"ping{p.n}")
def test_ping_distance_matches_geodesic_reference(ping: Ping) -> None:
    measured = distance_m(LatLng(*PICKUP_CENTER), LatLng(ping.lat, ping.lng))

    assert measured == pytest.approx(ping.dist_m, abs=0.5)


@pytest.mark.parametrize("ping", PINGS[1:8], ids=lambda p: f"ping{p.n}")
def test_parked_pings_are_never_confidently_outside(ping: Ping) -> None:
    rules = GEOFENCE_RULES
    edge = ping.dist_m - rules.default_radius_m

    gated = ping.accuracy_m > rules.max_accuracy_m
    confidently_outside = edge - ping.accuracy_m > rules.exit_margin_m

    assert gated or not confidently_outside


def test_boundary_scatter_fires_one_entered_and_one_exited() -> None:
    events = _types_with_fix(_released_load(), [_fix(p) for p in PINGS])

    entered = [fix for kind, fix in events if kind == GeofenceEventType.ENTERED]
    exited = [fix for kind, fix in events if kind == GeofenceEventType.EXITED]

    assert entered == [f"{LOAD_ID}/1"]
    assert exited == [f"{LOAD_ID}/10"]


def test_boundary_scatter_departs_pickup_once_at_ping_10() -> None:
    events = _types_with_fix(_released_load(), [_fix(p) for p in PINGS])

    departed = [fix for kind, fix in events if kind == GeofenceEventType.DEPARTED_PICKUP]

    assert departed == [f"{LOAD_ID}/10"]


def test_boundary_scatter_arrives_after_dwell() -> None:
    # Pings 1 and 3 are inside at rest and 60 s apart; ping 2 sits in the hysteresis band.
    events = _types_with_fix(_released_load(), [_fix(p) for p in PINGS])

    arrived = [fix for kind, fix in events if kind == GeofenceEventType.ARRIVED_PICKUP]

    assert arrived == [f"{LOAD_ID}/3"]


def test_boundary_scatter_event_order() -> None:
    events = _types_with_fix(_released_load(), [_fix(p) for p in PINGS])

    assert [kind for kind, _ in events] == [
        GeofenceEventType.ENTERED,
        GeofenceEventType.ARRIVED_PICKUP,
        GeofenceEventType.EXITED,
        GeofenceEventType.DEPARTED_PICKUP,
    ]


def test_coarse_fix_is_ignored_for_geofencing() -> None:
    result = process_fixes(_released_load(), [_fix(p) for p in PINGS])

    outcomes = {d.fix_id: d.outcome for d in result.decisions}

    assert outcomes[f"{LOAD_ID}/7"] == FixOutcome.POOR_ACCURACY


def test_no_event_between_ping_2_and_ping_8() -> None:
    result = process_fixes(_released_load(), [_fix(p) for p in PINGS])

    middle = {f"{LOAD_ID}/{n}" for n in range(4, 10)}

    assert [e for e in result.events if e.fix_id in middle] == []


def test_single_fix_batches_match_one_batch() -> None:
    state = _released_load()
    events: list[tuple[GeofenceEventType, str]] = []
    for ping in PINGS:
        result = process_fixes(state, [_fix(ping)])
        events.extend((e.type, e.fix_id) for e in result.events)
        state = GeofenceState.from_dict(result.state.to_dict())

    assert events == _types_with_fix(_released_load(), [_fix(p) for p in PINGS])


def test_event_cites_deciding_fix() -> None:
    result = process_fixes(_released_load(), [_fix(p) for p in PINGS])
    departed = next(e for e in result.events if e.type == GeofenceEventType.DEPARTED_PICKUP)

    assert departed.fix_time == datetime(2024, 6, 12, 14, 30, 30, tzinfo=UTC)
    assert (departed.lat, departed.lng) == (41.523792, -88.068619)
    assert departed.edge_distance_m == pytest.approx(600.0, abs=0.5)
    assert departed.load_id == LOAD_ID
