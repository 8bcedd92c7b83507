"""Geofence state machine: dwell, hysteresis, ordering, shapes and serialization."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from superior_one.geo.geodesy import LatLng, destination
from superior_one.tracking.fixes import Fix
from superior_one.tracking.geofence import (
    FenceSide,
    FixOutcome,
    GeofenceEvent,
    GeofenceEventType,
    GeofenceState,
    StopFence,
    StopKind,
    StopPhase,
    process_fixes,
)
from superior_one.tracking.rules import GEOFENCE_RULES, GeofenceRules

PICKUP = LatLng(41.525, -88.0817)
DELIVERY = LatLng(39.7684, -86.1581)
T0 = datetime(2024, 6, 12, 14, 0, tzinfo=UTC)
RULES = GEOFENCE_RULES


def _fix(
    n: int,
    point: LatLng,
    *,
    seconds: float | None = None,
    accuracy_m: float | None = 10.0,
    speed_mps: float | None = 0.0,
) -> Fix:
    offset = seconds if seconds is not None else n * 30.0
    return Fix(
        fix_id=f"f{n}",
        fix_time=T0 + timedelta(seconds=offset),
        lat=point.lat,
        lng=point.lng,
        accuracy_m=accuracy_m,
        speed_mps=speed_mps,
    )


def _inside(stop: LatLng, metres: float = 100.0) -> LatLng:
    return destination(stop, 45.0, metres)


def _outside(stop: LatLng) -> LatLng:
    # Clears the exit radius by 100 m even after subtracting a 10 m accuracy.
    return destination(stop, 45.0, RULES.default_radius_m + RULES.exit_margin_m + 110.0)


def _load(*, departed: int = 0, pickup: StopFence | None = None) -> GeofenceState:
    return GeofenceState.start(
        "L-1",
        [
            pickup or StopFence(stop_id="p", kind=StopKind.PICKUP, center=tuple(PICKUP)),
            StopFence(stop_id="d", kind=StopKind.DELIVERY, center=tuple(DELIVERY)),
        ],
        departed=departed,
    )


def _dwell(stop: LatLng, start: int = 0) -> list[Fix]:
    # Enough inside fixes at rest, 30 s apart, to span the minimum dwell.
    count = max(RULES.dwell_min_fixes, int(RULES.dwell_min_s // 30) + 1)
    return [_fix(start + i, _inside(stop)) for i in range(count)]


def _types(events: list[GeofenceEvent]) -> list[GeofenceEventType]:
    return [e.type for e in events]


def test_dwell_arrives_after_minimum_time() -> None:
    result = process_fixes(_load(), _dwell(PICKUP))

    assert _types(result.events) == [GeofenceEventType.ENTERED, GeofenceEventType.ARRIVED_PICKUP]
    assert result.state.progress[0].phase == StopPhase.ARRIVED


def test_dwell_shorter_than_minimum_does_not_arrive() -> None:
    fixes = [_fix(0, _inside(PICKUP)), _fix(1, _inside(PICKUP), seconds=RULES.dwell_min_s - 1)]

    result = process_fixes(_load(), fixes)

    assert _types(result.events) == [GeofenceEventType.ENTERED]


def test_single_long_fix_does_not_arrive() -> None:
    # One fix is not a dwell, however long ago the truck entered.
    rules = GeofenceRules(dwell_min_fixes=3)
    fixes = [_fix(0, _inside(PICKUP)), _fix(1, _inside(PICKUP), seconds=600)]

    result = process_fixes(_load(), fixes, rules)

    assert GeofenceEventType.ARRIVED_PICKUP not in _types(result.events)


def test_drive_through_enters_and_exits_without_arrival() -> None:
    fast = 20.0
    fixes = [
        _fix(0, _inside(PICKUP), speed_mps=fast),
        _fix(1, _inside(PICKUP, 50.0), speed_mps=fast),
        _fix(2, _inside(PICKUP, 200.0), speed_mps=fast),
        _fix(3, _outside(PICKUP), speed_mps=fast),
        _fix(4, _outside(PICKUP), speed_mps=fast),
    ]

    result = process_fixes(_load(), fixes)

    assert _types(result.events) == [GeofenceEventType.ENTERED, GeofenceEventType.EXITED]
    assert result.state.progress[0].phase == StopPhase.PENDING


def test_fast_fix_restarts_dwell() -> None:
    fixes = [
        _fix(0, _inside(PICKUP)),
        _fix(1, _inside(PICKUP), speed_mps=RULES.dwell_max_speed_mps + 1.0),
        _fix(2, _inside(PICKUP)),
        _fix(3, _inside(PICKUP)),
    ]

    result = process_fixes(_load(), fixes)

    # Dwell restarts at f2, so f3 spans only 30 s.
    assert GeofenceEventType.ARRIVED_PICKUP not in _types(result.events)


def test_missing_speed_uses_implied_speed() -> None:
    far_inside = destination(PICKUP, 225.0, 400.0)
    fixes = [
        _fix(0, _inside(PICKUP, 400.0), speed_mps=None),
        _fix(1, far_inside, speed_mps=None, seconds=30.0),  # 800 m in 30 s
        _fix(2, far_inside, speed_mps=None, seconds=60.0),
    ]

    result = process_fixes(_load(), fixes)

    assert result.state.progress[0].dwell_fixes == 1


def test_single_outside_fix_does_not_exit() -> None:
    fixes = [*_dwell(PICKUP), _fix(10, _outside(PICKUP)), _fix(11, _inside(PICKUP))]

    result = process_fixes(_load(), fixes)

    assert GeofenceEventType.EXITED not in _types(result.events)
    assert result.state.progress[0].side == FenceSide.INSIDE


def test_departure_after_arrival_fires_departed_pickup() -> None:
    fixes = [*_dwell(PICKUP), _fix(10, _outside(PICKUP)), _fix(11, _outside(PICKUP))]

    result = process_fixes(_load(), fixes)

    assert _types(result.events)[-2:] == [
        GeofenceEventType.EXITED,
        GeofenceEventType.DEPARTED_PICKUP,
    ]
    assert result.events[-1].fix_id == "f11"
    assert result.state.progress[0].phase == StopPhase.DEPARTED


def test_first_fixes_outside_fire_no_exit() -> None:
    fixes = [_fix(0, _outside(PICKUP)), _fix(1, _outside(PICKUP)), _fix(2, _outside(PICKUP))]

    result = process_fixes(_load(), fixes)

    assert result.events == []
    assert result.state.progress[0].side == FenceSide.OUTSIDE


def test_poor_accuracy_fix_changes_no_counter() -> None:
    fixes = [
        *_dwell(PICKUP),
        _fix(10, _outside(PICKUP)),
        _fix(11, _outside(PICKUP), accuracy_m=RULES.max_accuracy_m + 1.0),
    ]

    result = process_fixes(_load(), fixes)

    assert result.state.progress[0].outside_fixes == 1
    assert result.decisions[-1].outcome == FixOutcome.POOR_ACCURACY


def test_unknown_accuracy_counts_as_poor() -> None:
    result = process_fixes(_load(), [_fix(0, _inside(PICKUP), accuracy_m=None)])

    assert result.decisions[0].outcome == FixOutcome.POOR_ACCURACY
    assert result.events == []


def test_late_fix_is_ignored() -> None:
    first = process_fixes(_load(), _dwell(PICKUP, start=10))
    late = [_fix(0, _outside(PICKUP)), _fix(1, _outside(PICKUP))]

    second = process_fixes(first.state, late)

    assert second.events == []
    assert [d.outcome for d in second.decisions] == [FixOutcome.LATE, FixOutcome.LATE]
    assert second.state == first.state


def test_fix_at_same_instant_is_duplicate() -> None:
    first = process_fixes(_load(), [_fix(0, _inside(PICKUP))])

    second = process_fixes(first.state, [_fix(0, _outside(PICKUP))])

    assert second.decisions[0].outcome == FixOutcome.DUPLICATE


def test_batch_is_processed_in_fix_time_order() -> None:
    fixes = [*_dwell(PICKUP), _fix(10, _outside(PICKUP)), _fix(11, _outside(PICKUP))]

    result = process_fixes(_load(), list(reversed(fixes)))

    assert [d.fix_id for d in result.decisions] == [f.fix_id for f in fixes]
    assert GeofenceEventType.DEPARTED_PICKUP in _types(result.events)


def test_input_state_is_not_modified() -> None:
    state = _load()
    before = state.to_dict()

    process_fixes(state, _dwell(PICKUP))

    assert state.to_dict() == before


def test_state_round_trips_through_json() -> None:
    result = process_fixes(_load(), [*_dwell(PICKUP), _fix(10, _outside(PICKUP))])

    restored = GeofenceState.from_dict(json.loads(json.dumps(result.state.to_dict())))

    assert restored == result.state


def test_departed_stop_is_not_evaluated() -> None:
    state = _load(departed=1)

    result = process_fixes(state, _dwell(PICKUP))

    assert result.events == []


def test_delivery_arrival_after_departed_pickup_is_in_sequence() -> None:
    result = process_fixes(_load(departed=1), _dwell(DELIVERY))

    arrived = [e for e in result.events if e.type == GeofenceEventType.ARRIVED_DELIVERY]

    assert len(arrived) == 1
    assert arrived[0].in_sequence


def test_delivery_arrival_without_pickup_is_out_of_sequence() -> None:
    result = process_fixes(_load(), _dwell(DELIVERY))

    arrived = [e for e in result.events if e.type == GeofenceEventType.ARRIVED_DELIVERY]

    assert len(arrived) == 1
    assert not arrived[0].in_sequence


def test_all_stops_departed_reports_no_open_stop() -> None:
    result = process_fixes(_load(departed=2), [_fix(0, _inside(DELIVERY))])

    assert result.decisions[0].outcome == FixOutcome.NO_OPEN_STOP


def test_radius_override_widens_fence() -> None:
    wide = StopFence(stop_id="p", kind=StopKind.PICKUP, center=tuple(PICKUP), radius_m=2_000.0)
    at_1500 = destination(PICKUP, 90.0, 1_500.0)

    result = process_fixes(_load(pickup=wide), [_fix(0, at_1500)])

    assert _types(result.events) == [GeofenceEventType.ENTERED]


def test_polygon_stop_arrives_by_dwell() -> None:
    quarry = StopFence(
        stop_id="quarry",
        kind=StopKind.PICKUP,
        polygon=((41.520, -88.100), (41.540, -88.100), (41.540, -88.060), (41.520, -88.060)),
    )
    # 1.3 km from the polygon's centre: outside a default circle, inside the pit.
    in_pit = LatLng(41.530, -88.0645)

    result = process_fixes(_load(pickup=quarry), _dwell(in_pit))

    assert _types(result.events) == [GeofenceEventType.ENTERED, GeofenceEventType.ARRIVED_PICKUP]


def test_stop_fence_needs_exactly_one_shape() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        StopFence(stop_id="x", kind=StopKind.PICKUP)


def test_stop_fence_rejects_radius_on_polygon() -> None:
    with pytest.raises(ValidationError, match="radius_m"):
        StopFence(
            stop_id="x",
            kind=StopKind.PICKUP,
            polygon=((41.52, -88.1), (41.54, -88.1), (41.54, -88.06)),
            radius_m=100.0,
        )


def test_start_rejects_departed_beyond_stop_count() -> None:
    with pytest.raises(ValueError, match="departed"):
        GeofenceState.start("L-1", [], departed=1)
