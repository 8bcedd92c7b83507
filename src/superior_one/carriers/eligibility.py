"""Whether a carrier may be assigned a load: the decision and every reason for it.

A pure function of the carrier record, its policies and the load's terms, so the
load assignment service, the API and the tests all get the same decision. Each
reason names the field it read and the value it found.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from superior_one.carriers.models import Carrier, CarrierStatus, CoverageType, InsurancePolicy


class ReasonCode(enum.StrEnum):
    NOT_VERIFIED = "not_verified"
    VERIFICATION_UNAVAILABLE = "verification_unavailable"
    VERIFICATION_STALE = "verification_stale"
    NOT_ALLOWED_TO_OPERATE = "not_allowed_to_operate"
    AUTHORITY_NOT_ACTIVE = "authority_not_active"
    AUTHORITY_REVOKED = "authority_revoked"
    OUT_OF_SERVICE = "out_of_service"
    INSURANCE_ON_FILE_BELOW_REQUIRED = "insurance_on_file_below_required"
    NO_INSURANCE_ON_FILE = "no_insurance_on_file"
    INSURANCE_EXPIRES_BEFORE_PICKUP = "insurance_expires_before_pickup"
    INSURANCE_NOT_YET_EFFECTIVE = "insurance_not_yet_effective"
    COVERAGE_BELOW_MINIMUM = "coverage_below_minimum"
    BOOKING_SUSPENDED = "booking_suspended"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    field: str
    value: str | None
    message: str


@dataclass(frozen=True, slots=True)
class EligibilityDecision:
    carrier_id: str
    pickup_date: date
    min_coverage_cents: int | None
    verification_status: CarrierStatus
    last_verified_at: datetime | None
    verification_age_s: float | None
    reasons: list[Reason] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        return not self.reasons


def decide(
    carrier: Carrier,
    policies: Sequence[InsurancePolicy],
    *,
    pickup_date: date,
    min_coverage_cents: int | None,
    now: datetime,
    max_verification_age: timedelta,
) -> EligibilityDecision:
    """Decide for a load picked up on ``pickup_date`` (the facility's local date).

    Only VERIFIED counts as verified: PENDING, UNAVAILABLE and every failed
    status refuse, so an FMCSA outage can never let a carrier through.
    """
    age_s = (now - carrier.last_verified_at).total_seconds() if carrier.last_verified_at else None
    reasons = [
        *_verification_reasons(carrier, now, max_verification_age, age_s),
        *_authority_reasons(carrier, pickup_date),
        *_insurance_reasons(carrier, policies, pickup_date, min_coverage_cents),
    ]
    return EligibilityDecision(
        carrier_id=str(carrier.id),
        pickup_date=pickup_date,
        min_coverage_cents=min_coverage_cents,
        verification_status=carrier.verification_status,
        last_verified_at=carrier.last_verified_at,
        verification_age_s=age_s,
        reasons=reasons,
    )


def _verification_reasons(
    carrier: Carrier, now: datetime, max_age: timedelta, age_s: float | None
) -> list[Reason]:
    reasons: list[Reason] = []
    status = carrier.verification_status
    if not carrier.is_active:
        reasons.append(
            Reason(ReasonCode.INACTIVE, "isActive", "false", "The carrier record is deactivated.")
        )
    if status is CarrierStatus.UNAVAILABLE:
        last = carrier.last_result_status.value if carrier.last_result_status else "none"
        age = f"{age_s / 3600:.1f} h old" if age_s is not None else "never verified"
        reasons.append(
            Reason(
                ReasonCode.VERIFICATION_UNAVAILABLE,
                "verificationStatus",
                status.value,
                f"FMCSA could not be asked ({carrier.unavailable_reason}); the last known "
                f"result was {last}, {age}. Booking waits until FMCSA answers.",
            )
        )
    elif status is not CarrierStatus.VERIFIED:
        reasons.append(
            Reason(
                ReasonCode.NOT_VERIFIED,
                "verificationStatus",
                status.value,
                "The carrier is not verified against FMCSA.",
            )
        )
    elif carrier.last_verified_at is None or now - carrier.last_verified_at > max_age:
        reasons.append(
            Reason(
                ReasonCode.VERIFICATION_STALE,
                "lastVerifiedAt",
                carrier.last_verified_at.isoformat() if carrier.last_verified_at else None,
                f"The last FMCSA verification is older than {max_age.days} days.",
            )
        )
    if carrier.booking_suspended_at is not None:
        reasons.append(
            Reason(
                ReasonCode.BOOKING_SUSPENDED,
                "bookingSuspensionReason",
                carrier.booking_suspension_reason,
                "Booking is suspended for this carrier.",
            )
        )
    return reasons


def _authority_reasons(carrier: Carrier, pickup_date: date) -> list[Reason]:
    reasons: list[Reason] = []
    # Facts are checked whatever the status, so a decision lists every problem.
    if carrier.allowed_to_operate is not None and carrier.allowed_to_operate != "Y":
        reasons.append(
            Reason(
                ReasonCode.NOT_ALLOWED_TO_OPERATE,
                "allowedToOperate",
                carrier.allowed_to_operate,
                "FMCSA does not allow the carrier to operate.",
            )
        )
    authorities = {
        "commonAuthorityStatus": carrier.common_authority_status,
        "contractAuthorityStatus": carrier.contract_authority_status,
    }
    reported = {name: value for name, value in authorities.items() if value is not None}
    if reported and "A" not in reported.values():
        for name, value in reported.items():
            reasons.append(
                Reason(
                    ReasonCode.AUTHORITY_NOT_ACTIVE,
                    name,
                    value,
                    "The carrier has no active for-hire operating authority.",
                )
            )
    if carrier.revoked_effective_date is not None and carrier.revoked_effective_date <= pickup_date:
        reasons.append(
            Reason(
                ReasonCode.AUTHORITY_REVOKED,
                "revokedEffectiveDate",
                carrier.revoked_effective_date.isoformat(),
                f"FMCSA's revocation file revokes the authority ({carrier.revocation_type}) "
                "from this date.",
            )
        )
    if carrier.out_of_service_date is not None:
        reasons.append(
            Reason(
                ReasonCode.OUT_OF_SERVICE,
                "outOfServiceDate",
                carrier.out_of_service_date.isoformat(),
                "The carrier is under an out-of-service order.",
            )
        )
    return reasons


def _insurance_reasons(
    carrier: Carrier,
    policies: Sequence[InsurancePolicy],
    pickup_date: date,
    min_coverage_cents: int | None,
) -> list[Reason]:
    reasons: list[Reason] = []
    required = carrier.bipd_required_cents
    on_file = carrier.bipd_on_file_cents
    below_required = required is not None and (on_file is None or on_file < required)
    if carrier.bipd_insurance_required == "Y" and below_required:
        reasons.append(
            Reason(
                ReasonCode.INSURANCE_ON_FILE_BELOW_REQUIRED,
                "bipdOnFileCents",
                None if on_file is None else str(on_file),
                f"FMCSA shows less liability insurance on file than the required {required} cents.",
            )
        )

    liability = [p for p in policies if p.coverage_type is CoverageType.AUTO_LIABILITY]
    if not liability:
        reasons.append(
            Reason(
                ReasonCode.NO_INSURANCE_ON_FILE,
                "insurancePolicies",
                None,
                "The carrier has registered no auto liability policy.",
            )
        )
        return reasons

    covering = [p for p in liability if p.effective_date <= pickup_date <= p.expiry_date]
    if not covering:
        latest = max(liability, key=lambda p: p.expiry_date)
        if latest.expiry_date < pickup_date:
            reasons.append(
                Reason(
                    ReasonCode.INSURANCE_EXPIRES_BEFORE_PICKUP,
                    "insurancePolicies.expiryDate",
                    latest.expiry_date.isoformat(),
                    f"Auto liability policy {latest.policy_number} expires before the pickup "
                    f"on {pickup_date.isoformat()}.",
                )
            )
        else:
            earliest = min(liability, key=lambda p: p.effective_date)
            reasons.append(
                Reason(
                    ReasonCode.INSURANCE_NOT_YET_EFFECTIVE,
                    "insurancePolicies.effectiveDate",
                    earliest.effective_date.isoformat(),
                    f"No auto liability policy is in force on the pickup date "
                    f"{pickup_date.isoformat()}.",
                )
            )
        return reasons

    best = max(covering, key=lambda p: p.amount_cents)
    if min_coverage_cents is not None and best.amount_cents < min_coverage_cents:
        reasons.append(
            Reason(
                ReasonCode.COVERAGE_BELOW_MINIMUM,
                "insurancePolicies.amountCents",
                str(best.amount_cents),
                f"Auto liability coverage is below the load's minimum of "
                f"{min_coverage_cents} cents.",
            )
        )
    return reasons
