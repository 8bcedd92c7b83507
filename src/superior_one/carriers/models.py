"""Carriers, their insurance policies, verification history, notifications and scores.

A carrier record belongs to one CARRIER organization and keeps the last known
FMCSA facts about it. ``verification_status`` is the current state (it may be
UNAVAILABLE while FMCSA is down); ``last_result_status`` and
``last_verified_at`` are what FMCSA last said and when, so a person can judge
the age of what we know.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from superior_one.db import Base, TimestampMixin
from superior_one.integrations.fmcsa.service import VerificationStatus


class CoverageType(enum.StrEnum):
    AUTO_LIABILITY = "AUTO_LIABILITY"  # bodily injury and property damage (BIPD)
    CARGO = "CARGO"
    GENERAL_LIABILITY = "GENERAL_LIABILITY"


class CarrierStatus(enum.StrEnum):
    """Vetting state of a carrier; PENDING until FMCSA first replies."""

    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    NOT_FOUND = "NOT_FOUND"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    INSUFFICIENT_INSURANCE = "INSUFFICIENT_INSURANCE"
    AMBIGUOUS = "AMBIGUOUS"
    UNAVAILABLE = "UNAVAILABLE"

    @classmethod
    def from_fmcsa(cls, status: VerificationStatus) -> CarrierStatus:
        return cls(status.value)


class VerificationSource(enum.StrEnum):
    FMCSA = "FMCSA"
    REVOCATION_FILE = "REVOCATION_FILE"


class NotificationKind(enum.StrEnum):
    INSURANCE_EXPIRING = "INSURANCE_EXPIRING"
    INSURANCE_EXPIRED = "INSURANCE_EXPIRED"
    CARRIER_STATUS_CHANGED = "CARRIER_STATUS_CHANGED"
    AUTHORITY_REVOKED = "AUTHORITY_REVOKED"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Text with a CHECK constraint, like the foundation's enums.
    return Enum(cls, name=name, native_enum=False, length=32, validate_strings=True)


class Carrier(TimestampMixin, Base):
    __tablename__ = "carriers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False, unique=True
    )
    dot_number: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    mc_number: Mapped[int | None] = mapped_column(Integer, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))

    # Facts from FMCSA's last reply ("A" active, "I" inactive, "N" none; "Y"/"N"/"u").
    legal_name: Mapped[str | None] = mapped_column(String(200))
    dba_name: Mapped[str | None] = mapped_column(String(200))
    common_authority_status: Mapped[str | None] = mapped_column(String(1))
    contract_authority_status: Mapped[str | None] = mapped_column(String(1))
    broker_authority_status: Mapped[str | None] = mapped_column(String(1))
    allowed_to_operate: Mapped[str | None] = mapped_column(String(1))
    out_of_service_date: Mapped[date | None] = mapped_column(Date)
    bipd_insurance_required: Mapped[str | None] = mapped_column(String(1))
    bipd_required_cents: Mapped[int | None] = mapped_column(BigInteger)
    bipd_on_file_cents: Mapped[int | None] = mapped_column(BigInteger)
    cargo_on_file_cents: Mapped[int | None] = mapped_column(BigInteger)
    safety_rating: Mapped[str | None] = mapped_column(String(8))

    verification_status: Mapped[CarrierStatus] = mapped_column(
        _enum(CarrierStatus, "carrier_status"), nullable=False, default=CarrierStatus.PENDING
    )
    # Failed checks of the current status: [{"field", "value", "message"}].
    verification_reasons: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    last_result_status: Mapped[CarrierStatus | None] = mapped_column(
        _enum(CarrierStatus, "carrier_last_result_status")
    )
    last_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unavailable_reason: Mapped[str | None] = mapped_column(String(64))
    next_verification_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    # From the FMCSA revocation file.
    revoked_effective_date: Mapped[date | None] = mapped_column(Date)
    revocation_type: Mapped[str | None] = mapped_column(String(64))

    # Booking is suspended when the carrier's liability insurance has expired.
    booking_suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booking_suspension_reason: Mapped[str | None] = mapped_column(String(64))


class InsurancePolicy(TimestampMixin, Base):
    __tablename__ = "insurance_policies"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    carrier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("carriers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    coverage_type: Mapped[CoverageType] = mapped_column(
        _enum(CoverageType, "coverage_type"), nullable=False
    )
    insurer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    policy_number: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Coverage runs through the whole expiry date, in the business time zone.
    effective_date: Mapped[date] = mapped_column(Date, nullable=False)
    expiry_date: Mapped[date] = mapped_column(Date, nullable=False)


class CarrierVerification(Base):
    """One check of a carrier: its outcome and what changed since the previous one."""

    __tablename__ = "carrier_verifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    carrier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("carriers.id", ondelete="CASCADE"), nullable=False
    )
    source: Mapped[VerificationSource] = mapped_column(
        _enum(VerificationSource, "verification_source"), nullable=False
    )
    status: Mapped[CarrierStatus] = mapped_column(
        _enum(CarrierStatus, "verification_status"), nullable=False
    )
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    # [{"field", "from", "to", "kind"}]: authority revoked, insurance dropped, ...
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class CarrierNotification(Base):
    """A notice to a carrier organization, created once per ``dedupe_key``.

    Delivery is a job; ``delivered_at`` makes it happen once however often the
    job runs.
    """

    __tablename__ = "carrier_notifications"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    carrier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("carriers.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[NotificationKind] = mapped_column(
        _enum(NotificationKind, "notification_kind"), nullable=False
    )
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CarrierScore(Base):
    """A carrier's daily performance score over the trailing window of loads."""

    __tablename__ = "carrier_scores"

    carrier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("carriers.id", ondelete="CASCADE"), primary_key=True
    )
    computed_on: Mapped[date] = mapped_column(Date, primary_key=True)
    loads_considered: Mapped[int] = mapped_column(Integer, nullable=False)
    on_time_pickup_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    on_time_delivery_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    cancellations: Mapped[int] = mapped_column(Integer, nullable=False)
    median_response_s: Mapped[int | None] = mapped_column(Integer)
    fraud_flags: Mapped[int] = mapped_column(Integer, nullable=False)
    score: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
