"""Loads, their lifecycle events, carriers' interest, and the equipment reference data.

A load has exactly two stops, pickup and delivery, held as typed columns on the
load itself (not a JSON blob, not a child table) so the board's filters and
indexes reach them directly. Points are ``geography(Point, 4326)`` stored as
``POINT(lng lat)``; distances on them are WGS84 geodesics in metres.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    literal_column,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from superior_one.db import Base, TimestampMixin


class LoadStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    POSTED = "POSTED"
    ASSIGNED = "ASSIGNED"
    RELEASED = "RELEASED"  # the carrier has dispatched a driver
    IN_TRANSIT = "IN_TRANSIT"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


# A driver is on at most one load in these statuses: GPS fixes are unique per driver
# and fix time, so a second such load would never receive a fix. The partial unique
# index uq_loads_driver_on_the_road (migration 0008) enforces it.
ON_THE_ROAD = frozenset({LoadStatus.RELEASED, LoadStatus.IN_TRANSIT})


class HaulType(enum.StrEnum):
    LOCAL = "LOCAL"  # same metro, typically under 100 road miles
    REGIONAL = "REGIONAL"  # typically 100 to 500 road miles
    LONG_HAUL = "LONG_HAUL"  # over the road, beyond a day's round trip


class LoadType(enum.StrEnum):
    FULL_TRUCKLOAD = "FULL_TRUCKLOAD"
    PARTIAL = "PARTIAL"
    BULK = "BULK"  # loose aggregate, soil, asphalt: dump equipment
    HEAVY_HAUL = "HEAVY_HAUL"  # machinery, oversize or overweight


class RateMode(enum.StrEnum):
    FLAT = "FLAT"
    PER_MILE = "PER_MILE"
    PER_TON = "PER_TON"
    PER_HOUR = "PER_HOUR"
    PER_UNIT = "PER_UNIT"


class InterestStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    WITHDRAWN = "WITHDRAWN"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"


class ActorKind(enum.StrEnum):
    USER = "USER"
    SYSTEM = "SYSTEM"  # a job or an operator command
    GPS = "GPS"  # a geofence decision on a driver's fixes


class EquipmentTier(enum.StrEnum):
    OPTIMAL = "OPTIMAL"
    ACCEPTABLE = "ACCEPTABLE"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Text with a CHECK constraint, like the foundation's enums.
    return Enum(cls, name=name, native_enum=False, length=32, validate_strings=True)


class EquipmentType(Base):
    """Reference data, filled by the migration; cached in process by the service."""

    __tablename__ = "equipment_types"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    max_payload_lbs: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")


class EquipmentRule(Base):
    """One matching rule: loads like this are carried well (or acceptably) by that equipment.

    A rule applies when the load's commodity contains ``commodity_keyword``
    (case-insensitive; ``*`` matches any) and every non-null condition holds.
    """

    __tablename__ = "equipment_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    commodity_keyword: Mapped[str] = mapped_column(String(64), nullable=False)
    load_type: Mapped[LoadType | None] = mapped_column(_enum(LoadType, "rule_load_type"))
    haul_type: Mapped[HaulType | None] = mapped_column(_enum(HaulType, "rule_haul_type"))
    min_weight_lbs: Mapped[int | None] = mapped_column(Integer)
    max_weight_lbs: Mapped[int | None] = mapped_column(Integer)
    equipment_code: Mapped[str] = mapped_column(
        ForeignKey("equipment_types.code", ondelete="CASCADE"), nullable=False
    )
    tier: Mapped[EquipmentTier] = mapped_column(
        _enum(EquipmentTier, "equipment_tier"), nullable=False
    )
    reason: Mapped[str] = mapped_column(Text, nullable=False)


class Load(TimestampMixin, Base):
    __tablename__ = "loads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    shipper_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[LoadStatus] = mapped_column(
        _enum(LoadStatus, "load_status"), nullable=False, default=LoadStatus.DRAFT
    )
    reference: Mapped[str | None] = mapped_column(String(64))

    pickup_street: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    pickup_city: Mapped[str] = mapped_column(String(100), nullable=False)
    pickup_state: Mapped[str] = mapped_column(String(2), nullable=False)
    pickup_zip: Mapped[str] = mapped_column(String(5), nullable=False)
    pickup_time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    # Write as "SRID=4326;POINT(lng lat)"; read pickup_lat / pickup_lng.
    pickup_point: Mapped[object] = mapped_column(
        Geography("POINT", srid=4326, spatial_index=False), nullable=False, deferred=True
    )
    pickup_lat: Mapped[float] = column_property(
        func.ST_Y(literal_column("loads.pickup_point::geometry"))
    )
    pickup_lng: Mapped[float] = column_property(
        func.ST_X(literal_column("loads.pickup_point::geometry"))
    )
    pickup_window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    pickup_window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    pickup_geofence_radius_m: Mapped[int | None] = mapped_column(Integer)

    delivery_street: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    delivery_city: Mapped[str] = mapped_column(String(100), nullable=False)
    delivery_state: Mapped[str] = mapped_column(String(2), nullable=False)
    delivery_zip: Mapped[str] = mapped_column(String(5), nullable=False)
    delivery_time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    # Write as "SRID=4326;POINT(lng lat)"; read delivery_lat / delivery_lng.
    delivery_point: Mapped[object] = mapped_column(
        Geography("POINT", srid=4326, spatial_index=False), nullable=False, deferred=True
    )
    delivery_lat: Mapped[float] = column_property(
        func.ST_Y(literal_column("loads.delivery_point::geometry"))
    )
    delivery_lng: Mapped[float] = column_property(
        func.ST_X(literal_column("loads.delivery_point::geometry"))
    )
    delivery_window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    delivery_window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    delivery_geofence_radius_m: Mapped[int | None] = mapped_column(Integer)

    equipment_type: Mapped[str] = mapped_column(
        ForeignKey("equipment_types.code", ondelete="RESTRICT"), nullable=False
    )
    haul_type: Mapped[HaulType] = mapped_column(_enum(HaulType, "haul_type"), nullable=False)
    load_type: Mapped[LoadType] = mapped_column(_enum(LoadType, "load_type"), nullable=False)
    commodity: Mapped[str] = mapped_column(String(200), nullable=False)
    weight_lbs: Mapped[int] = mapped_column(Integer, nullable=False)

    # Money in integer cents. ``units`` is the quantity the rate applies to
    # (tons, hours, units) and is null for FLAT and PER_MILE.
    rate_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rate_mode: Mapped[RateMode] = mapped_column(_enum(RateMode, "rate_mode"), nullable=False)
    units: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    miles: Mapped[Decimal] = mapped_column(Numeric(8, 1), nullable=False)
    gross_revenue_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rate_per_mile_cents: Mapped[int] = mapped_column(
        BigInteger,
        Computed("round(gross_revenue_cents / greatest(miles, 1))::bigint", persisted=True),
    )

    assigned_carrier_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    assigned_driver_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    picked_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoadEvent(Base):
    """One lifecycle transition: who or what moved the load, when and why."""

    __tablename__ = "load_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
    )
    from_status: Mapped[LoadStatus | None] = mapped_column(_enum(LoadStatus, "event_from_status"))
    to_status: Mapped[LoadStatus] = mapped_column(
        _enum(LoadStatus, "event_to_status"), nullable=False
    )
    actor_kind: Mapped[ActorKind] = mapped_column(_enum(ActorKind, "actor_kind"), nullable=False)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL")
    )
    actor_description: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    # The GPS fix behind a geofence transition. No foreign key: fixes live in a
    # partitioned table whose old partitions are dropped after retention.
    gps_fix_id: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class LoadInterest(TimestampMixin, Base):
    """A carrier's interest in a posted load, with an optional counter rate."""

    __tablename__ = "load_interests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
    )
    carrier_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[InterestStatus] = mapped_column(
        _enum(InterestStatus, "interest_status"), nullable=False, default=InterestStatus.ACTIVE
    )
    counter_rate_cents: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(500), nullable=False, server_default="")
