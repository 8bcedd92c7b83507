"""Geofence evaluation of stored fixes, and what its decisions do to loads.

The gps-consumer calls :func:`evaluate_fixes` with the fixes a batch has just
inserted into ``geo_events``, in the same transaction. Each load's geofence
state row is locked (in load id order) while its fixes are applied, so two
consumers never evaluate the same load at once; a decision is recorded once
because the state that produced it commits with it.

Decisions and their effect, each citing the fix that made it:

- ENTERED / EXITED / DEPARTED_DELIVERY: a ``geofence_events`` row only.
- ARRIVED_PICKUP: a ``load_events`` row (the load stays RELEASED). The pickup
  is *proven* when the dwell ended inside the pickup window (with margins) and
  the fixes came from the assigned driver's account; otherwise a
  PICKUP_NOT_PROVEN flag is raised.
- DEPARTED_PICKUP: RELEASED -> IN_TRANSIT, only for a proven pickup.
- ARRIVED_DELIVERY: IN_TRANSIT -> DELIVERED. A load still RELEASED (pickup
  never proven) raises PICKUP_NOT_PROVEN instead.

Transitions go through :func:`superior_one.loads.lifecycle.transition_load`
with ``expected_from`` and ``idempotent=True``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.loads.errors import InvalidTransitionError, LoadNotFoundError
from superior_one.loads.lifecycle import Actor, record_event, transition_load
from superior_one.loads.models import LoadStatus
from superior_one.tracking.fraud import raise_flag
from superior_one.tracking.geofence import (
    GeofenceEvent,
    GeofenceEventType,
    GeofenceState,
    StopFence,
    StopKind,
    process_fixes,
)
from superior_one.tracking.models import FraudReason, GeofenceStateRow
from superior_one.tracking.repository import GeofenceLoad, StoredFixRow, TrackingRepository
from superior_one.tracking.rules import (
    GEOFENCE_RULES,
    PICKUP_PROOF_RULES,
    GeofenceRules,
    PickupProofRules,
)

log = structlog.get_logger(__name__)

# Loads whose fences are evaluated. Fixes of other loads are stored only.
EVALUATED = frozenset({LoadStatus.RELEASED, LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED})
GPS_ACTOR = Actor.gps("geofence")


@dataclass(slots=True)
class EvaluationReport:
    fixes: int = 0
    loads: int = 0
    events: int = 0
    transitions: list[tuple[uuid.UUID, LoadStatus, int]] = field(default_factory=list)
    flags: int = 0

    def merge(self, other: EvaluationReport) -> None:
        self.fixes += other.fixes
        self.loads += other.loads
        self.events += other.events
        self.transitions += other.transitions
        self.flags += other.flags


def initial_state(
    load: GeofenceLoad, polygons: dict[tuple[uuid.UUID, str], list[list[float]]]
) -> GeofenceState:
    """Build a load's fences from its stops; stops behind a load in transit count as departed."""
    stops = [
        _stop_fence(load, StopKind.PICKUP, load.pickup, load.pickup_radius_m, polygons),
        _stop_fence(load, StopKind.DELIVERY, load.delivery, load.delivery_radius_m, polygons),
    ]
    departed = {LoadStatus.RELEASED: 0, LoadStatus.IN_TRANSIT: 1}.get(load.status, 2)
    return GeofenceState.start(str(load.id), stops, departed=departed)


def _stop_fence(
    load: GeofenceLoad,
    kind: StopKind,
    center: tuple[float, float],
    radius_m: int | None,
    polygons: dict[tuple[uuid.UUID, str], list[list[float]]],
) -> StopFence:
    vertices = polygons.get((load.id, kind.value))
    if vertices is not None:
        return StopFence(
            stop_id=kind.value, kind=kind, polygon=tuple((v[0], v[1]) for v in vertices)
        )
    return StopFence(
        stop_id=kind.value,
        kind=kind,
        center=center,
        radius_m=float(radius_m) if radius_m is not None else None,
    )


def pickup_proof_problem(
    load: GeofenceLoad, fix: StoredFixRow, rules: PickupProofRules = PICKUP_PROOF_RULES
) -> str | None:
    """Why an arrival at pickup does not prove the assigned carrier picked up, or None."""
    if fix.driver_user_id != load.driver_user_id:
        return f"the fixes belong to driver {fix.driver_user_id}, not to the assigned driver"
    if rules.require_driver_account and fix.sender_user_id != load.driver_user_id:
        return (
            f"the fixes were sent from user {fix.sender_user_id}'s account, not from the "
            "assigned driver's"
        )
    start, end = load.pickup_window
    arrived = fix.fix_time.isoformat()
    if fix.fix_time < start - timedelta(seconds=rules.early_margin_s):
        return f"the dwell ended at {arrived}, before the pickup window ({start.isoformat()})"
    if fix.fix_time > end + timedelta(seconds=rules.late_margin_s):
        return f"the dwell ended at {arrived}, after the pickup window ({end.isoformat()})"
    return None


async def evaluate_fixes(
    session: AsyncSession,
    fixes: Sequence[StoredFixRow],
    *,
    rules: GeofenceRules = GEOFENCE_RULES,
    proof_rules: PickupProofRules = PICKUP_PROOF_RULES,
) -> EvaluationReport:
    """Apply newly stored fixes to their loads' geofences; flush, never commit."""
    report = EvaluationReport(fixes=len(fixes))
    if not fixes:
        return report
    repository = TrackingRepository(session)
    by_load: dict[uuid.UUID, list[StoredFixRow]] = defaultdict(list)
    for fix in fixes:
        by_load[fix.load_id].append(fix)
    load_ids = sorted(by_load)

    loads = await repository.geofence_loads(load_ids)
    load_ids = [i for i in load_ids if i in loads and loads[i].status in EVALUATED]
    if not load_ids:
        return report
    existing = await repository.existing_state_ids(load_ids)
    missing = [i for i in load_ids if i not in existing]
    if missing:
        polygons = await repository.stop_polygons(missing)
        await repository.insert_states(
            {i: initial_state(loads[i], polygons).to_dict() for i in missing}
        )
    states = await repository.lock_states(load_ids)

    for load_id in load_ids:
        row = states.get(load_id)
        if row is None:
            continue
        await _apply(
            session, repository, loads[load_id], row, by_load[load_id], rules, proof_rules, report
        )
        report.loads += 1
    await session.flush()
    return report


async def _apply(
    session: AsyncSession,
    repository: TrackingRepository,
    load: GeofenceLoad,
    row: GeofenceStateRow,
    fixes: list[StoredFixRow],
    rules: GeofenceRules,
    proof_rules: PickupProofRules,
    report: EvaluationReport,
) -> None:
    state = GeofenceState.from_dict(row.state)
    result = process_fixes(state, [f.to_fix() for f in fixes], rules)
    by_id = {f.id: f for f in fixes}
    status = load.status

    events = []
    for event in result.events:
        fix = by_id[int(event.fix_id)]
        events.append(_event_row(load.id, event, fix.id))
        if event.type is GeofenceEventType.ARRIVED_PICKUP and status is LoadStatus.RELEASED:
            problem = pickup_proof_problem(load, fix, proof_rules)
            await _arrived_at_pickup(session, repository, load, row, fix, problem, report)
        elif event.type is GeofenceEventType.DEPARTED_PICKUP and status is LoadStatus.RELEASED:
            if row.pickup_proven_at is not None:
                status = await _transition(
                    session, load, LoadStatus.IN_TRANSIT, fix, report, status
                )
            else:
                log.info(
                    "tracking.departure_without_proof", load_id=str(load.id), gps_fix_id=fix.id
                )
        elif event.type is GeofenceEventType.ARRIVED_DELIVERY:
            if status is LoadStatus.IN_TRANSIT:
                status = await _transition(session, load, LoadStatus.DELIVERED, fix, report, status)
            elif status is LoadStatus.RELEASED:
                await raise_flag(
                    repository,
                    load_id=load.id,
                    shipper_organization_id=load.shipper_organization_id,
                    carrier_organization_id=load.carrier_organization_id,
                    reason=FraudReason.PICKUP_NOT_PROVEN,
                    detail="The truck reached the delivery stop, but no GPS proof exists that "
                    "the assigned driver dwelt at the pickup within its window.",
                    gps_fix_id=fix.id,
                )
                report.flags += 1
    await repository.add_geofence_events(events)
    report.events += len(events)

    row.state = result.state.to_dict()
    row.last_fix_time = result.state.last_fix_time
    # A Python value, not func.now(): an SQL expression would make the flush send
    # (and compile) one UPDATE per load instead of one batch for all of them.
    row.updated_at = datetime.now(UTC)


async def _arrived_at_pickup(
    session: AsyncSession,
    repository: TrackingRepository,
    load: GeofenceLoad,
    row: GeofenceStateRow,
    fix: StoredFixRow,
    problem: str | None,
    report: EvaluationReport,
) -> None:
    if problem is None:
        row.pickup_proven_at = fix.fix_time
        row.pickup_proof_fix_id = fix.id
        reason = "arrived at pickup: the assigned driver dwelt inside the fence (pickup proven)"
    else:
        reason = f"arrived at pickup, not proven: {problem}"
        await raise_flag(
            repository,
            load_id=load.id,
            shipper_organization_id=load.shipper_organization_id,
            carrier_organization_id=load.carrier_organization_id,
            reason=FraudReason.PICKUP_NOT_PROVEN,
            detail=f"Arrival at pickup does not prove the pickup: {problem}. The load stays "
            "RELEASED when the truck leaves.",
            gps_fix_id=fix.id,
        )
        report.flags += 1
    # A record of the arrival; the status does not change.
    await record_event(
        session,
        load.id,
        LoadStatus.RELEASED,
        LoadStatus.RELEASED,
        GPS_ACTOR,
        reason=reason,
        gps_fix_id=fix.id,
    )


async def _transition(
    session: AsyncSession,
    load: GeofenceLoad,
    to_status: LoadStatus,
    fix: StoredFixRow,
    report: EvaluationReport,
    current: LoadStatus,
) -> LoadStatus:
    expected = LoadStatus.RELEASED if to_status is LoadStatus.IN_TRANSIT else LoadStatus.IN_TRANSIT
    reason = (
        "departed pickup (geofence exit after a proven pickup)"
        if to_status is LoadStatus.IN_TRANSIT
        else "arrived at delivery (geofence dwell)"
    )
    try:
        result = await transition_load(
            session,
            load.id,
            to_status,
            GPS_ACTOR,
            reason=reason,
            gps_fix_id=fix.id,
            expected_from={expected},
            idempotent=True,
        )
    except (InvalidTransitionError, LoadNotFoundError) as exc:
        # Someone cancelled or changed the load meanwhile, so only the fence decision is kept.
        log.info("tracking.transition_skipped", load_id=str(load.id), to_status=to_status.value,
                 error=exc.code)  # fmt: skip
        return current
    if result.applied:
        report.transitions.append((load.id, to_status, fix.id))
    return to_status


def _event_row(load_id: uuid.UUID, event: GeofenceEvent, fix_id: int) -> dict[str, object]:
    return {
        "load_id": load_id,
        "event_type": event.type.value,
        "stop_kind": event.stop_kind.value,
        "stop_index": event.stop_index,
        "gps_fix_id": fix_id,
        "fix_time": event.fix_time,
        "lat": event.lat,
        "lng": event.lng,
        "accuracy_m": event.accuracy_m,
        "edge_distance_m": event.edge_distance_m,
        "in_sequence": event.in_sequence,
    }
