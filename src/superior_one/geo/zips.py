"""US ZIP codes offline, from the ``zipcodes`` package (version 3.0.0).

The package ships one JSON file of 42,789 ZIPs, each with city, state, county,
coordinates and an IANA time zone name. Its own ``matching`` scans the whole
list on every call, so this module builds a dictionary once per process.

Data traps handled here (checked against zipcodes 3.0.0):

- 823 military ZIPs (states AA, AE, AP) have coordinates (0, 0) and no time
  zone. They cannot be located, so :func:`lookup_zip` returns ``None`` for them.
- One ZIP (99634, Napakiak, AK) carries the city name in the time zone field.
  Any value that is not a known IANA name is replaced by the zone most ZIPs of
  the same county use (then of the same state).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import available_timezones

import zipcodes

from superior_one.geo.geodesy import LatLng, distances_mi

_ZIP_RE = re.compile(r"^\d{5}$")

# The 48 contiguous states and DC: the area the freeway graph covers.
# fmt: off
CONTIGUOUS_STATES = frozenset({
    "AL", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA",
    "WA", "WV", "WI", "WY",
})
# fmt: on

# Every state, DC and territory with a locatable ZIP: the states a load's stop can be
# in. Military (AA, AE, AP) and Micronesian (FM) ZIPs have no coordinates, so they are
# left out. A test checks this set against the package.
STATE_CODES = CONTIGUOUS_STATES | frozenset({"AK", "HI", "AS", "GU", "MH", "MP", "PR", "PW", "VI"})

# One downtown ZIP in each of 64 large US freight metros, used by the seeder as
# hubs. A test checks each against the package, so a typo fails loudly.
METRO_HUB_ZIPS: tuple[str, ...] = (
    "98101", "97204", "94103", "90012", "92101", "85004", "89101", "84101", "80202", "87102",
    "73102", "75201", "77002", "78205", "70112", "64106", "63101", "68102", "55401", "53202",
    "60606", "46204", "48226", "43215", "44113", "45202", "40202", "37203", "38103", "35203",
    "30303", "32202", "32801", "33130", "28202", "27601", "29201", "23219", "20001", "21202",
    "19103", "10001", "07102", "02110", "06103", "12207", "14202", "15222", "17101", "18101",
    "50309", "67202", "72201", "39201", "71101", "59101", "83702", "99201", "57104", "58102",
    "82001", "74103", "79901", "93721",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ZipPlace:
    """One US ZIP code with its place and IANA time zone."""

    zip_code: str
    city: str
    state: str
    county: str
    lat: float
    lng: float
    time_zone: str
    zip_type: str  # STANDARD, PO BOX or UNIQUE
    active: bool
    # Other names USPS accepts for the ZIP's place ("Crest Hill" for 60435, Joliet).
    acceptable_cities: tuple[str, ...] = ()

    @property
    def point(self) -> LatLng:
        return LatLng(self.lat, self.lng)


def normalize_zip(value: str) -> str | None:
    """Return the 5-digit ZIP of ``value`` (``"98101"`` or ``"98101-1234"``), or ``None``."""
    candidate = value.strip().split("-", 1)[0]
    return candidate if _ZIP_RE.match(candidate) else None


def lookup_zip(value: str) -> ZipPlace | None:
    """Return the place of a ZIP code, or ``None`` when unknown or not locatable."""
    zip_code = normalize_zip(value)
    if zip_code is None:
        return None
    return _index().get(zip_code)


def zip_matches_state(zip_value: str, state: str) -> bool:
    """Return whether the ZIP exists and belongs to the two-letter ``state``."""
    place = lookup_zip(zip_value)
    return place is not None and place.state == state.strip().upper()


def state_time_zones(state: str) -> frozenset[str]:
    """Return the IANA time zones of the ZIPs of ``state`` (empty for an unknown state)."""
    return _zones_by_state().get(state, frozenset())


def all_places() -> tuple[ZipPlace, ...]:
    """Return every locatable ZIP, sorted by ZIP code."""
    return tuple(_index().values())


@cache
def seed_pool(radius_mi: float = 40.0) -> tuple[ZipPlace, ...]:
    """Return the active STANDARD ZIPs within ``radius_mi`` of a metro hub.

    Picking uniformly from this pool weights metros by how many ZIPs they have
    (more in dense metros) and keeps every pick near the freeway graph.
    """
    candidates = [
        p
        for p in all_places()
        if p.active and p.zip_type == "STANDARD" and p.state in CONTIGUOUS_STATES
    ]
    lats = [p.lat for p in candidates]
    lngs = [p.lng for p in candidates]
    near: set[str] = set()
    for hub_zip in METRO_HUB_ZIPS:
        hub = lookup_zip(hub_zip)
        if hub is None:
            raise LookupError(f"metro hub ZIP {hub_zip} is missing from the zipcodes package")
        miles = distances_mi(hub.lat, hub.lng, lats, lngs)
        near.update(candidates[i].zip_code for i in (miles <= radius_mi).nonzero()[0])
    index = _index()
    return tuple(index[z] for z in sorted(near))


def random_zips(
    rng: random.Random, count: int, pool: Sequence[ZipPlace] | None = None
) -> list[ZipPlace]:
    """Pick ``count`` ZIPs with replacement from ``pool`` (default :func:`seed_pool`)."""
    source = pool if pool is not None else seed_pool()
    if not source:
        raise ValueError("cannot pick ZIPs from an empty pool")
    return rng.choices(source, k=count)


@cache
def _zones_by_state() -> dict[str, frozenset[str]]:
    zones: dict[str, set[str]] = {}
    for place in all_places():
        zones.setdefault(place.state, set()).add(place.time_zone)
    return {state: frozenset(names) for state, names in zones.items()}


@cache
def _index() -> dict[str, ZipPlace]:
    raw: list[dict[str, Any]] = zipcodes.list_all()  # type: ignore[no-untyped-call]
    known_zones = available_timezones()

    by_county: dict[tuple[str, str], Counter[str]] = {}
    by_state: dict[str, Counter[str]] = {}
    for row in raw:
        zone = row["timezone"]
        if zone in known_zones:
            by_county.setdefault((row["state"], row["county"]), Counter())[zone] += 1
            by_state.setdefault(row["state"], Counter())[zone] += 1

    index: dict[str, ZipPlace] = {}
    for row in sorted(raw, key=lambda r: str(r["zip_code"])):
        lat, lng = float(row["lat"]), float(row["long"])
        if lat == 0.0 and lng == 0.0:
            continue
        zone = row["timezone"]
        if zone not in known_zones:
            fallback = by_county.get((row["state"], row["county"])) or by_state.get(row["state"])
            if not fallback:
                continue
            zone = fallback.most_common(1)[0][0]
        index[row["zip_code"]] = ZipPlace(
            zip_code=row["zip_code"],
            city=row["city"],
            state=row["state"],
            county=row["county"],
            lat=lat,
            lng=lng,
            time_zone=zone,
            zip_type=row["zip_code_type"],
            active=bool(row["active"]),
            acceptable_cities=tuple(row["acceptable_cities"]),
        )
    return index
