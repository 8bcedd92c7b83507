"""Request and response bodies of the tracking API (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from superior_one.schemas import RequestSchema, Schema
from superior_one.tracking.models import FraudReason
from superior_one.tracking.validation import FixReason, FixStatus

MAX_BATCH_FIXES = 500


class PingBatchIn(RequestSchema):
    """Fixes of one load sent together, typically stored through a dead zone.

    Each fix has the fields of a single ping. Fixes are checked one by one, so
    a malformed fix is reported in the results instead of failing the batch.
    """

    load_id: uuid.UUID
    # Any JSON value: an item that is not an object is a malformed fix, reported in
    # the results like any other, not a failed batch.
    fixes: list[Any] = Field(min_length=1, max_length=MAX_BATCH_FIXES)


class FixResultOut(Schema):
    index: int
    status: FixStatus
    reason: FixReason
    detail: str | None = None
    fix_time: datetime | None = None
    client_fix_id: str | None = None


class IngestOut(Schema):
    load_id: uuid.UUID
    accepted: int
    duplicates: int
    rejected: int
    # "stream": buffered in Redis; "database": Redis was unavailable and the
    # fixes went straight to PostgreSQL. Either way they are durable.
    buffered_in: Literal["stream", "database", "none"]
    results: list[FixResultOut]


class TrackPointOut(Schema):
    fix_id: int
    fix_time: datetime
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float | None
    heading_deg: float | None
    source: str


class TrackPageOut(Schema):
    load_id: uuid.UUID
    resolution_s: int
    items: list[TrackPointOut]
    next_cursor: str | None


class TruckPositionOut(Schema):
    driver_user_id: uuid.UUID
    load_id: uuid.UUID | None
    fix_time: datetime
    lat: float
    lng: float
    accuracy_m: float | None
    speed_mps: float | None
    heading_deg: float | None
    distance_mi: float | None = None


class PositionsPageOut(Schema):
    carrier_organization_id: uuid.UUID
    items: list[TruckPositionOut]
    next_cursor: str | None


class NearbyTrucksOut(Schema):
    carrier_organization_id: uuid.UUID
    lat: float
    lng: float
    radius_mi: float
    items: list[TruckPositionOut]
    source: Literal["redis", "database"]
    distance_metric: str = "WGS84 geodesic, statute miles"


class EtaOut(Schema):
    load_id: uuid.UUID
    next_stop: Literal["pickup", "delivery"]
    last_fix_id: int
    last_fix_time: datetime
    last_fix_age_s: float
    stale: bool
    road_miles: float
    road_miles_estimated: bool
    average_speed_mph: float
    eta: datetime
    minutes_remaining: float


class GeofenceEventOut(Schema):
    event_type: str
    stop_kind: str
    gps_fix_id: int
    fix_time: datetime
    lat: float
    lng: float
    accuracy_m: float
    edge_distance_m: float
    in_sequence: bool


class FraudFlagOut(Schema):
    id: int
    load_id: uuid.UUID
    carrier_organization_id: uuid.UUID | None
    reason: FraudReason
    detail: str
    actor_user_id: uuid.UUID | None
    actor_organization_id: uuid.UUID | None
    gps_fix_id: int | None
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime


class CarrierFlagsOut(Schema):
    carrier_organization_id: uuid.UUID
    # Counts over every shipper's loads; ``items`` lists only the caller's own.
    totals: dict[str, int]
    items: list[FraudFlagOut]
    next_cursor: str | None
