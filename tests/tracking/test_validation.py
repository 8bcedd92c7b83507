"""Per-fix validation: one verdict per fix, with a reason code, never failing the batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from superior_one.config import Settings
from superior_one.geo.geodesy import LatLng, destination
from superior_one.tracking.fixes import fix_id_for
from superior_one.tracking.rules import VALIDATION_RULES, validation_rules_from_settings
from superior_one.tracking.validation import (
    FixReason,
    GpsFixIn,
    StoredFix,
    ValidationContext,
    validate_fixes,
)

NOW = datetime(2024, 6, 12, 16, 0, tzinfo=UTC)
HERE = LatLng(39.7684, -86.1581)
DRIVER = "drv_test_17"


def _raw(**overrides: Any) -> dict[str, Any]:
    fix: dict[str, Any] = {
        "latitude": HERE.lat,
        "longitude": HERE.lng,
        "fixTime": "2024-06-12T15:59:30Z",
        "accuracyM": 8.0,
        "speedMps": 0.0,
        "headingDeg": 90.0,
        "source": "gps",
    }
    fix.update(overrides)
    return fix


def _context(**overrides: Any) -> ValidationContext:
    values: dict[str, Any] = {"driver_id": DRIVER, "now": NOW}
    values.update(overrides)
    return ValidationContext(**values)


def _one(raw: dict[str, Any], **context: Any) -> FixReason:
    return validate_fixes([raw], _context(**context))[0].reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"latitude": 90.0001}, FixReason.LATITUDE_OUT_OF_RANGE),
        ({"latitude": -91}, FixReason.LATITUDE_OUT_OF_RANGE),
        ({"latitude": float("nan")}, FixReason.LATITUDE_OUT_OF_RANGE),
        ({"longitude": 180.5}, FixReason.LONGITUDE_OUT_OF_RANGE),
        ({"latitude": 0.0, "longitude": 0.0}, FixReason.ZERO_COORDINATES),
        ({"fixTime": "2024-06-12T11:02:30"}, FixReason.MISSING_OFFSET),
        ({"fixTime": "2024-06-08T15:59:00Z"}, FixReason.TOO_OLD),
        ({"fixTime": "2024-06-12T16:05:01Z"}, FixReason.IN_FUTURE),
        ({"accuracyM": 0.0}, FixReason.ACCURACY_OUT_OF_RANGE),
        ({"accuracyM": -5.0}, FixReason.ACCURACY_OUT_OF_RANGE),
        ({"accuracyM": 50_000.0}, FixReason.ACCURACY_OUT_OF_RANGE),
        ({"speedMps": -1.0}, FixReason.SPEED_OUT_OF_RANGE),
        ({"speedMps": 150.0}, FixReason.SPEED_OUT_OF_RANGE),
        ({"headingDeg": 361.0}, FixReason.HEADING_OUT_OF_RANGE),
        ({"headingDeg": -0.5}, FixReason.HEADING_OUT_OF_RANGE),
        ({"clientFixId": "x" * 65}, FixReason.CLIENT_FIX_ID_TOO_LONG),
        ({"latitude": "north"}, FixReason.MALFORMED),
        ({"fixTime": "yesterday"}, FixReason.MALFORMED),
        ({"unknownField": 1}, FixReason.MALFORMED),
    ],
)
def test_validate_fixes_rejects_with_reason(overrides: dict[str, Any], reason: FixReason) -> None:
    verdict = validate_fixes([_raw(**overrides)], _context())[0]

    assert verdict.status == "rejected"
    assert verdict.reason == reason
    assert verdict.detail


def test_validate_fixes_accepts_valid_fix() -> None:
    verdict = validate_fixes([_raw()], _context())[0]

    assert verdict.status == "accepted"
    assert verdict.fix is not None
    assert verdict.fix.fix_time == datetime(2024, 6, 12, 15, 59, 30, tzinfo=UTC)


def test_validate_fixes_accepts_snake_case_and_model_input() -> None:
    model = GpsFixIn(
        latitude=HERE.lat,
        longitude=HERE.lng,
        fix_time=datetime(2024, 6, 12, 15, 59, tzinfo=UTC),
        accuracy_m=5.0,
    )
    snake = {"latitude": HERE.lat, "longitude": HERE.lng, "fix_time": "2024-06-12T15:58:00Z",
             "accuracy_m": 5.0}  # fmt: skip

    verdicts = validate_fixes([model, snake], _context())

    assert [v.status for v in verdicts] == ["accepted", "accepted"]


def test_validate_fixes_normalizes_offset_to_utc() -> None:
    verdict = validate_fixes([_raw(fixTime="2024-06-12T11:59:30-04:00")], _context())[0]

    assert verdict.fix is not None
    assert verdict.fix.fix_time == datetime(2024, 6, 12, 15, 59, 30, tzinfo=UTC)
    assert verdict.fix.fix_id == fix_id_for(DRIVER, verdict.fix.fix_time)


def test_validate_fixes_accepts_skew_at_limit() -> None:
    at_limit = NOW + timedelta(seconds=VALIDATION_RULES.future_skew_s)

    assert _one(_raw(fixTime=at_limit.isoformat())) == FixReason.ACCEPTED


def test_validate_fixes_missing_latitude_names_field() -> None:
    raw = _raw()
    del raw["latitude"]

    verdict = validate_fixes([raw], _context())[0]

    assert verdict.reason == FixReason.MALFORMED
    assert verdict.detail is not None
    assert "latitude" in verdict.detail


def test_bad_fix_does_not_fail_the_batch() -> None:
    verdicts = validate_fixes([_raw(latitude=95), _raw(), _raw(fixTime="x")], _context())

    assert [v.status for v in verdicts] == ["rejected", "accepted", "rejected"]
    assert [v.index for v in verdicts] == [0, 1, 2]


def test_duplicate_by_known_fix_time() -> None:
    known = [datetime(2024, 6, 12, 15, 59, 30, tzinfo=UTC)]

    verdict = validate_fixes([_raw()], _context(known_fix_times=known))[0]

    assert verdict.status == "duplicate"
    assert verdict.fix is not None


def test_duplicate_by_known_client_fix_id() -> None:
    verdict = validate_fixes([_raw(clientFixId="p-1")], _context(known_client_fix_ids={"p-1"}))[0]

    assert verdict.status == "duplicate"


def test_duplicate_within_one_batch() -> None:
    verdicts = validate_fixes([_raw(), _raw()], _context())

    assert [v.status for v in verdicts] == ["accepted", "duplicate"]


def test_impossible_speed_from_previous_fix_is_rejected() -> None:
    previous = StoredFix(NOW - timedelta(seconds=60), HERE.lat, HERE.lng, 8.0)
    jumped = destination(HERE, 0.0, 10_000.0)  # 10 km in 30 s

    verdict = validate_fixes(
        [_raw(latitude=jumped.lat, longitude=jumped.lng)], _context(neighbours=[previous])
    )[0]

    assert verdict.reason == FixReason.IMPOSSIBLE_SPEED
    assert verdict.implied_speed_mps is not None
    assert verdict.implied_speed_mps > VALIDATION_RULES.max_implied_speed_mps


def test_accuracy_radii_are_credited_to_implied_speed() -> None:
    # 100 m apart in 1 s is 100 m/s, but both fixes claim 60 m accuracy.
    previous = StoredFix(NOW - timedelta(seconds=31), HERE.lat, HERE.lng, 60.0)
    moved = destination(HERE, 0.0, 100.0)

    verdict = validate_fixes(
        [_raw(latitude=moved.lat, longitude=moved.lng, accuracyM=60.0)],
        _context(neighbours=[previous]),
    )[0]

    assert verdict.status == "accepted"


def test_rejected_jump_is_not_used_as_previous() -> None:
    previous = StoredFix(NOW - timedelta(seconds=90), HERE.lat, HERE.lng, 8.0)
    jumped = destination(HERE, 0.0, 10_000.0)
    fixes = [
        _raw(latitude=jumped.lat, longitude=jumped.lng, fixTime="2024-06-12T15:59:00Z"),
        _raw(fixTime="2024-06-12T15:59:30Z"),
    ]

    verdicts = validate_fixes(fixes, _context(neighbours=[previous]))

    assert [v.status for v in verdicts] == ["rejected", "accepted"]


def test_late_fix_checked_against_neighbour() -> None:
    # The stored history has a fix 20 km away 40 minutes later. The late fix is
    # compared with the stored fix just before it, which is at the same place.
    earlier = StoredFix(NOW - timedelta(minutes=50), HERE.lat, HERE.lng, 8.0)
    later_far = destination(HERE, 0.0, 20_000.0)
    latest = StoredFix(NOW - timedelta(minutes=1), later_far.lat, later_far.lng, 8.0)
    late = _raw(fixTime=(NOW - timedelta(minutes=49)).isoformat())

    verdict = validate_fixes([late], _context(neighbours=[latest, earlier]))[0]

    assert verdict.status == "accepted"
    assert verdict.implied_speed_mps == pytest.approx(0.0)


def test_validate_fixes_requires_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_fixes([_raw()], ValidationContext(driver_id=DRIVER, now=datetime(2024, 6, 12)))


def test_settings_override_validation_limits() -> None:
    settings = Settings(gps_max_fix_age_s=60.0, gps_future_skew_s=1.0)

    rules = validation_rules_from_settings(settings)

    assert rules.max_age_s == 60.0
    assert rules.future_skew_s == 1.0
    assert rules.max_implied_speed_mps == VALIDATION_RULES.max_implied_speed_mps


def test_settings_without_overrides_keep_defaults() -> None:
    assert validation_rules_from_settings(Settings()) == VALIDATION_RULES
