"""Reader for a recorded drive in the tab-separated format of Newson and Krumm (2009).

The Seattle test drive of "Hidden Markov map matching through noise and
sparseness" (Microsoft Research, 2009) has one fix per second in four columns:
date as ``17-Jan-2009``, time as ``20:27:37`` (both UTC), latitude, longitude.
Two defects of the published file are handled on purpose:

- the header is damaged: every lowercase "t" became ",", so it reads
  ``Da,e (UTC)  Time (UTC)  La,i,ude  Longi,ude``. Columns are therefore taken
  by position, and the header is recognised as "a first line whose first field
  is not a date", never by its names.
- rows end with two empty columns and CRLF line ends. Trailing empty fields and
  whitespace are dropped.

Any other malformed row raises :class:`RecordedDriveError` with its line number,
rather than being skipped silently. The file has no accuracy, speed or heading:
accuracy is a stated assumption (``assumed_accuracy_m``), and speed and heading
are derived from consecutive fixes along the WGS84 geodesic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from superior_one.geo.geodesy import WGS84
from superior_one.tracking.fixes import Fix

DATE_TIME_FORMAT = "%d-%b-%Y %H:%M:%S"

# Typical horizontal accuracy of a consumer GPS receiver with a clear sky. The
# recording has no accuracy column, so this is an assumption, not a measurement.
DEFAULT_ASSUMED_ACCURACY_M = 10.0


class RecordedDriveError(ValueError):
    """A recorded drive file that cannot be read."""


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    fix_time: datetime
    lat: float
    lng: float


def read_recorded_drive(
    path: Path,
    *,
    id_prefix: str | None = None,
    assumed_accuracy_m: float = DEFAULT_ASSUMED_ACCURACY_M,
) -> list[Fix]:
    """Read every fix of the file, in file order, with derived speed and heading.

    Speed and heading of fix *i* come from fix *i-1* to fix *i* (the first fix
    has none). Fix ids are ``<prefix>/<line number>``; the prefix defaults to
    the file name without its extension.
    """
    rows = list(_read_rows(path))
    prefix = id_prefix if id_prefix is not None else path.stem
    speeds, headings = _speeds_and_headings(rows)
    return [
        Fix(
            fix_id=f"{prefix}/{row.line}",
            fix_time=row.fix_time,
            lat=row.lat,
            lng=row.lng,
            accuracy_m=assumed_accuracy_m,
            speed_mps=speeds[i],
            heading_deg=headings[i],
            source="recorded",
        )
        for i, row in enumerate(rows)
    ]


def shift_to(fixes: Sequence[Fix], start: datetime) -> list[Fix]:
    """Return the fixes moved in time so that the first one is at ``start``.

    Replaying a 2009 drive today needs fresh fix times, or ingest rejects the
    fixes as too old. Intervals between fixes are kept.
    """
    if not fixes:
        return []
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    offset: timedelta = start - fixes[0].fix_time
    return [f.model_copy(update={"fix_time": (f.fix_time + offset).astimezone(UTC)}) for f in fixes]


def _read_rows(path: Path) -> Iterator[_Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            fields = [f.strip() for f in raw_line.rstrip("\r\n").split("\t")]
            while fields and fields[-1] == "":
                fields.pop()
            if not fields:
                continue
            if line_number == 1 and not _looks_like_date(fields[0]):
                continue  # the damaged header
            yield _parse_row(line_number, fields)


def _looks_like_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%d-%b-%Y")
    except ValueError:
        return False
    return True


def _parse_row(line_number: int, fields: list[str]) -> _Row:
    if len(fields) < 4:
        raise RecordedDriveError(
            f"line {line_number}: expected date, time, latitude and longitude, "
            f"got {len(fields)} fields"
        )
    try:
        fix_time = datetime.strptime(f"{fields[0]} {fields[1]}", DATE_TIME_FORMAT).replace(
            tzinfo=UTC
        )
        lat = float(fields[2])
        lng = float(fields[3])
    except ValueError as exc:
        raise RecordedDriveError(f"line {line_number}: {exc}") from exc
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise RecordedDriveError(f"line {line_number}: coordinates ({lat}, {lng}) out of range")
    return _Row(line_number, fix_time, lat, lng)


def _speeds_and_headings(rows: Sequence[_Row]) -> tuple[list[float | None], list[float | None]]:
    speeds: list[float | None] = [None] * len(rows)
    headings: list[float | None] = [None] * len(rows)
    if len(rows) < 2:
        return speeds, headings

    lats = np.array([r.lat for r in rows], dtype=np.float64)
    lngs = np.array([r.lng for r in rows], dtype=np.float64)
    azimuths, _, steps = WGS84.inv(lngs[:-1], lats[:-1], lngs[1:], lats[1:])
    for i in range(1, len(rows)):
        elapsed = (rows[i].fix_time - rows[i - 1].fix_time).total_seconds()
        if elapsed <= 0:
            continue
        speeds[i] = float(steps[i - 1]) / elapsed
        # A stationary receiver has no direction of travel.
        if steps[i - 1] > 0.0:
            headings[i] = float(azimuths[i - 1]) % 360.0
    return speeds, headings
