"""Per-fix validation at ingest. Pure functions: the caller supplies the clock and history.

Each fix gets its own verdict, so one bad fix never fails the rest of a batch:

- ``accepted``: store it and pass it on.
- ``duplicate``: the same driver already has a fix at that instant, or the same
  client fix id was already seen. Answer success and store nothing (idempotent
  retries). The first fix stored with a client fix id wins, even if a retry
  carries another time.
- ``rejected``: report the reason code and store nothing.

Checks run in this order and the first failure is the reason: parse, ranges,
(0, 0), time offset, age and future skew, duplicate, implied speed. Implied
speed compares a fix with the accepted fix just before it *in fix time*
(history or earlier in the batch), so a batch of stored fixes that arrives late
is checked against its real neighbour, not against the newest position.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from superior_one.geo.geodesy import distance_m
from superior_one.schemas import RequestSchema
from superior_one.tracking.fixes import Fix, fix_id_for
from superior_one.tracking.rules import VALIDATION_RULES, FixValidationRules


class GpsFixIn(RequestSchema):
    """One fix as a client sends it. Ranges are checked by :func:`validate_fixes`,
    not here, so that each problem gets its own reason code."""

    latitude: float
    longitude: float
    fix_time: datetime  # must carry "Z" or an offset; naive times are rejected
    accuracy_m: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    source: str = "gps"
    client_fix_id: str | None = None


class FixReason(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"
    LATITUDE_OUT_OF_RANGE = "latitude_out_of_range"
    LONGITUDE_OUT_OF_RANGE = "longitude_out_of_range"
    ZERO_COORDINATES = "zero_coordinates"
    MISSING_OFFSET = "missing_offset"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    ACCURACY_OUT_OF_RANGE = "accuracy_out_of_range"
    SPEED_OUT_OF_RANGE = "speed_out_of_range"
    HEADING_OUT_OF_RANGE = "heading_out_of_range"
    CLIENT_FIX_ID_TOO_LONG = "client_fix_id_too_long"
    SOURCE_TOO_LONG = "source_too_long"
    IMPOSSIBLE_SPEED = "impossible_speed"


FixStatus = Literal["accepted", "duplicate", "rejected"]


class FixVerdict(BaseModel):
    """The result for one fix of a request, in the order the fixes were sent."""

    model_config = ConfigDict(frozen=True)

    index: int
    status: FixStatus
    reason: FixReason
    detail: str | None = None
    fix: Fix | None = None  # set when accepted or duplicate
    implied_speed_mps: float | None = None


@dataclass(frozen=True, slots=True)
class StoredFix:
    """An already accepted fix of the same driver, for the implied-speed check."""

    fix_time: datetime
    lat: float
    lng: float
    accuracy_m: float | None = None


@dataclass(frozen=True, slots=True)
class ValidationContext:
    """The clock and the driver's history, which validation needs beyond the fixes.

    ``neighbours`` should hold at least the driver's latest accepted fix and,
    for batches older than it, the stored fixes just before the batch starts.
    """

    driver_id: str
    now: datetime
    known_fix_times: Collection[datetime] = ()
    known_client_fix_ids: Collection[str] = ()
    neighbours: Sequence[StoredFix] = field(default_factory=tuple)


def validate_fixes(
    fixes: Sequence[GpsFixIn | Mapping[str, Any]],
    context: ValidationContext,
    rules: FixValidationRules = VALIDATION_RULES,
) -> list[FixVerdict]:
    """Validate a request's fixes and return one verdict per fix, in input order."""
    if context.now.tzinfo is None:
        raise ValueError("context.now must be timezone-aware")

    verdicts: dict[int, FixVerdict] = {}
    candidates: list[tuple[int, GpsFixIn]] = []
    for index, raw in enumerate(fixes):
        parsed = _parse(index, raw)
        if isinstance(parsed, FixVerdict):
            verdicts[index] = parsed
            continue
        problem = _static_problem(parsed, context.now, rules)
        if problem is not None:
            verdicts[index] = _rejected(index, *problem)
            continue
        candidates.append((index, parsed))

    candidates.sort(key=lambda item: (item[1].fix_time, item[0]))
    seen_times = {t.astimezone(UTC) for t in context.known_fix_times}
    seen_ids = set(context.known_client_fix_ids)
    timeline = _Timeline(context.neighbours)

    for index, fix_in in candidates:
        fix = _to_fix(fix_in, context.driver_id)
        if fix.fix_time in seen_times or (
            fix.client_fix_id is not None and fix.client_fix_id in seen_ids
        ):
            verdicts[index] = FixVerdict(
                index=index, status="duplicate", reason=FixReason.DUPLICATE, fix=fix
            )
            continue

        implied = timeline.implied_speed_mps(fix)
        if implied is not None and implied > rules.max_implied_speed_mps:
            verdicts[index] = _rejected(
                index,
                FixReason.IMPOSSIBLE_SPEED,
                f"implied speed {implied:.1f} m/s from the previous accepted fix exceeds "
                f"{rules.max_implied_speed_mps:.1f} m/s",
                implied_speed_mps=implied,
            )
            continue

        seen_times.add(fix.fix_time)
        if fix.client_fix_id is not None:
            seen_ids.add(fix.client_fix_id)
        timeline.add(fix)
        verdicts[index] = FixVerdict(
            index=index,
            status="accepted",
            reason=FixReason.ACCEPTED,
            fix=fix,
            implied_speed_mps=implied,
        )

    return [verdicts[i] for i in range(len(fixes))]


def _parse(index: int, raw: GpsFixIn | Mapping[str, Any]) -> GpsFixIn | FixVerdict:
    if isinstance(raw, GpsFixIn):
        return raw
    try:
        return GpsFixIn.model_validate(raw)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "fix" for err in exc.errors()})
        return _rejected(index, FixReason.MALFORMED, "invalid or missing: " + ", ".join(fields))


def _static_problem(
    fix: GpsFixIn, now: datetime, rules: FixValidationRules
) -> tuple[FixReason, str] | None:
    # Comparisons are written so that NaN fails them.
    if not -90.0 <= fix.latitude <= 90.0:
        return FixReason.LATITUDE_OUT_OF_RANGE, f"latitude {fix.latitude} is not in [-90, 90]"
    if not -180.0 <= fix.longitude <= 180.0:
        return FixReason.LONGITUDE_OUT_OF_RANGE, f"longitude {fix.longitude} is not in [-180, 180]"
    if fix.latitude == 0.0 and fix.longitude == 0.0:
        return FixReason.ZERO_COORDINATES, "(0, 0) is the value of an unset position"
    if not 0.0 < fix.accuracy_m <= rules.max_accuracy_m:
        return (
            FixReason.ACCURACY_OUT_OF_RANGE,
            f"accuracy_m {fix.accuracy_m} is not in (0, {rules.max_accuracy_m:g}]",
        )
    if fix.speed_mps is not None and not 0.0 <= fix.speed_mps <= rules.max_reported_speed_mps:
        return (
            FixReason.SPEED_OUT_OF_RANGE,
            f"speed_mps {fix.speed_mps} is not in [0, {rules.max_reported_speed_mps:g}]; "
            "send null when unknown",
        )
    if fix.heading_deg is not None and not 0.0 <= fix.heading_deg <= 360.0:
        return (
            FixReason.HEADING_OUT_OF_RANGE,
            f"heading_deg {fix.heading_deg} is not in [0, 360]; send null when unknown",
        )
    if fix.client_fix_id is not None and len(fix.client_fix_id) > rules.max_client_fix_id_length:
        return (
            FixReason.CLIENT_FIX_ID_TOO_LONG,
            f"client_fix_id is longer than {rules.max_client_fix_id_length} characters",
        )
    if len(fix.source) > rules.max_source_length:
        return (
            FixReason.SOURCE_TOO_LONG,
            f"source is longer than {rules.max_source_length} characters; send a short "
            "name such as gps or network",
        )

    if fix.fix_time.tzinfo is None or fix.fix_time.utcoffset() is None:
        return FixReason.MISSING_OFFSET, "fix_time needs 'Z' or a UTC offset such as +02:00"
    age_s = (now - fix.fix_time).total_seconds()
    if age_s > rules.max_age_s:
        return (
            FixReason.TOO_OLD,
            f"fix_time is {age_s:.0f} s old; the limit is {rules.max_age_s:g} s",
        )
    if -age_s > rules.future_skew_s:
        return (
            FixReason.IN_FUTURE,
            f"fix_time is {-age_s:.0f} s ahead of the server clock; "
            f"the limit is {rules.future_skew_s:g} s",
        )
    return None


def _rejected(
    index: int, reason: FixReason, detail: str, *, implied_speed_mps: float | None = None
) -> FixVerdict:
    return FixVerdict(
        index=index,
        status="rejected",
        reason=reason,
        detail=detail,
        implied_speed_mps=implied_speed_mps,
    )


def _to_fix(fix_in: GpsFixIn, driver_id: str) -> Fix:
    fix_time = fix_in.fix_time.astimezone(UTC)
    return Fix(
        fix_id=fix_id_for(driver_id, fix_time),
        fix_time=fix_time,
        lat=fix_in.latitude,
        lng=fix_in.longitude,
        accuracy_m=fix_in.accuracy_m,
        speed_mps=fix_in.speed_mps,
        heading_deg=fix_in.heading_deg,
        source=fix_in.source,
        client_fix_id=fix_in.client_fix_id,
    )


class _Timeline:
    """Accepted fixes sorted by fix time, to find the one just before a new fix."""

    def __init__(self, stored: Sequence[StoredFix]) -> None:
        items = sorted(
            (s.fix_time.astimezone(UTC), s.lat, s.lng, s.accuracy_m or 0.0) for s in stored
        )
        self._times = [t for t, *_ in items]
        self._points = [(lat, lng, acc) for _, lat, lng, acc in items]

    def add(self, fix: Fix) -> None:
        position = bisect.bisect_left(self._times, fix.fix_time)
        self._times.insert(position, fix.fix_time)
        self._points.insert(position, (fix.lat, fix.lng, fix.accuracy_m or 0.0))

    def implied_speed_mps(self, fix: Fix) -> float | None:
        """Return the speed from the previous fix, crediting both accuracy radii."""
        position = bisect.bisect_left(self._times, fix.fix_time)
        if position == 0:
            return None
        # NOTE: a jump that passes (it is plausible from the fix before it) becomes the
        # previous fix, so the honest fixes right after it fail. No look-ahead exists yet.
        prev_time = self._times[position - 1]
        prev_lat, prev_lng, prev_acc = self._points[position - 1]
        elapsed = (fix.fix_time - prev_time).total_seconds()
        if elapsed <= 0:
            return None
        moved = distance_m((prev_lat, prev_lng), fix.point)
        credited = max(0.0, moved - prev_acc - (fix.accuracy_m or 0.0))
        return credited / elapsed
