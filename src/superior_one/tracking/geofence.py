"""Geofence state machine for the stops of one load. It does no I/O and reads no clock.

Given a load's state and a batch of accepted fixes, it returns the new state,
the events that fired and the outcome of each fix. The GPS consumer stores
the state between batches (``to_dict`` / ``from_dict``) and turns the events
into load lifecycle transitions.

Per stop, two things are tracked:

- the fence *side* (unknown, inside, outside). An inside fix enters. Leaving
  needs ``exit_min_fixes`` consecutive confidently-outside fixes, and fixes in
  the hysteresis band between the two change nothing. Each change is an
  ``ENTERED`` or ``EXITED`` event.
- the stop *phase* (pending, arrived, departed). Arrival needs a dwell:
  ``dwell_min_fixes`` inside fixes at low speed spanning ``dwell_min_s``. A fast
  inside fix or a confidently-outside fix restarts the dwell. Departure is the
  exit of a stop the truck arrived at. A departed stop is final.

Rules for every fix, from :class:`~superior_one.tracking.rules.GeofenceRules`:

- fixes are processed in fix-time order; a fix older than the last processed
  fix is *late* and a fix at the same instant is a *duplicate*: neither
  changes state nor fires an event (they are still stored by the caller).
- a fix whose accuracy is worse than ``max_accuracy_m``, or unknown, changes
  no state, counters included.

All stops that have not been departed are evaluated on every fix, each on its
own. An arrival event says whether every earlier stop had been arrived at
(``in_sequence``), so the lifecycle can flag a delivery without a proven pickup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from superior_one.geo.areas import Area, Circle, Polygon
from superior_one.geo.geodesy import LatLng, distance_m
from superior_one.tracking.fixes import Fix
from superior_one.tracking.rules import GEOFENCE_RULES, GeofenceRules

STATE_VERSION = 1


class StopKind(StrEnum):
    PICKUP = "pickup"
    DELIVERY = "delivery"


class StopPhase(StrEnum):
    PENDING = "pending"
    ARRIVED = "arrived"
    DEPARTED = "departed"


class FenceSide(StrEnum):
    UNKNOWN = "unknown"
    INSIDE = "inside"
    OUTSIDE = "outside"


class GeofenceEventType(StrEnum):
    ENTERED = "ENTERED"
    EXITED = "EXITED"
    ARRIVED_PICKUP = "ARRIVED_PICKUP"
    DEPARTED_PICKUP = "DEPARTED_PICKUP"
    ARRIVED_DELIVERY = "ARRIVED_DELIVERY"
    DEPARTED_DELIVERY = "DEPARTED_DELIVERY"


class FixOutcome(StrEnum):
    APPLIED = "applied"  # evaluated against the open stops (it may still change nothing)
    LATE = "late"  # older than the last processed fix
    DUPLICATE = "duplicate"  # same instant as the last processed fix
    POOR_ACCURACY = "poor_accuracy"  # accuracy unknown or worse than the gate
    NO_OPEN_STOP = "no_open_stop"  # every stop already departed


_ARRIVED = {StopKind.PICKUP: GeofenceEventType.ARRIVED_PICKUP,
            StopKind.DELIVERY: GeofenceEventType.ARRIVED_DELIVERY}  # fmt: skip
_DEPARTED = {StopKind.PICKUP: GeofenceEventType.DEPARTED_PICKUP,
             StopKind.DELIVERY: GeofenceEventType.DEPARTED_DELIVERY}  # fmt: skip


class StopFence(BaseModel):
    """A stop's fence: a circle (centre, optional radius override) or a polygon."""

    model_config = ConfigDict(frozen=True)

    stop_id: str
    kind: StopKind
    center: tuple[float, float] | None = None  # (lat, lng)
    radius_m: float | None = Field(default=None, gt=0)  # None: the rules' default radius
    polygon: tuple[tuple[float, float], ...] | None = None  # (lat, lng) vertices in order

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if (self.center is None) == (self.polygon is None):
            raise ValueError("a stop fence needs exactly one of center or polygon")
        if self.polygon is not None and self.radius_m is not None:
            raise ValueError("radius_m applies to a circle, not to a polygon")
        return self

    def area(self, rules: GeofenceRules) -> Area:
        if self.polygon is not None:
            return _polygon(self.polygon)
        assert self.center is not None
        radius = self.radius_m if self.radius_m is not None else rules.default_radius_m
        return Circle(LatLng(*self.center), radius)


class StopProgress(BaseModel):
    """Mutable progress of one stop, kept in the serialized state."""

    phase: StopPhase = StopPhase.PENDING
    side: FenceSide = FenceSide.UNKNOWN
    dwell_started_at: AwareDatetime | None = None
    dwell_fixes: int = 0
    outside_fixes: int = 0
    arrived_fix_id: str | None = None
    departed_fix_id: str | None = None


class GeofenceState(BaseModel):
    """Everything the engine needs between two batches of one load's fixes."""

    version: int = STATE_VERSION
    load_id: str
    stops: tuple[StopFence, ...]
    progress: list[StopProgress]
    last_fix_time: AwareDatetime | None = None
    last_fix_id: str | None = None
    # Last fix that passed the accuracy gate, for the implied speed of fixes without one.
    last_good_fix_time: AwareDatetime | None = None
    last_good_lat: float | None = None
    last_good_lng: float | None = None

    @model_validator(mode="after")
    def _progress_per_stop(self) -> Self:
        if len(self.progress) != len(self.stops):
            raise ValueError("progress must have one entry per stop")
        return self

    @classmethod
    def start(cls, load_id: str, stops: Sequence[StopFence], *, departed: int = 0) -> GeofenceState:
        """Return a fresh state; the first ``departed`` stops count as already departed."""
        if not 0 <= departed <= len(stops):
            raise ValueError(f"departed must be between 0 and {len(stops)}, got {departed}")
        progress = [
            StopProgress(phase=StopPhase.DEPARTED if i < departed else StopPhase.PENDING)
            for i in range(len(stops))
        ]
        return cls(load_id=load_id, stops=tuple(stops), progress=progress)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeofenceState:
        return cls.model_validate(data)


class GeofenceEvent(BaseModel):
    """A geofence decision, citing the fix that made it."""

    model_config = ConfigDict(frozen=True)

    type: GeofenceEventType
    load_id: str
    stop_index: int
    stop_id: str
    stop_kind: StopKind
    fix_id: str
    fix_time: AwareDatetime
    lat: float
    lng: float
    accuracy_m: float
    edge_distance_m: float  # signed: <= 0 inside the fence
    in_sequence: bool = True  # arrivals: every earlier stop had been arrived at


class FixDecision(BaseModel):
    """The engine's outcome for one fix."""

    model_config = ConfigDict(frozen=True)

    fix_id: str
    fix_time: AwareDatetime
    outcome: FixOutcome


class GeofenceResult(BaseModel):
    state: GeofenceState
    events: list[GeofenceEvent]
    decisions: list[FixDecision]  # in processing (fix-time) order


def process_fixes(
    state: GeofenceState, fixes: Iterable[Fix], rules: GeofenceRules = GEOFENCE_RULES
) -> GeofenceResult:
    """Apply a batch of accepted fixes to a load's geofence state.

    The input state is not modified. Fixes may come in any order; they are
    processed by fix time.
    """
    # Stops are frozen and shared; only progress entries change, so only they are
    # copied (a deep copy was a tenth of the gps-consumer's time).
    new_state = state.model_copy(update={"progress": [p.model_copy() for p in state.progress]})
    events: list[GeofenceEvent] = []
    decisions: list[FixDecision] = []
    for fix in sorted(fixes, key=lambda f: (f.fix_time, f.fix_id)):
        outcome = _apply(new_state, fix, rules, events)
        decisions.append(FixDecision(fix_id=fix.fix_id, fix_time=fix.fix_time, outcome=outcome))
    return GeofenceResult(state=new_state, events=events, decisions=decisions)


def _apply(
    state: GeofenceState, fix: Fix, rules: GeofenceRules, events: list[GeofenceEvent]
) -> FixOutcome:
    if state.last_fix_time is not None:
        if fix.fix_time < state.last_fix_time:
            return FixOutcome.LATE
        if fix.fix_time == state.last_fix_time:
            return FixOutcome.DUPLICATE
    state.last_fix_time = fix.fix_time
    state.last_fix_id = fix.fix_id

    if fix.accuracy_m is None or fix.accuracy_m > rules.max_accuracy_m:
        return FixOutcome.POOR_ACCURACY
    accuracy = fix.accuracy_m
    speed = _speed(state, fix)
    state.last_good_fix_time = fix.fix_time
    state.last_good_lat, state.last_good_lng = fix.lat, fix.lng

    open_stops = [i for i, p in enumerate(state.progress) if p.phase != StopPhase.DEPARTED]
    if not open_stops:
        return FixOutcome.NO_OPEN_STOP

    for index in open_stops:
        edge = state.stops[index].area(rules).edge_distance_m(fix.point)
        if edge <= 0.0:
            fired = _on_inside(state, index, fix, speed, rules)
        elif edge - accuracy > rules.exit_margin_m:
            fired = _on_outside(state, index, fix, rules)
        else:
            fired = []  # hysteresis band: neither inside nor confidently outside
        for kind, in_sequence in fired:
            events.append(_event(state, index, fix, accuracy, edge, kind, in_sequence))
    return FixOutcome.APPLIED


_Fired = list[tuple[GeofenceEventType, bool]]


def _on_inside(
    state: GeofenceState, index: int, fix: Fix, speed: float | None, rules: GeofenceRules
) -> _Fired:
    progress = state.progress[index]
    fired: _Fired = []
    progress.outside_fixes = 0
    if progress.side != FenceSide.INSIDE:
        progress.side = FenceSide.INSIDE
        fired.append((GeofenceEventType.ENTERED, True))
    if progress.phase != StopPhase.PENDING:
        return fired

    # NOTE: an unknown speed (none reported, no earlier good fix to imply one from)
    # counts as at rest, so a lone first fix may start a dwell.
    if speed is not None and speed > rules.dwell_max_speed_mps:
        progress.dwell_started_at = None
        progress.dwell_fixes = 0
        return fired
    if progress.dwell_started_at is None:
        progress.dwell_started_at = fix.fix_time
        progress.dwell_fixes = 0
    progress.dwell_fixes += 1

    dwell_s = (fix.fix_time - progress.dwell_started_at).total_seconds()
    if progress.dwell_fixes >= rules.dwell_min_fixes and dwell_s >= rules.dwell_min_s:
        progress.phase = StopPhase.ARRIVED
        progress.arrived_fix_id = fix.fix_id
        in_sequence = all(p.phase != StopPhase.PENDING for p in state.progress[:index])
        fired.append((_ARRIVED[state.stops[index].kind], in_sequence))
    return fired


def _on_outside(state: GeofenceState, index: int, fix: Fix, rules: GeofenceRules) -> _Fired:
    progress = state.progress[index]
    progress.dwell_started_at = None
    progress.dwell_fixes = 0
    progress.outside_fixes += 1
    if progress.outside_fixes < rules.exit_min_fixes or progress.side == FenceSide.OUTSIDE:
        return []

    was_inside = progress.side == FenceSide.INSIDE
    progress.side = FenceSide.OUTSIDE
    if not was_inside:
        return []
    fired: _Fired = [(GeofenceEventType.EXITED, True)]
    if progress.phase == StopPhase.ARRIVED:
        progress.phase = StopPhase.DEPARTED
        progress.departed_fix_id = fix.fix_id
        fired.append((_DEPARTED[state.stops[index].kind], True))
    return fired


def _event(
    state: GeofenceState,
    index: int,
    fix: Fix,
    accuracy: float,
    edge: float,
    kind: GeofenceEventType,
    in_sequence: bool,
) -> GeofenceEvent:
    stop = state.stops[index]
    return GeofenceEvent(
        type=kind,
        load_id=state.load_id,
        stop_index=index,
        stop_id=stop.stop_id,
        stop_kind=stop.kind,
        fix_id=fix.fix_id,
        fix_time=fix.fix_time,
        lat=fix.lat,
        lng=fix.lng,
        accuracy_m=accuracy,
        edge_distance_m=edge,
        in_sequence=in_sequence,
    )


def _speed(state: GeofenceState, fix: Fix) -> float | None:
    """Return the fix's ground speed: reported, else implied by the last good fix."""
    if fix.speed_mps is not None:
        return fix.speed_mps
    if state.last_good_fix_time is None or state.last_good_lat is None:
        return None
    elapsed = (fix.fix_time - state.last_good_fix_time).total_seconds()
    if elapsed <= 0:
        return None
    assert state.last_good_lng is not None
    return distance_m((state.last_good_lat, state.last_good_lng), fix.point) / elapsed


@lru_cache(maxsize=1024)
def _polygon(vertices: tuple[tuple[float, float], ...]) -> Polygon:
    return Polygon(tuple(LatLng(lat, lng) for lat, lng in vertices))
