"""Import of the real FMCSA revocation file (2024-08-06): revoked carriers are flagged once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text

from superior_one.carriers.models import Carrier, CarrierNotification, NotificationKind
from superior_one.carriers.revocations import import_revocations
from superior_one.db import unit_of_work
from superior_one.integrations.fmcsa.revocations import read_revocation_file
from superior_one.resources import Resources
from tests.carriers.conftest import REVOCATIONS_FILE
from tests.carriers.factories import create_carrier


@pytest.fixture
def revocation_file() -> object:
    if not REVOCATIONS_FILE.is_file():
        pytest.skip(f"FMCSA revocation file not found at {REVOCATIONS_FILE.resolve()}")
    return REVOCATIONS_FILE.resolve()


async def test_import_flags_revoked_carrier_once(
    resources: Resources, revocation_file: object
) -> None:
    # USDOT 830331 appears six times, revoked from 2000-08-01 to 2024-07-26: the latest counts.
    revoked = await create_carrier(resources.sessionmaker, dot_number=830331)
    untouched = await create_carrier(resources.sessionmaker, dot_number=3000002)

    async with unit_of_work(resources.sessionmaker) as session:
        first = await import_revocations(session, read_revocation_file(revocation_file))  # type: ignore[arg-type]
    async with unit_of_work(resources.sessionmaker) as session:
        second = await import_revocations(session, read_revocation_file(revocation_file))  # type: ignore[arg-type]
        flagged = await session.get(Carrier, revoked.id)
        other = await session.get(Carrier, untouched.id)
        notices = (
            await session.execute(
                select(CarrierNotification.kind).where(CarrierNotification.carrier_id == revoked.id)
            )
        ).scalars()
        verify_jobs = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name = 'carriers.verify' AND args->>'carrier_id' = :id"
            ),
            {"id": str(revoked.id)},
        )

    assert first.rows > 2000
    assert first.newly_flagged == 1
    assert second.newly_flagged == 0
    assert flagged is not None
    assert flagged.revoked_effective_date == date(2024, 7, 26)
    assert flagged.revocation_type == "INVOLUNTARY REVOCATION"
    assert other is not None
    assert other.revoked_effective_date is None
    assert list(notices) == [NotificationKind.AUTHORITY_REVOKED]
    assert verify_jobs == 1


async def test_verification_with_active_authority_clears_old_revocation(
    resources: Resources, revocation_file: object
) -> None:
    from superior_one.carriers.verification import _reinstatement
    from superior_one.integrations.fmcsa.schemas import CarrierRecord

    carrier = await create_carrier(
        resources.sessionmaker,
        dot_number=830331,
        revoked_effective_date=date(2024, 7, 26),
        revocation_type="INVOLUNTARY REVOCATION",
    )
    active = CarrierRecord.model_validate(
        {
            "dotNumber": 830331,
            "legalName": "X",
            "allowedToOperate": "Y",
            "commonAuthorityStatus": "A",
        }
    )

    before = _reinstatement(carrier, active, datetime(2024, 7, 25, tzinfo=UTC))
    after = _reinstatement(carrier, active, datetime(2024, 8, 6, tzinfo=UTC))

    assert before is None
    assert after is not None
    assert after.kind == "authority_reinstated"
    assert carrier.revoked_effective_date is None
