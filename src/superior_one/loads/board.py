"""Load board searches: the validated filter set, its sort orders and keyset cursors.

Distances are WGS84 geodesics, computed by PostGIS on ``geography`` columns
(``ST_DWithin`` and ``ST_Distance`` with the spheroid, Karney's algorithm),
in statute miles of exactly 1,609.344 m. A load 100.2 geodesic miles away is
outside a 100-mile radius even though a spherical haversine (R = 3,958.76 mi)
puts it at 99.9 miles. The index prefilter is PostGIS's own expansion of the
geography box, and the exact distance test always follows it.

Cursors are opaque to clients: base64url JSON of the sort, the last row's sort
key and id, and a fingerprint of the filters, so a cursor cannot be replayed
against a different search.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from superior_one.geo.geodesy import METRES_PER_MILE
from superior_one.loads.errors import InvalidCursorError
from superior_one.loads.models import HaulType

CURSOR_VERSION = 1
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


class BoardSort(enum.StrEnum):
    PICKUP_DATE = "pickupDate"  # soonest pickup first
    RATE = "rate"  # highest total pay first
    RATE_PER_MILE = "ratePerMile"  # highest pay per loaded mile first
    DISTANCE = "distance"  # nearest pickup to the origin point first


@dataclass(frozen=True, slots=True)
class GeoCircle:
    lat: float
    lng: float
    radius_mi: float | None  # None: the point only measures distance

    @property
    def radius_m(self) -> float | None:
        return None if self.radius_mi is None else self.radius_mi * METRES_PER_MILE


@dataclass(frozen=True, slots=True)
class Cursor:
    sort: BoardSort
    key: Any  # datetime for PICKUP_DATE, int cents for RATE*, float metres for DISTANCE
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class BoardSearch:
    origin_state: str | None = None
    destination_state: str | None = None
    equipment_types: tuple[str, ...] = ()
    haul_type: HaulType | None = None
    min_rate_cents: int | None = None
    min_rate_per_mile_cents: int | None = None
    max_trip_miles: Decimal | None = None
    pickup_from: datetime | None = None
    pickup_to: datetime | None = None
    commodity: str | None = None
    origin: GeoCircle | None = None
    destination: GeoCircle | None = None
    sort: BoardSort = BoardSort.PICKUP_DATE
    limit: int = 25
    cursor: Cursor | None = None
    page: int | None = None  # legacy clients' 1-based page number
    _fingerprint: str = field(default="", init=False, repr=False, compare=False)

    def filters(self) -> dict[str, Any]:
        """The filters and sort, without the page position: what the fingerprint covers."""
        return {
            "os": self.origin_state,
            "ds": self.destination_state,
            "eq": sorted(self.equipment_types),
            "ht": self.haul_type,
            "mr": self.min_rate_cents,
            "mrpm": self.min_rate_per_mile_cents,
            "mtm": str(self.max_trip_miles) if self.max_trip_miles is not None else None,
            "pf": self.pickup_from.isoformat() if self.pickup_from else None,
            "pt": self.pickup_to.isoformat() if self.pickup_to else None,
            "c": self.commodity.lower() if self.commodity else None,
            "o": _circle_key(self.origin),
            "d": _circle_key(self.destination),
            "s": self.sort.value,
        }

    @property
    def fingerprint(self) -> str:
        if not self._fingerprint:
            digest = hashlib.blake2b(
                orjson.dumps(self.filters(), option=orjson.OPT_SORT_KEYS), digest_size=12
            ).hexdigest()
            object.__setattr__(self, "_fingerprint", digest)
        return self._fingerprint

    @property
    def page_fingerprint(self) -> str:
        """The fingerprint plus the position: the cache key of one result page."""
        cursor = encode_cursor(self.cursor, self.fingerprint) if self.cursor else ""
        return f"{self.fingerprint}:{self.limit}:{self.page or 0}:{cursor}"


def _circle_key(circle: GeoCircle | None) -> list[float | None] | None:
    if circle is None:
        return None
    return [round(circle.lat, 6), round(circle.lng, 6), circle.radius_mi]


def encode_cursor(cursor: Cursor, fingerprint: str) -> str:
    key: Any = cursor.key
    if isinstance(key, datetime):
        key = key.isoformat()
    payload = [CURSOR_VERSION, cursor.sort.value, key, cursor.id.hex, fingerprint[:8]]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


def decode_cursor(value: str, search_fingerprint: str, sort: BoardSort) -> Cursor:
    """Parse a cursor; raise :class:`InvalidCursorError` (422) when it does not fit the search."""
    try:
        padded = value + "=" * (-len(value) % 4)
        version, sort_value, key, id_hex, fingerprint = orjson.loads(
            base64.urlsafe_b64decode(padded.encode())
        )
        cursor_sort = BoardSort(sort_value)
        load_id = uuid.UUID(hex=id_hex)
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError(
            "The cursor is not one this API issued. Start again without 'cursor'.",
            field="cursor",
        ) from exc
    if (
        version != CURSOR_VERSION
        or cursor_sort is not sort
        or fingerprint != search_fingerprint[:8]
    ):
        raise InvalidCursorError(
            "The cursor belongs to a search with other filters or another sort. Use the "
            "'nextCursor' of the same search, or start again without 'cursor'.",
            field="cursor",
        )
    try:
        parsed_key: Any
        if sort is BoardSort.PICKUP_DATE:
            parsed_key = datetime.fromisoformat(key)
        elif sort is BoardSort.DISTANCE:
            parsed_key = float(key)
        else:
            # Cents compared with BIGINT columns: a larger key is a forged cursor.
            if not isinstance(key, int) or not BIGINT_MIN <= key <= BIGINT_MAX:
                raise TypeError("BIGINT key expected")
            parsed_key = key
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError(
            "The cursor is damaged. Start again without 'cursor'.", field="cursor"
        ) from exc
    return Cursor(sort=sort, key=parsed_key, id=load_id)
