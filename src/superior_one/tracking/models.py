"""Tables of the tracking domain (migration 0005_tracking).

``geo_events`` is partitioned by fix time in PostgreSQL; the mapping below is
for reads. Fixes are written in bulk by :mod:`superior_one.tracking.repository`
(COPY), never one ORM object at a time.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Identity,
    Integer,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from superior_one.db import Base


class FraudReason(enum.StrEnum):
    # Fixes for a load sent by someone other than its driver or its carrier's dispatchers.
    UNAUTHORIZED_SENDER = "UNAUTHORIZED_SENDER"
    # The truck left pickup (or reached delivery) without a proven pickup.
    PICKUP_NOT_PROVEN = "PICKUP_NOT_PROVEN"
    # A person moved the load past pickup while no proven pickup existed.
    MANUAL_STATUS_WITHOUT_PROOF = "MANUAL_STATUS_WITHOUT_PROOF"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=32, validate_strings=True)


class GeoEvent(Base):
    """One accepted GPS fix. The database has no primary key (the table is
    partitioned); ``(id, fix_time)`` identifies a row for the ORM.

    NOTE: no index has ``id`` alone, so finding the fix a load event cites by its id
    scans every partition; ``geofence_events`` keeps the fix time beside the id.
    """

    __tablename__ = "geo_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fix_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    load_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    driver_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    carrier_organization_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    sender_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    lng: Mapped[float] = mapped_column(Float, nullable=False)
    accuracy_m: Mapped[float] = mapped_column(Float, nullable=False)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    client_fix_id: Mapped[str | None] = mapped_column(String(64))
    geofence_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class GeofenceStateRow(Base):
    """The geofence engine's state of one load, locked while a batch is applied."""

    __tablename__ = "geofence_states"

    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    last_fix_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pickup_proven_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pickup_proof_fix_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class StopGeofence(Base):
    """A polygon fence replacing a stop's circle (a quarry, a job site)."""

    __tablename__ = "stop_geofences"

    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="CASCADE"), primary_key=True
    )
    stop_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    # [[lat, lng], ...] in ring order.
    vertices: Mapped[list[list[float]]] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class GeofenceEventRow(Base):
    """A geofence decision (enter, exit, arrival, departure) and the fix behind it."""

    __tablename__ = "geofence_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
    )
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    stop_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    stop_index: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    gps_fix_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fix_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    lng: Mapped[float] = mapped_column(Float, nullable=False)
    accuracy_m: Mapped[float] = mapped_column(Float, nullable=False)
    edge_distance_m: Mapped[float] = mapped_column(Float, nullable=False)
    in_sequence: Mapped[bool] = mapped_column(Boolean, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class TruckPosition(Base):
    """Each driver's latest fix by fix time: the durable copy of the Redis GEO set."""

    __tablename__ = "truck_positions"

    driver_user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    carrier_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    load_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loads.id", ondelete="SET NULL"))
    gps_fix_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fix_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    lng: Mapped[float] = mapped_column(Float, nullable=False)
    point: Mapped[object] = mapped_column(
        Geography("POINT", srid=4326, spatial_index=False), nullable=False, deferred=True
    )
    accuracy_m: Mapped[float] = mapped_column(Float, nullable=False)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class FraudFlag(Base):
    """A double-brokering signal on a load and its carrier, visible to the shipper."""

    __tablename__ = "fraud_flags"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="CASCADE"), nullable=False
    )
    shipper_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    carrier_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    reason: Mapped[FraudReason] = mapped_column(_enum(FraudReason, "fraud_reason"), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL")
    )
    gps_fix_id: Mapped[int | None] = mapped_column(BigInteger)
    occurrences: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    first_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
