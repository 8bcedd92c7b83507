"""The demo seeder's data keeps the loads domain's rules."""

from __future__ import annotations

from sqlalchemy import func, select

from superior_one.config import Settings
from superior_one.demo import seed_demo_accounts
from superior_one.loads.models import ON_THE_ROAD, Load
from superior_one.loads.seed import SeedOptions, seed
from superior_one.resources import Resources


async def test_seed_driver_has_one_active_load(resources: Resources, settings: Settings) -> None:
    # Half the loads belong to the demo accounts, and the demo carrier has one driver.
    await seed_demo_accounts(settings)
    await seed(settings, SeedOptions(loads=4000, seed=5, demo_share=0.5))

    async with resources.sessionmaker() as session:
        per_driver = (
            await session.execute(
                select(func.count())
                .where(Load.status.in_(ON_THE_ROAD))
                .group_by(Load.assigned_driver_user_id)
            )
        ).scalars()
        counts = sorted(set(per_driver))

    assert counts == [1]
