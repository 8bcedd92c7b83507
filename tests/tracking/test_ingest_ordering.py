"""Late, duplicate, future-dated and zone-less fixes at a delivery stop.

Fixes for an in-transit load arrive in this order. First come three fixes
inside the delivery fence, then a stored batch from 40 minutes earlier (after a
dead zone). A client retry of one fix follows, then a fix with a clock years
ahead and one without a UTC offset. Validation and the geofence engine run as
the ingest endpoint and the GPS consumer will run them, and a dictionary stands
in for the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from superior_one.geo.geodesy import distance_m
from superior_one.tracking.fixes import Fix
from superior_one.tracking.geofence import (
    FixOutcome,
    GeofenceEvent,
    GeofenceEventType,
    GeofenceState,
    StopFence,
    StopKind,
    process_fixes,
)
from superior_one.tracking.rules import GEOFENCE_RULES
from superior_one.tracking.validation import (
    FixReason,
    FixVerdict,
    StoredFix,
    ValidationContext,
    validate_fixes,
)

DRIVER = "drv_test_22"
DELIVERY_CENTER = (39.7684, -86.1581)


def _ping(ping_id: str, ts: str, lat: float, lng: float, speed: float) -> dict[str, Any]:
    return {
        "clientFixId": ping_id,
        "fixTime": ts,
        "latitude": lat,
        "longitude": lng,
        "speedMps": speed,
        "accuracyM": 8.0,
    }


P101 = _ping("p-101", "2024-06-12T16:00:00Z", 39.767384, -86.158579, 0)
P102 = _ping("p-102", "2024-06-12T16:00:30Z", 39.767776, -86.158567, 0)
P103 = _ping("p-103", "2024-06-12T16:01:00Z", 39.767776, -86.158567, 0)
P040 = {**_ping("p-040", "2024-06-12T15:20:00Z", 39.937638, -86.078069, 27), "accuracyM": 10.0}
P041 = {**_ping("p-041", "2024-06-12T15:20:30Z", 39.93204, -86.072204, 27), "accuracyM": 10.0}
# The next three copy p-102/p-103's position; only the named field is wrong.
P102_RETRY = dict(P102)
P104_FUTURE = {**P103, "clientFixId": "p-104", "fixTime": "2031-06-12T16:02:00Z"}
P105_NO_OFFSET = {**P103, "clientFixId": "p-105", "fixTime": "2024-06-12T11:02:30"}

# (server receive time, fixes in that request)
RECEIVED = [
    ("2024-06-12T16:00:05Z", [P101]),
    ("2024-06-12T16:00:35Z", [P102]),
    ("2024-06-12T16:01:05Z", [P103]),
    ("2024-06-12T16:01:40Z", [P040, P041]),
    ("2024-06-12T16:01:41Z", [P102_RETRY]),
    ("2024-06-12T16:02:05Z", [P104_FUTURE]),
    ("2024-06-12T16:02:35Z", [P105_NO_OFFSET]),
]


@dataclass
class Pipeline:
    """Validation, storage and geofencing of one driver's fixes, in memory."""

    stored: dict[str, Fix] = field(default_factory=dict)
    state: GeofenceState = field(
        default_factory=lambda: GeofenceState.start(
            "L-7002",
            [
                StopFence(stop_id="pickup", kind=StopKind.PICKUP, center=(40.05, -86.0)),
                StopFence(stop_id="delivery", kind=StopKind.DELIVERY, center=DELIVERY_CENTER),
            ],
            departed=1,  # in transit: the pickup is behind it
        )
    )
    verdicts: dict[str, FixVerdict] = field(default_factory=dict)
    events: list[GeofenceEvent] = field(default_factory=list)
    outcomes: dict[str, FixOutcome] = field(default_factory=dict)

    def receive(self, received_at: str, fixes: list[dict[str, Any]]) -> None:
        context = ValidationContext(
            driver_id=DRIVER,
            now=datetime.fromisoformat(received_at),
            known_fix_times={f.fix_time for f in self.stored.values()},
            known_client_fix_ids={f.client_fix_id for f in self.stored.values() if f.client_fix_id},
            neighbours=[
                StoredFix(f.fix_time, f.lat, f.lng, f.accuracy_m) for f in self.stored.values()
            ],
        )
        verdicts = validate_fixes(fixes, context)
        accepted: list[Fix] = []
        for raw, verdict in zip(fixes, verdicts, strict=True):
            key = raw["clientFixId"]
            if key in self.verdicts:
                key += "#retry"
            self.verdicts[key] = verdict
            if verdict.status == "accepted" and verdict.fix is not None:
                accepted.append(verdict.fix)
                self.stored[verdict.fix.fix_id] = verdict.fix

        result = process_fixes(self.state, accepted)
        self.state = GeofenceState.from_dict(result.state.to_dict())
        self.events.extend(result.events)
        for decision in result.decisions:
            client_id = next(f.client_fix_id for f in accepted if f.fix_id == decision.fix_id)
            assert client_id is not None
            self.outcomes[client_id] = decision.outcome


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    run = Pipeline()
    for received_at, fixes in RECEIVED:
        run.receive(received_at, fixes)
    return run


def test_case_dwell_rule_is_the_product_rule() -> None:
    assert GEOFENCE_RULES.dwell_min_fixes == 2
    assert GEOFENCE_RULES.dwell_min_s == 60.0
    assert GEOFENCE_RULES.dwell_max_speed_mps == pytest.approx(5 * 0.44704)


def test_delivery_arrives_once_at_third_inside_fix(pipeline: Pipeline) -> None:
    arrived = [e for e in pipeline.events if e.type == GeofenceEventType.ARRIVED_DELIVERY]

    assert len(arrived) == 1
    assert arrived[0].fix_time == datetime(2024, 6, 12, 16, 1, tzinfo=UTC)
    assert arrived[0].in_sequence


def test_late_batch_fires_no_event(pipeline: Pipeline) -> None:
    late_times = {datetime(2024, 6, 12, 15, 20, tzinfo=UTC),
                  datetime(2024, 6, 12, 15, 20, 30, tzinfo=UTC)}  # fmt: skip

    assert [e for e in pipeline.events if e.fix_time in late_times] == []
    assert pipeline.outcomes["p-040"] == FixOutcome.LATE
    assert pipeline.outcomes["p-041"] == FixOutcome.LATE


def test_late_batch_is_accepted_not_rejected_as_jump(pipeline: Pipeline) -> None:
    assert pipeline.verdicts["p-040"].status == "accepted"
    assert pipeline.verdicts["p-041"].status == "accepted"


def test_gap_after_late_batch_is_plausible_speed() -> None:
    # p-041 -> p-101 in fix-time order: 19.7 km in 39.5 min, about 30 km/h.
    before = (P041["latitude"], P041["longitude"])
    after = (P101["latitude"], P101["longitude"])

    metres = distance_m(before, after)

    assert metres == pytest.approx(19_700, abs=50)
    assert metres / (39.5 * 60) * 3.6 == pytest.approx(30.0, abs=0.5)


def test_retry_is_duplicate_and_stored_once(pipeline: Pipeline) -> None:
    stored_102 = [f for f in pipeline.stored.values() if f.client_fix_id == "p-102"]

    assert pipeline.verdicts["p-102#retry"].status == "duplicate"
    assert len(stored_102) == 1


def test_future_fix_is_rejected(pipeline: Pipeline) -> None:
    assert pipeline.verdicts["p-104"].reason == FixReason.IN_FUTURE


def test_fix_without_offset_is_rejected(pipeline: Pipeline) -> None:
    assert pipeline.verdicts["p-105"].reason == FixReason.MISSING_OFFSET


def test_stored_rows_in_fix_time_order(pipeline: Pipeline) -> None:
    ordered = sorted(pipeline.stored.values(), key=lambda f: f.fix_time)

    assert [f.client_fix_id for f in ordered] == ["p-040", "p-041", "p-101", "p-102", "p-103"]


def test_latest_position_is_p103(pipeline: Pipeline) -> None:
    latest = max(pipeline.stored.values(), key=lambda f: f.fix_time)

    assert latest.client_fix_id == "p-103"
    assert pipeline.state.last_fix_time == datetime(2024, 6, 12, 16, 1, tzinfo=UTC)
