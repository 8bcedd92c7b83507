"""Request and response bodies of the carriers API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from superior_one.carriers.eligibility import EligibilityDecision, ReasonCode
from superior_one.carriers.models import CarrierStatus, CoverageType
from superior_one.errors import UnprocessableError
from superior_one.integrations.fmcsa.service import IdentifierKind, parse_carrier_identifier
from superior_one.schemas import RequestSchema, Schema

MAX_AMOUNT_CENTS = 10**12


class CarrierRegister(RequestSchema):
    """A USDOT number, as a number or as "USDOT 3000002"; an MC number as "MC-123456"."""

    dot_number: int | str
    mc_number: int | str | None = None

    @field_validator("dot_number")
    @classmethod
    def _dot(cls, value: int | str) -> int:
        return _identifier_number(value, IdentifierKind.DOT, "dotNumber")

    @field_validator("mc_number")
    @classmethod
    def _mc(cls, value: int | str | None) -> int | None:
        if value is None:
            return None
        return _identifier_number(value, IdentifierKind.MC, "mcNumber")


def _identifier_number(value: int | str, kind: IdentifierKind, field: str) -> int:
    try:
        return parse_carrier_identifier(value, kind).number
    except UnprocessableError as exc:
        # The parser names its argument "identifier", which the body does not have.
        exc.extra["field"] = field
        raise


class PolicyCreate(RequestSchema):
    coverage_type: CoverageType
    insurer_name: str = Field(min_length=1, max_length=200)
    policy_number: str = Field(min_length=1, max_length=64)
    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)
    effective_date: date
    expiry_date: date

    @model_validator(mode="after")
    def _dates_ordered(self) -> PolicyCreate:
        if self.expiry_date < self.effective_date:
            raise ValueError("expiryDate must be on or after effectiveDate")
        return self


class PolicyOut(Schema):
    id: uuid.UUID
    coverage_type: CoverageType
    insurer_name: str
    policy_number: str
    amount_cents: int
    effective_date: date
    expiry_date: date


class CarrierOut(Schema):
    id: uuid.UUID
    organization_id: uuid.UUID
    dot_number: int
    mc_number: int | None
    legal_name: str | None
    dba_name: str | None
    common_authority_status: str | None
    contract_authority_status: str | None
    broker_authority_status: str | None
    allowed_to_operate: str | None
    out_of_service_date: date | None
    bipd_insurance_required: str | None
    bipd_required_cents: int | None
    bipd_on_file_cents: int | None
    cargo_on_file_cents: int | None
    safety_rating: str | None
    verification_status: CarrierStatus
    verification_reasons: list[dict[str, Any]]
    last_result_status: CarrierStatus | None
    last_verified_at: datetime | None
    verification_age_s: float | None = None
    last_checked_at: datetime | None
    unavailable_reason: str | None
    revoked_effective_date: date | None
    revocation_type: str | None
    booking_suspended_at: datetime | None
    booking_suspension_reason: str | None


class ReasonOut(Schema):
    code: ReasonCode
    field: str
    value: str | None
    message: str


class DecisionOut(Schema):
    carrier_id: uuid.UUID
    eligible: bool
    pickup_date: date
    min_coverage_cents: int | None
    verification_status: CarrierStatus
    last_verified_at: datetime | None
    verification_age_s: float | None
    reasons: list[ReasonOut]

    @classmethod
    def from_decision(cls, decision: EligibilityDecision) -> DecisionOut:
        return cls(
            carrier_id=uuid.UUID(decision.carrier_id),
            eligible=decision.eligible,
            pickup_date=decision.pickup_date,
            min_coverage_cents=decision.min_coverage_cents,
            verification_status=decision.verification_status,
            last_verified_at=decision.last_verified_at,
            verification_age_s=decision.verification_age_s,
            reasons=[
                ReasonOut(code=r.code, field=r.field, value=r.value, message=r.message)
                for r in decision.reasons
            ],
        )


class VerificationRequested(Schema):
    carrier_id: uuid.UUID
    job_id: int
