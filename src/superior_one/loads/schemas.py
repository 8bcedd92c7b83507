"""Request and response bodies of the loads API (camelCase on the wire).

Field checks live here so a 422 names each bad field: coordinates in range and
not (0, 0), a ZIP that exists and lies in the given state, a city and an IANA
time zone of that ZIP, windows with offsets whose end follows their start,
positive amounts with at most 2 decimal places. Every number has a maximum the
database column holds (BIGINT cents, NUMERIC units and miles). Amounts travel
as decimal strings ("1250.00"); a JSON number is accepted on input and read
exactly.

The board's query string is checked here too (:class:`BoardQuery`): FastAPI
parses each parameter, and the rules across parameters, the names sent and the
repeats live in one place, in memory, so a rejected search costs no query.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar
from zoneinfo import available_timezones

from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from superior_one.config import Settings
from superior_one.geo.geodesy import distance_mi
from superior_one.geo.zips import (
    STATE_CODES,
    ZipPlace,
    lookup_zip,
    normalize_zip,
    state_time_zones,
)
from superior_one.loads.board import BoardSearch, BoardSort, GeoCircle, decode_cursor
from superior_one.loads.models import (
    ActorKind,
    EquipmentTier,
    HaulType,
    InterestStatus,
    LoadStatus,
    LoadType,
    RateMode,
)
from superior_one.loads.rates import QUANTITY_MODES
from superior_one.payments.money import format_cents, parse_amount_cents
from superior_one.query_parameters import QueryParameter, query_error, query_name_errors
from superior_one.schemas import RequestSchema, Schema

_TIME_ZONES = frozenset(available_timezones())
MAX_WEIGHT_LBS = 200_000
# Loaded miles, a NUMERIC(8, 1) column: 5,000 is well above a coast-to-coast trip.
MAX_MILES = Decimal("5000")
# Largest rate a load may carry: $10,000,000.00, far above any real freight rate and
# well inside the BIGINT cents column. The board's money filters share it.
MAX_RATE_CENTS = 1_000_000_000
MAX_RATE = Decimal(MAX_RATE_CENTS).scaleb(-2)
# Tons, hours or units a rate applies to: far above a truckload (100 tons at the
# weight limit). NUMERIC(12, 2) alone would allow 10^10 units, and the largest rate
# times that is 10^19 cents, beyond BIGINT; times this it is 10^14.
MAX_UNITS = Decimal("100000")
# Coordinates sent with a stop must lie this close to their ZIP's centre. The
# largest US ZIP areas (rural Alaska, Nevada) span tens of miles, so 100 mi
# rejects swapped or foreign coordinates without rejecting real facilities.
MAX_MILES_FROM_ZIP_CENTRE = 100.0

# A sign before plain decimal digits: a negative amount, not a malformed one.
_NEGATIVE_AMOUNT = re.compile(r"-\s*\d+(?:\.\d+)?")


def amount_to_cents(
    value: str | Decimal | int | float, *, positive: bool = True, maximum: int = MAX_RATE_CENTS
) -> int:
    """Read a decimal amount in US dollars as integer cents; ValueError names what is wrong."""
    if isinstance(value, str) and _NEGATIVE_AMOUNT.fullmatch(value.strip()):
        raise ValueError(f"amount {value!r} must be greater than 0")
    cents = parse_amount_cents(value)
    if positive and cents <= 0:
        raise ValueError(f"amount {value!r} must be greater than 0")
    if cents > maximum:
        raise ValueError(f"amount {value!r} exceeds the maximum of {format_cents(maximum)}")
    return cents


def _amount(value: object) -> Decimal:
    # One validator for every accepted input type, so a wrong type is one error on
    # the field, not one per member of a str | int | float union.
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int | float):
        raise ValueError(
            f"expected an amount in US dollars, a string such as '1250.00' or a number, "
            f"not {type(value).__name__}"
        )
    return Decimal(amount_to_cents(value)).scaleb(-2)


AmountText = Annotated[
    Decimal,
    PlainValidator(_amount, json_schema_input_type=str | float),
    Field(
        description="Decimal amount in US dollars, at most 2 decimal places, greater than 0 "
        "and at most 10000000.00, e.g. '1250.00'.",
    ),
]
Units = Annotated[
    Decimal,
    Field(
        gt=0,
        le=MAX_UNITS,
        decimal_places=2,
        description="Tons, hours or units the rate applies to (PER_TON, ...).",
    ),
]
Miles = Annotated[
    Decimal,
    Field(
        gt=0,
        le=MAX_MILES,
        decimal_places=1,
        description="Loaded miles; computed from the US freeway graph when omitted.",
    ),
]


_CITY_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}


def _city_key(name: str) -> str:
    # "St. Louis", "saint louis" and "ST LOUIS" name one place; so do "Winston-Salem"
    # and "Winston Salem".
    words = re.sub(r"[^\w]+", " ", name.casefold()).split()
    return " ".join(_CITY_ABBREVIATIONS.get(word, word) for word in words)


class StopIn(RequestSchema):
    """A pickup or delivery stop. Coordinates default to the ZIP's centre when omitted."""

    street: str = Field(default="", max_length=200)
    # Declared after zip because a field validator can read only the fields before it.
    zip: str = Field(description="5-digit ZIP (ZIP+4 accepted).", examples=["98101"])
    city: str = Field(
        min_length=1,
        max_length=100,
        description="The ZIP's city or another name USPS accepts for it, any case.",
        examples=["Seattle"],
    )
    state: str = Field(description="Two-letter USPS state code.", examples=["WA"])
    time_zone: str | None = Field(
        default=None,
        description="IANA time zone of the ZIP (or of another part of its state); "
        "defaults to the ZIP's.",
        examples=["America/Los_Angeles"],
    )
    lat: float | None = Field(default=None, ge=-90, le=90)
    # validate_default: a lat sent without lng must still be caught.
    lng: float | None = Field(default=None, ge=-180, le=180, validate_default=True)
    window_start: AwareDatetime
    window_end: AwareDatetime
    geofence_radius_m: int | None = Field(
        default=None, ge=50, le=50_000, description="Override of the default geofence radius."
    )

    @field_validator("zip")
    @classmethod
    def _zip_exists(cls, value: str) -> str:
        zip_code = normalize_zip(value)
        if zip_code is None:
            raise ValueError(f"ZIP {value!r} is not a 5-digit US ZIP code such as '98101'")
        if lookup_zip(zip_code) is None:
            raise ValueError(f"ZIP {zip_code} is not a known, locatable US ZIP code")
        return zip_code

    @field_validator("city")
    @classmethod
    def _city_matches_zip(cls, value: str, info: ValidationInfo) -> str:
        place = _zip_place(info)
        if place is None:
            return value
        names = (place.city, *place.acceptable_cities)
        if _city_key(value) not in {_city_key(name) for name in names}:
            expected = " or ".join(repr(name) for name in names)
            raise ValueError(
                f"city {value!r} is not the city of ZIP {place.zip_code}; send {expected}"
            )
        return value

    @field_validator("state")
    @classmethod
    def _state_matches_zip(cls, value: str, info: ValidationInfo) -> str:
        state = value.strip().upper()
        if len(state) != 2 or not state.isalpha():
            raise ValueError(f"state {value!r} must be a two-letter USPS code such as 'WA'")
        place = _zip_place(info)
        if place is not None and place.state != state:
            raise ValueError(f"ZIP {place.zip_code} is in {place.state}, not {state}")
        return state

    @field_validator("time_zone")
    @classmethod
    def _time_zone_matches_zip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if value not in _TIME_ZONES:
            raise ValueError(f"{value!r} is not an IANA time zone name such as 'America/Chicago'")
        place = _zip_place(info)
        # NOTE: the ZIP data gives one zone per ZIP, but a ZIP's area can cross a
        # zone line (rural Texas, the Florida panhandle, Indiana). So any zone of
        # the ZIP's state is accepted, and a zone of another state is not.
        if place is not None and value not in state_time_zones(place.state):
            others = sorted(state_time_zones(place.state) - {place.time_zone})
            also = f" (other zones of {place.state}: {', '.join(others)})" if others else ""
            raise ValueError(
                f"{value} is not a time zone of ZIP {place.zip_code} ({place.city}, "
                f"{place.state}); send {place.time_zone}{also} or leave timeZone out"
            )
        return value

    @field_validator("lng")
    @classmethod
    def _coordinates_pair(cls, value: float | None, info: ValidationInfo) -> float | None:
        lat = info.data.get("lat")
        if (value is None) != (lat is None) and "lat" in info.data:
            raise ValueError("send lat and lng together, or neither to use the ZIP's centre")
        if value is not None and lat is not None and value == 0 and lat == 0:
            raise ValueError(
                "(0, 0) is not a US location; it is what a missing GPS value looks like"
            )
        return value

    @field_validator("window_end")
    @classmethod
    def _window_order(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("window_start")
        if start is not None and value <= start:
            raise ValueError("windowEnd must be after windowStart")
        return value

    @model_validator(mode="after")
    def _coordinates_near_zip(self) -> StopIn:
        place = lookup_zip(self.zip)
        if self.lat is None or self.lng is None or place is None:
            return self
        miles = distance_mi((self.lat, self.lng), (place.lat, place.lng))
        if miles > MAX_MILES_FROM_ZIP_CENTRE:
            raise ValueError(
                f"lat/lng ({self.lat}, {self.lng}) are {miles:.0f} miles from ZIP {self.zip}'s "
                f"centre; send the facility's coordinates (latitude first) or leave them out"
            )
        return self


def _zip_place(info: ValidationInfo) -> ZipPlace | None:
    """Return the place of the stop's ZIP, or None when the ZIP failed its own checks."""
    zip_code = info.data.get("zip")
    return lookup_zip(zip_code) if zip_code else None


class LoadFields(RequestSchema):
    equipment_type: str = Field(min_length=2, max_length=32, examples=["END_DUMP"])
    haul_type: HaulType
    load_type: LoadType
    commodity: str = Field(min_length=2, max_length=200, examples=["Crushed stone #57"])
    weight_lbs: int = Field(gt=0, le=MAX_WEIGHT_LBS)
    rate: AmountText
    rate_mode: RateMode
    # validate_default: a quantity rate mode sent without units must be caught.
    units: Units | None = Field(default=None, validate_default=True)
    miles: Miles | None = None
    reference: str | None = Field(default=None, max_length=64)

    @field_validator("units")
    @classmethod
    def _units(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        mode = info.data.get("rate_mode")
        if mode in QUANTITY_MODES and value is None:
            raise ValueError(f"rate mode {mode} needs units (the quantity the rate applies to)")
        if mode is not None and mode not in QUANTITY_MODES and value is not None:
            raise ValueError(f"rate mode {mode} takes no units; leave units out")
        return value

    @field_validator("equipment_type")
    @classmethod
    def _equipment_upper(cls, value: str) -> str:
        return value.upper()

    @property
    def rate_cents(self) -> int:
        return amount_to_cents(self.rate)


class LoadCreate(LoadFields):
    pickup: StopIn
    delivery: StopIn
    post: bool = Field(default=False, description="Post to the board at once instead of DRAFT.")

    @field_validator("delivery")
    @classmethod
    def _delivery_after_pickup(cls, value: StopIn, info: ValidationInfo) -> StopIn:
        pickup = info.data.get("pickup")
        if pickup is not None and value.window_end <= pickup.window_start:
            raise ValueError("delivery.windowEnd must be after pickup.windowStart")
        return value


class LoadUpdate(RequestSchema):
    """Fields to change on a DRAFT or POSTED load; omitted fields stay as they are."""

    pickup: StopIn | None = None
    delivery: StopIn | None = None
    equipment_type: str | None = Field(default=None, min_length=2, max_length=32)
    haul_type: HaulType | None = None
    load_type: LoadType | None = None
    commodity: str | None = Field(default=None, min_length=2, max_length=200)
    weight_lbs: int | None = Field(default=None, gt=0, le=MAX_WEIGHT_LBS)
    rate: AmountText | None = None
    rate_mode: RateMode | None = None
    units: Units | None = None
    miles: Miles | None = None
    reference: str | None = Field(default=None, max_length=64)


class CancelIn(RequestSchema):
    reason: str = Field(min_length=3, max_length=500)


class InterestIn(RequestSchema):
    counter_rate: AmountText | None = Field(
        default=None, description="Counter offer in the load's rate mode."
    )
    note: str = Field(default="", max_length=500)


class AssignIn(RequestSchema):
    carrier_organization_id: uuid.UUID
    accept_counter_rate: bool = Field(
        default=False, description="Take the carrier's counter rate as the load's rate."
    )


class ReleaseIn(RequestSchema):
    driver_user_id: uuid.UUID


# --- board query ---

# Parameters of the replaced board kept for current clients, each with the parameter
# that replaced it. The other legacy parameters (maxDistance, page) have no new name.
BOARD_LEGACY_NAMES: Mapping[str, str] = {
    "state": "originState",
    "origin_lat": "originLat",
    "origin_lng": "originLng",
    "radius_mi": "originRadiusMi",
}

T = TypeVar("T")


def state_code(value: str) -> str:
    """Validate a state query parameter: a USPS code of a state, DC or territory, any case."""
    code = value.strip().upper()
    if code not in STATE_CODES:
        raise ValueError(
            f"{value!r} is not a US state or territory code; "
            "send a two-letter USPS code such as 'TX'"
        )
    return code


StateCode = Annotated[str, AfterValidator(state_code)]


def _current_or_legacy(
    errors: list[dict[str, Any]], current: tuple[str, T | None], legacy: tuple[str, T | None]
) -> tuple[T | None, str]:
    """Return the value of a parameter sent by its current or legacy name, and the name used.

    Both names with the same value are accepted. With two values, either could be
    the one the client meant, so the 422 names both.
    """
    (current_name, current_value), (legacy_name, legacy_value) = current, legacy
    if current_value is None and legacy_value is not None:
        return legacy_value, legacy_name
    if current_value is not None and legacy_value is not None and current_value != legacy_value:
        message = (
            f"{current_name}={current_value} and {legacy_name}={legacy_value} disagree; "
            f"send only {current_name} ({legacy_name} is its deprecated name)"
        )
        errors += [query_error(current_name, message), query_error(legacy_name, message)]
    return current_value, current_name


@dataclass(frozen=True, slots=True)
class BoardQuery:
    """The board's query parameters as FastAPI parsed them, one by one."""

    origin_state: str | None = None
    destination_state: str | None = None
    equipment_type: list[str] | None = None
    haul_type: HaulType | None = None
    min_rate: Decimal | None = None
    min_rate_per_mile: Decimal | None = None
    pickup_from: datetime | None = None
    pickup_to: datetime | None = None
    commodity: str | None = None
    origin_lat: float | None = None
    origin_lng: float | None = None
    origin_radius_mi: float | None = None
    destination_lat: float | None = None
    destination_lng: float | None = None
    destination_radius_mi: float | None = None
    sort: BoardSort = BoardSort.PICKUP_DATE
    limit: int | None = None
    cursor: str | None = None
    state: str | None = None
    max_distance: Decimal | None = None
    page: int | None = None
    origin_lat_legacy: float | None = None
    origin_lng_legacy: float | None = None
    radius_mi_legacy: float | None = None

    def to_search(
        self,
        sent: Iterable[tuple[str, str]],
        parameters: Mapping[str, QueryParameter],
        settings: Settings,
        equipment_codes: Collection[str] = (),
    ) -> BoardSearch:
        """Apply the rules across parameters; one 422 names every field that breaks one.

        ``sent`` is the raw query string's (name, value) pairs, ``parameters`` the
        accepted names (see :func:`query_name_errors`), ``equipment_codes`` the
        catalog's codes (needed only when equipmentType is sent).
        """
        errors = query_name_errors(sent, parameters, "the board", BOARD_LEGACY_NAMES)

        origin_state, _ = _current_or_legacy(
            errors, ("originState", self.origin_state), ("state", self.state)
        )
        lat, lat_name = _current_or_legacy(
            errors, ("originLat", self.origin_lat), ("origin_lat", self.origin_lat_legacy)
        )
        lng, lng_name = _current_or_legacy(
            errors, ("originLng", self.origin_lng), ("origin_lng", self.origin_lng_legacy)
        )
        radius, radius_name = _current_or_legacy(
            errors, ("originRadiusMi", self.origin_radius_mi), ("radius_mi", self.radius_mi_legacy)
        )
        origin = _circle(errors, settings, (lat_name, lat), (lng_name, lng), (radius_name, radius))
        destination = _circle(
            errors,
            settings,
            ("destinationLat", self.destination_lat),
            ("destinationLng", self.destination_lng),
            ("destinationRadiusMi", self.destination_radius_mi),
        )
        if self.sort is BoardSort.DISTANCE and origin is None:
            errors.append(query_error("sort", "sort=distance needs originLat and originLng"))

        equipment = self._equipment(errors, equipment_codes)

        for name, moment in (("pickupFrom", self.pickup_from), ("pickupTo", self.pickup_to)):
            if moment is not None and moment.tzinfo is None:
                errors.append(
                    query_error(name, "give the time with an offset, e.g. ...T08:00:00-05:00")
                )
        if (
            self.pickup_from is not None
            and self.pickup_to is not None
            and self.pickup_from.tzinfo is not None
            and self.pickup_to.tzinfo is not None
            and self.pickup_to < self.pickup_from
        ):
            errors.append(query_error("pickupTo", "pickupTo must not be before pickupFrom"))

        min_rate_cents = _query_cents(errors, "minRate", self.min_rate)
        min_rate_per_mile_cents = _query_cents(errors, "minRatePerMile", self.min_rate_per_mile)

        page_size = self.limit if self.limit is not None else settings.board_default_page_size
        if page_size > settings.board_max_page_size:
            errors.append(
                query_error("limit", f"limit must be at most {settings.board_max_page_size}")
            )
        if self.cursor is not None and self.page is not None:
            errors.append(query_error("page", "send either cursor or page, not both"))
        if errors:
            raise RequestValidationError(errors)

        search = BoardSearch(
            origin_state=origin_state,
            destination_state=self.destination_state,
            equipment_types=equipment,
            haul_type=self.haul_type,
            min_rate_cents=min_rate_cents,
            min_rate_per_mile_cents=min_rate_per_mile_cents,
            max_trip_miles=self.max_distance,
            pickup_from=self.pickup_from,
            pickup_to=self.pickup_to,
            commodity=self.commodity,
            origin=origin,
            destination=destination,
            sort=self.sort,
            limit=page_size,
            page=self.page,
        )
        if self.cursor is None:
            return search
        # The cursor must match the search's fingerprint, so it is read last.
        cursor = decode_cursor(self.cursor, search.fingerprint, self.sort)
        return dataclasses.replace(search, cursor=cursor)

    def _equipment(
        self, errors: list[dict[str, Any]], equipment_codes: Collection[str]
    ) -> tuple[str, ...]:
        if self.equipment_type is None:
            return ()
        equipment = tuple(
            sorted(
                {
                    code.strip().upper()
                    for value in self.equipment_type
                    for code in value.split(",")
                    if code.strip()
                }
            )
        )
        if not equipment:
            errors.append(
                query_error(
                    "equipmentType",
                    "equipmentType is empty; send a code such as FLATBED, or leave it out",
                )
            )
        unknown = [code for code in equipment if code not in equipment_codes]
        if unknown:
            errors.append(
                query_error(
                    "equipmentType",
                    f"unknown equipment type {', '.join(unknown)}; "
                    f"use one of {', '.join(sorted(equipment_codes))}",
                )
            )
        return equipment


def _circle(
    errors: list[dict[str, Any]],
    settings: Settings,
    lat: tuple[str, float | None],
    lng: tuple[str, float | None],
    radius: tuple[str, float | None],
) -> GeoCircle | None:
    """Build a search circle from its parameters, each given as (name sent, value)."""
    (lat_name, lat_value), (lng_name, lng_value), (radius_name, radius_mi) = lat, lng, radius
    if lat_value is None and lng_value is None:
        if radius_mi is not None:
            errors.append(query_error(radius_name, f"a radius needs {lat_name} and {lng_name}"))
        return None
    if lat_value is None or lng_value is None:
        missing = lat_name if lat_value is None else lng_name
        errors.append(query_error(missing, f"send {lat_name} and {lng_name} together"))
        return None
    if lat_value == 0 and lng_value == 0:
        errors.append(query_error(lat_name, "(0, 0) is not a US location"))
        return None
    if radius_mi is not None and radius_mi > settings.board_max_radius_mi:
        errors.append(
            query_error(
                radius_name, f"radius must be at most {settings.board_max_radius_mi:g} miles"
            )
        )
        return None
    return GeoCircle(lat=lat_value, lng=lng_value, radius_mi=radius_mi)


def _query_cents(errors: list[dict[str, Any]], field: str, value: Decimal | None) -> int | None:
    if value is None:
        return None
    try:
        return amount_to_cents(value)
    except ValueError as exc:
        errors.append(query_error(field, str(exc)))
        return None


# --- responses ---


class StopOut(Schema):
    street: str | None = None
    city: str
    state: str
    zip: str
    time_zone: str
    lat: float
    lng: float
    window_start: datetime
    window_end: datetime
    geofence_radius_m: int | None = None


class LoadSummaryOut(Schema):
    """What the board shows of a posted load and what every load view starts with."""

    id: uuid.UUID
    reference: str | None
    pickup: StopOut
    delivery: StopOut
    equipment_type: str
    haul_type: HaulType
    load_type: LoadType
    commodity: str
    weight_lbs: int
    rate: str
    rate_mode: RateMode
    units: str | None
    miles: float
    gross_revenue: str
    rate_per_mile: str
    posted_at: datetime | None = None


class LoadOut(LoadSummaryOut):
    status: LoadStatus
    shipper_organization_id: uuid.UUID
    assigned_carrier_organization_id: uuid.UUID | None = None
    assigned_driver_user_id: uuid.UUID | None = None
    assigned_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class BoardLoadOut(LoadSummaryOut):
    origin_distance_mi: float | None = Field(
        default=None, description="WGS84 geodesic miles from the origin point, to 0.1 mi."
    )
    destination_distance_mi: float | None = Field(
        default=None, description="WGS84 geodesic miles from the destination point, to 0.1 mi."
    )


class BoardPageOut(Schema):
    items: list[BoardLoadOut]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page.")
    limit: int
    total: int | None = Field(
        description="Matching loads; exact when totalExact, else a lower bound. "
        "Null on pages fetched with a cursor."
    )
    total_exact: bool | None
    page: int | None = Field(default=None, description="Echo of the legacy 'page' parameter.")
    distance_metric: str = "WGS84 geodesic (PostGIS geography), statute miles"


class LoadPageOut(Schema):
    items: list[LoadOut]
    next_cursor: str | None


class InterestOut(Schema):
    id: uuid.UUID
    load_id: uuid.UUID
    carrier_organization_id: uuid.UUID
    carrier_name: str | None = None
    status: InterestStatus
    counter_rate: str | None
    note: str
    created_at: datetime
    updated_at: datetime


class LoadEventOut(Schema):
    id: int
    from_status: LoadStatus | None
    to_status: LoadStatus
    actor_kind: ActorKind
    actor_user_id: uuid.UUID | None
    actor_organization_id: uuid.UUID | None
    actor_description: str
    reason: str | None
    gps_fix_id: int | None
    occurred_at: datetime


class EquipmentTypeOut(Schema):
    code: str
    name: str
    category: str
    max_payload_lbs: int
    description: str


class EquipmentRecommendationOut(Schema):
    equipment_type: str
    name: str
    tier: EquipmentTier
    reason: str


class EquipmentMatchOut(Schema):
    commodity: str
    load_type: LoadType
    haul_type: HaulType
    weight_lbs: int
    recommendations: list[EquipmentRecommendationOut]
