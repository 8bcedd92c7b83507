"""The eligibility decision: every failed check is a reason citing its field and value."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from superior_one.carriers.eligibility import ReasonCode, decide
from superior_one.carriers.models import CarrierStatus
from superior_one.carriers.service import local_date
from tests.carriers.factories import carrier_model, policy_model

NOW = datetime(2024, 6, 20, 12, tzinfo=UTC)
MAX_AGE = timedelta(days=14)


def _decide(carrier_kwargs: dict[str, object], policies: list[object], **kwargs: object):  # type: ignore[no-untyped-def]
    carrier = carrier_model(verified_at=NOW - timedelta(days=1), **carrier_kwargs)  # type: ignore[arg-type]
    carrier.id = uuid.uuid4()
    return decide(
        carrier,
        policies,  # type: ignore[arg-type]
        pickup_date=kwargs.get("pickup_date", date(2024, 6, 25)),  # type: ignore[arg-type]
        min_coverage_cents=kwargs.get("min_coverage_cents"),  # type: ignore[arg-type]
        now=NOW,
        max_verification_age=MAX_AGE,
    )


def codes(decision) -> list[ReasonCode]:  # type: ignore[no-untyped-def]
    return [reason.code for reason in decision.reasons]


def test_local_date_reads_pickup_in_facility_time_zone() -> None:
    # 2024-07-01 08:00 in Chicago is 13:00 UTC; a 04:00 UTC pickup is still June 30 there.
    assert local_date(datetime(2024, 7, 1, 13, tzinfo=UTC), "America/Chicago") == date(2024, 7, 1)
    assert local_date(datetime(2024, 7, 1, 4, tzinfo=UTC), "America/Chicago") == date(2024, 6, 30)


def test_decide_refuses_pickup_after_insurance_expiry() -> None:
    pickup = local_date(datetime.fromisoformat("2024-07-01T08:00:00-05:00"), "America/Chicago")
    decision = _decide({}, [policy_model(expiry_date=date(2024, 6, 30))], pickup_date=pickup)

    assert not decision.eligible
    assert codes(decision) == [ReasonCode.INSURANCE_EXPIRES_BEFORE_PICKUP]
    assert decision.reasons[0].field == "insurancePolicies.expiryDate"
    assert decision.reasons[0].value == "2024-06-30"


def test_decide_accepts_pickup_on_last_insured_day() -> None:
    decision = _decide(
        {}, [policy_model(expiry_date=date(2024, 6, 30))], pickup_date=date(2024, 6, 30)
    )

    assert decision.eligible
    assert decision.reasons == []


def test_decide_unavailable_is_not_eligible() -> None:
    decision = _decide(
        {
            "status": CarrierStatus.UNAVAILABLE,
            "last_result_status": CarrierStatus.VERIFIED,
            "unavailable_reason": "maintenance",
        },
        [policy_model(expiry_date=date(2025, 1, 1))],
    )

    assert not decision.eligible
    assert codes(decision) == [ReasonCode.VERIFICATION_UNAVAILABLE]
    assert decision.reasons[0].value == "UNAVAILABLE"
    assert "VERIFIED" in decision.reasons[0].message
    assert decision.verification_age_s == 86400.0


def test_decide_pending_carrier_is_not_verified() -> None:
    decision = _decide(
        {"status": CarrierStatus.PENDING}, [policy_model(expiry_date=date(2025, 1, 1))]
    )

    assert codes(decision) == [ReasonCode.NOT_VERIFIED]


def test_decide_lists_every_failed_fact() -> None:
    decision = _decide(
        {
            "status": CarrierStatus.NOT_AUTHORIZED,
            "allowed_to_operate": "N",
            "common_authority_status": "I",
            "contract_authority_status": "N",
            "out_of_service_date": date(2024, 5, 1),
            "bipd_on_file_cents": 0,
        },
        [],
    )

    assert codes(decision) == [
        ReasonCode.NOT_VERIFIED,
        ReasonCode.NOT_ALLOWED_TO_OPERATE,
        ReasonCode.AUTHORITY_NOT_ACTIVE,
        ReasonCode.AUTHORITY_NOT_ACTIVE,
        ReasonCode.OUT_OF_SERVICE,
        ReasonCode.INSURANCE_ON_FILE_BELOW_REQUIRED,
        ReasonCode.NO_INSURANCE_ON_FILE,
    ]
    assert [(r.field, r.value) for r in decision.reasons[1:5]] == [
        ("allowedToOperate", "N"),
        ("commonAuthorityStatus", "I"),
        ("contractAuthorityStatus", "N"),
        ("outOfServiceDate", "2024-05-01"),
    ]


def test_decide_refuses_coverage_below_load_minimum() -> None:
    decision = _decide(
        {},
        [policy_model(expiry_date=date(2025, 1, 1), amount_cents=75_000_000)],
        min_coverage_cents=100_000_000,
    )

    assert codes(decision) == [ReasonCode.COVERAGE_BELOW_MINIMUM]
    assert decision.reasons[0].value == "75000000"


def test_decide_refuses_revoked_authority_from_its_effective_date() -> None:
    revoked = {"revoked_effective_date": date(2024, 6, 26), "revocation_type": "INVOLUNTARY"}
    policy = [policy_model(expiry_date=date(2025, 1, 1))]

    before = _decide(revoked, policy, pickup_date=date(2024, 6, 25))
    after = _decide(revoked, policy, pickup_date=date(2024, 6, 26))

    assert before.eligible
    assert codes(after) == [ReasonCode.AUTHORITY_REVOKED]


def test_decide_refuses_stale_verification() -> None:
    carrier = carrier_model(verified_at=NOW - timedelta(days=15))
    carrier.id = uuid.uuid4()
    decision = decide(
        carrier,
        [policy_model(expiry_date=date(2025, 1, 1))],
        pickup_date=date(2024, 6, 25),
        min_coverage_cents=None,
        now=NOW,
        max_verification_age=MAX_AGE,
    )

    assert codes(decision) == [ReasonCode.VERIFICATION_STALE]


def test_decide_refuses_suspended_booking() -> None:
    decision = _decide(
        {"booking_suspended_at": NOW, "booking_suspension_reason": "INSURANCE_EXPIRED"},
        [policy_model(expiry_date=date(2025, 1, 1))],
    )

    assert codes(decision) == [ReasonCode.BOOKING_SUSPENDED]
