"""Plain async helpers that create carriers and policies, committed like real requests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import Organization, OrganizationType
from superior_one.carriers.models import Carrier, CarrierStatus, CoverageType, InsurancePolicy
from superior_one.db import unit_of_work
from tests.factories import create_organization


def carrier_model(
    *,
    dot_number: int = 3000002,
    status: CarrierStatus = CarrierStatus.VERIFIED,
    verified_at: datetime | None = None,
    **facts: object,
) -> Carrier:
    """Build a verified, authorized carrier with $1M liability on file, unless overridden."""
    values: dict[str, object] = {
        "dot_number": dot_number,
        "legal_name": "NORTHFIELD HAULING INC",
        "common_authority_status": "A",
        "contract_authority_status": "A",
        "allowed_to_operate": "Y",
        "bipd_insurance_required": "Y",
        "bipd_required_cents": 75_000_000,
        "bipd_on_file_cents": 100_000_000,
        "verification_status": status,
        "last_result_status": status if status is not CarrierStatus.UNAVAILABLE else None,
        "last_verified_at": verified_at or datetime.now(UTC),
        "verification_reasons": [],
        "is_active": True,
    }
    values.update(facts)
    return Carrier(**values)


def policy_model(
    *,
    expiry_date: date,
    effective_date: date = date(2024, 1, 1),
    amount_cents: int = 100_000_000,
    coverage_type: CoverageType = CoverageType.AUTO_LIABILITY,
) -> InsurancePolicy:
    return InsurancePolicy(
        coverage_type=coverage_type,
        insurer_name="Great Plains Mutual",
        policy_number=f"AL-{expiry_date.isoformat()}",
        amount_cents=amount_cents,
        effective_date=effective_date,
        expiry_date=expiry_date,
    )


async def create_carrier(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    organization: Organization | None = None,
    policies: list[InsurancePolicy] | None = None,
    **kwargs: object,
) -> Carrier:
    organization = organization or await create_organization(sessionmaker, OrganizationType.CARRIER)
    carrier = carrier_model(**kwargs)  # type: ignore[arg-type]
    carrier.organization_id = organization.id
    async with unit_of_work(sessionmaker) as session:
        session.add(carrier)
        await session.flush()
        for policy in policies or []:
            policy.carrier_id = carrier.id
            session.add(policy)
    return carrier
