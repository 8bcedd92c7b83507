"""The demo carrier for the run command: a USDOT number the FMCSA simulator serves."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from superior_one.accounts.models import Organization, OrganizationType
from superior_one.carriers import repository
from superior_one.carriers.models import Carrier, CarrierStatus, CoverageType, InsurancePolicy
from superior_one.carriers.service import CarriersService, business_today
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.demo import DEMO_ACCOUNTS
from superior_one.resources import open_resources

# The real QCMobile sample carrier (NORTHWOODS TRUCKING INC), which the simulator
# serves from the sample replies, or generates as an active carrier without them.
DEMO_DOT_NUMBER = 158121
# Close enough to expiry that the 30-day notice goes out and loads picked up
# after it are refused.
DEMO_POLICY_DAYS_LEFT = 25


async def seed_demo_carrier(settings: Settings) -> Carrier | None:
    """Give the demo carrier organization its USDOT number and a policy; idempotent.

    Returns ``None`` when the demo organization does not exist yet (run
    ``seed-demo-accounts`` first). Its first verification is queued for the worker.
    """
    name = next(
        a.organization_name
        for a in DEMO_ACCOUNTS
        if a.organization_type is OrganizationType.CARRIER
    )
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        organization = (
            await session.execute(select(Organization).where(Organization.name == name))
        ).scalar_one_or_none()
        if organization is None:
            return None
        existing = await repository.get_by_organization(session, organization.id)
        if existing is not None:
            return existing

        carrier = Carrier(
            organization_id=organization.id,
            dot_number=DEMO_DOT_NUMBER,
            verification_status=CarrierStatus.PENDING,
            verification_reasons=[],
        )
        session.add(carrier)
        await session.flush()
        today = business_today(settings)
        session.add(
            InsurancePolicy(
                carrier_id=carrier.id,
                coverage_type=CoverageType.AUTO_LIABILITY,
                insurer_name="Demo Mutual Insurance",
                policy_number="DEMO-AL-0001",
                amount_cents=100_000_000,
                effective_date=today - timedelta(days=340),
                expiry_date=today + timedelta(days=DEMO_POLICY_DAYS_LEFT),
            )
        )
        await CarriersService(session, settings).queue_verification(carrier)
        return carrier
