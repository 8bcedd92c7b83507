"""A deactivated dispatcher's token stops working on every api process.

Two api processes have the dispatcher cached. An admin deactivates the
dispatcher. A second later, the board search on one process and an interest in a
load (standing in for a bid) on the other both get 401, and no interest is stored.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.loads.models import LoadInterest
from superior_one.resources import Resources
from tests.auth.test_principal_cache import REVOCATION_DEADLINE_S, running_app
from tests.loads.factories import add_user, create_party, insert_load


async def _interests(resources: Resources, load_id: object) -> int:
    async with resources.sessionmaker() as session:
        query = select(func.count()).select_from(LoadInterest)
        return int(
            (await session.execute(query.where(LoadInterest.load_id == load_id))).scalar_one()
        )


async def test_deactivation_revokes_on_both_processes(
    settings: Settings, resources: Resources
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    dispatcher = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    admin = await add_user(resources.sessionmaker, settings, dispatcher, Role.ORG_ADMIN)
    warm_load = await insert_load(resources.sessionmaker, shipper.organization)
    load = await insert_load(resources.sessionmaker, shipper.organization)

    async with running_app(settings) as (_, worker_1), running_app(settings) as (_, worker_2):
        # T0+10 s: both processes cache the dispatcher, and an interest still works.
        assert (await worker_1.get("/loads", headers=dispatcher.headers)).status_code == 200
        warm = await worker_2.put(
            f"/loads/{warm_load.id}/interest", json={}, headers=dispatcher.headers
        )
        assert warm.status_code == 200, warm.text

        # T0+60 s: the admin deactivates the dispatcher.
        deactivate = await worker_1.patch(
            f"/users/{dispatcher.user.id}", headers=admin.headers, json={"isActive": False}
        )
        assert deactivate.status_code == 200, deactivate.text
        await asyncio.sleep(REVOCATION_DEADLINE_S)

        # T0+61 s: the old access token, once on each process.
        board = await worker_1.get("/loads", headers=dispatcher.headers)
        interest = await worker_2.put(
            f"/loads/{load.id}/interest", json={}, headers=dispatcher.headers
        )

    assert (board.status_code, interest.status_code) == (401, 401)
    assert await _interests(resources, load.id) == 0
