"""The recorded Seattle drive: parsing its damaged file and replaying it through geofences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from superior_one.geo.geodesy import track_length_m
from superior_one.tracking.fixes import Fix
from superior_one.tracking.geofence import (
    GeofenceEvent,
    GeofenceEventType,
    GeofenceState,
    StopFence,
    StopKind,
    process_fixes,
)
from superior_one.tracking.recorded_drive import (
    DEFAULT_ASSUMED_ACCURACY_M,
    RecordedDriveError,
    read_recorded_drive,
    shift_to,
)
from superior_one.tracking.rules import GEOFENCE_RULES
from superior_one.tracking.validation import (
    FixReason,
    GpsFixIn,
    ValidationContext,
    validate_fixes,
)

DRIVE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "gps"
    / "seattle_drive_2009-01-17_1hz.tsv"
).resolve()

DAMAGED_HEADER = "Da,e (UTC)\tTime (UTC)\tLa,i,ude\tLongi,ude\t\t\r\n"


@pytest.fixture(scope="module")
def drive() -> list[Fix]:
    if not DRIVE.exists():
        pytest.skip(f"recorded drive not found at {DRIVE} (shared data is outside the repository)")
    return read_recorded_drive(DRIVE)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drive.tsv"
    path.write_bytes(text.encode("utf-8"))
    return path


def test_reader_skips_damaged_header_and_trailing_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        DAMAGED_HEADER
        + "17-Jan-2009\t20:27:37\t47.66748333\t-122.1070833\t\t\r\n"
        + "17-Jan-2009\t20:27:38\t47.6675\t-122.1070667\t\t\r\n",
    )

    fixes = read_recorded_drive(path)

    assert [(f.fix_time, f.lat, f.lng) for f in fixes] == [
        (datetime(2009, 1, 17, 20, 27, 37, tzinfo=UTC), 47.66748333, -122.1070833),
        (datetime(2009, 1, 17, 20, 27, 38, tzinfo=UTC), 47.6675, -122.1070667),
    ]


def test_reader_accepts_file_without_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "17-Jan-2009\t20:27:37\t47.66748333\t-122.1070833\n")

    assert len(read_recorded_drive(path)) == 1


def test_reader_derives_speed_and_heading(tmp_path: Path) -> None:
    # 0.0001 degrees of latitude north per second is about 11.1 m/s.
    path = _write(
        tmp_path,
        "17-Jan-2009\t20:00:00\t47.0000\t-122.0\n17-Jan-2009\t20:00:01\t47.0001\t-122.0\n",
    )

    first, second = read_recorded_drive(path)

    assert first.speed_mps is None
    assert second.speed_mps == pytest.approx(11.12, abs=0.01)
    assert second.heading_deg == pytest.approx(0.0, abs=1e-6)
    assert second.accuracy_m == DEFAULT_ASSUMED_ACCURACY_M


def test_reader_reports_line_of_bad_row(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        DAMAGED_HEADER
        + "17-Jan-2009\t20:27:37\t47.66748333\t-122.1070833\t\t\r\n"
        + "17-Jan-2009\t20:27:38\tnot-a-number\t-122.1070667\t\t\r\n",
    )

    with pytest.raises(RecordedDriveError, match="line 3"):
        read_recorded_drive(path)


def test_reader_rejects_short_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "17-Jan-2009\t20:27:37\t47.6\n")

    with pytest.raises(RecordedDriveError, match="line 1"):
        read_recorded_drive(path)


def test_reader_rejects_out_of_range_coordinates(tmp_path: Path) -> None:
    path = _write(tmp_path, "17-Jan-2009\t20:27:37\t97.6\t-122.1\n")

    with pytest.raises(RecordedDriveError, match="out of range"):
        read_recorded_drive(path)


def test_shift_to_keeps_intervals() -> None:
    t0 = datetime(2009, 1, 17, 20, 0, tzinfo=UTC)
    fixes = [
        Fix(fix_id=str(i), fix_time=t0 + timedelta(seconds=i * 3), lat=47.0, lng=-122.0)
        for i in range(3)
    ]
    start = datetime(2026, 1, 1, tzinfo=UTC)

    shifted = shift_to(fixes, start)

    assert [f.fix_time for f in shifted] == [start + timedelta(seconds=i * 3) for i in range(3)]


def test_recorded_drive_has_all_fixes(drive: list[Fix]) -> None:
    assert len(drive) == 7531
    assert drive[0].fix_time == datetime(2009, 1, 17, 20, 27, 37, tzinfo=UTC)
    assert drive[-1].fix_time == datetime(2009, 1, 17, 22, 34, 28, tzinfo=UTC)


def test_recorded_drive_is_in_time_order(drive: list[Fix]) -> None:
    assert all(a.fix_time < b.fix_time for a, b in pairwise(drive))


def test_recorded_drive_length_is_about_80_km(drive: list[Fix]) -> None:
    length_km = track_length_m([f.lat for f in drive], [f.lng for f in drive]) / 1000

    assert 78.0 < length_km < 83.0


def test_recorded_drive_has_one_gps_jump(drive: list[Fix]) -> None:
    # The fix at 22:22:47 (line 6831) sits about 120 m off the road; the step back
    # to the road one second later implies 122 m/s. Every other step is below 35 m/s.
    fast = [f.fix_id for f in drive if f.speed_mps is not None and f.speed_mps > 35.0]

    assert fast == ["seattle_drive_2009-01-17_1hz/6832"]


def test_recorded_drive_passes_validation_except_after_jump(drive: list[Fix]) -> None:
    now = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    replay = shift_to(drive, now - timedelta(hours=3))
    incoming = [
        GpsFixIn(
            latitude=f.lat,
            longitude=f.lng,
            fix_time=f.fix_time,
            accuracy_m=f.accuracy_m or DEFAULT_ASSUMED_ACCURACY_M,
            speed_mps=f.speed_mps,
            heading_deg=f.heading_deg,
            source=f.source,
        )
        for f in replay
    ]

    verdicts = validate_fixes(incoming, ValidationContext(driver_id="replay", now=now))
    rejected = [(replay[v.index].fix_id, v.reason) for v in verdicts if v.status != "accepted"]

    # The off-road fix itself passes (130 m in 6 s from the previous fix) and the
    # two good fixes after it fail against it: the limit of comparing with the
    # previous accepted fix only.
    assert rejected == [
        ("seattle_drive_2009-01-17_1hz/6832", FixReason.SPEED_OUT_OF_RANGE),
        ("seattle_drive_2009-01-17_1hz/6833", FixReason.IMPOSSIBLE_SPEED),
    ]


def _stops_at_ends(drive: list[Fix]) -> GeofenceState:
    first, last = drive[0], drive[-1]
    return GeofenceState.start(
        "replay",
        [
            StopFence(stop_id="start", kind=StopKind.PICKUP, center=(first.lat, first.lng)),
            StopFence(stop_id="end", kind=StopKind.DELIVERY, center=(last.lat, last.lng)),
        ],
    )


def test_recorded_drive_through_geofences(drive: list[Fix]) -> None:
    result = process_fixes(_stops_at_ends(drive), drive)

    # The car waits about a minute near its start (arrival), leaves, and the
    # recording ends while it is still moving, so the end stop is entered only.
    assert [(e.type, e.stop_id) for e in result.events] == [
        (GeofenceEventType.ENTERED, "start"),
        (GeofenceEventType.ARRIVED_PICKUP, "start"),
        (GeofenceEventType.EXITED, "start"),
        (GeofenceEventType.DEPARTED_PICKUP, "start"),
        (GeofenceEventType.ENTERED, "end"),
    ]


def test_recorded_drive_arrival_was_at_rest(drive: list[Fix]) -> None:
    result = process_fixes(_stops_at_ends(drive), drive)
    arrived = next(e for e in result.events if e.type == GeofenceEventType.ARRIVED_PICKUP)
    by_id = {f.fix_id: f for f in drive}

    speed = by_id[arrived.fix_id].speed_mps

    assert speed is not None
    assert speed <= GEOFENCE_RULES.dwell_max_speed_mps


def test_recorded_drive_parked_at_end_arrives(drive: list[Fix]) -> None:
    last = drive[-1]
    parked = [
        last.model_copy(
            update={
                "fix_id": f"parked/{i}",
                "fix_time": last.fix_time + timedelta(seconds=30 * i),
                "speed_mps": 0.0,
            }
        )
        for i in range(1, 4)
    ]

    result = process_fixes(_stops_at_ends(drive), [*drive, *parked])

    arrived = [e for e in result.events if e.type == GeofenceEventType.ARRIVED_DELIVERY]
    assert [e.fix_id for e in arrived] == ["parked/3"]


def test_recorded_drive_in_batches_matches_one_batch(drive: list[Fix]) -> None:
    whole = process_fixes(_stops_at_ends(drive), drive)
    state = _stops_at_ends(drive)
    events: list[GeofenceEvent] = []
    for start in range(0, len(drive), 500):
        result = process_fixes(state, drive[start : start + 500])
        events.extend(result.events)
        state = GeofenceState.from_dict(result.state.to_dict())

    assert events == whole.events
