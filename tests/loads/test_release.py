"""A driver is released on one load at a time: a second release gets 409."""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass
from types import ModuleType

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.loads.models import Load, LoadEvent, LoadStatus
from superior_one.migrate import MIGRATIONS_DIR
from superior_one.resources import Resources
from tests.loads.factories import Party, add_user, create_party, insert_load


@dataclass
class Fleet:
    shipper: Party
    dispatcher: Party
    driver: Party


@pytest.fixture
async def fleet(resources: Resources, settings: Settings) -> Fleet:
    sessionmaker = resources.sessionmaker
    shipper = await create_party(sessionmaker, settings, OrganizationType.SHIPPER)
    dispatcher = await create_party(sessionmaker, settings, OrganizationType.CARRIER)
    driver = await add_user(sessionmaker, settings, dispatcher, Role.DRIVER)
    return Fleet(shipper, dispatcher, driver)


async def _load(
    resources: Resources,
    fleet: Fleet,
    status: LoadStatus = LoadStatus.ASSIGNED,
    *,
    driven: bool = False,
    reference: str | None = None,
) -> Load:
    return await insert_load(
        resources.sessionmaker,
        fleet.shipper.organization,
        status=status,
        carrier=fleet.dispatcher.organization,
        driver=fleet.driver.user if driven else None,
        reference=reference,
    )


async def _release(client: httpx.AsyncClient, fleet: Fleet, load: Load) -> httpx.Response:
    return await client.post(
        f"/loads/{load.id}/release",
        json={"driverUserId": str(fleet.driver.user.id)},
        headers=fleet.dispatcher.headers,
    )


@pytest.mark.parametrize("status", [LoadStatus.RELEASED, LoadStatus.IN_TRANSIT])
async def test_release_busy_driver_is_409(
    client: httpx.AsyncClient, resources: Resources, fleet: Fleet, status: LoadStatus
) -> None:
    busy = await _load(resources, fleet, status, driven=True, reference="SO-BUSY")
    second = await _load(resources, fleet)

    response = await _release(client, fleet, second)

    body = response.json()
    assert response.status_code == 409
    assert body["code"] == "driver_busy"
    assert body["activeLoadId"] == str(busy.id)
    assert f"load {busy.id} (SO-BUSY), which is {status.value}" in body["detail"]
    assert "Finish that load or reassign it" in body["detail"]


async def test_release_refused_keeps_load_assigned(
    client: httpx.AsyncClient, resources: Resources, fleet: Fleet
) -> None:
    await _load(resources, fleet, LoadStatus.IN_TRANSIT, driven=True)
    second = await _load(resources, fleet)

    await _release(client, fleet, second)

    async with resources.sessionmaker() as session:
        stored = await session.get(Load, second.id)
    assert stored is not None
    assert stored.status is LoadStatus.ASSIGNED
    assert stored.assigned_driver_user_id is None


@pytest.mark.parametrize("status", [LoadStatus.DELIVERED, LoadStatus.COMPLETED])
async def test_release_driver_after_delivery_succeeds(
    client: httpx.AsyncClient, resources: Resources, fleet: Fleet, status: LoadStatus
) -> None:
    await _load(resources, fleet, status, driven=True)
    second = await _load(resources, fleet)

    response = await _release(client, fleet, second)

    assert response.status_code == 200
    assert response.json()["status"] == "RELEASED"


async def test_release_concurrent_same_driver_succeeds_once(
    client: httpx.AsyncClient, resources: Resources, fleet: Fleet
) -> None:
    first, second = await _load(resources, fleet), await _load(resources, fleet)

    responses = await asyncio.gather(
        _release(client, fleet, first), _release(client, fleet, second)
    )

    outcomes = sorted((r.status_code, r.json().get("code")) for r in responses)
    assert outcomes == [(200, None), (409, "driver_busy")]


async def test_release_index_rejects_second_active_load(resources: Resources, fleet: Fleet) -> None:
    await _load(resources, fleet, LoadStatus.RELEASED, driven=True)

    with pytest.raises(IntegrityError, match="uq_loads_driver_on_the_road"):
        await _load(resources, fleet, LoadStatus.IN_TRANSIT, driven=True)


def _migration_0008() -> ModuleType:
    path = MIGRATIONS_DIR / "versions" / "0008_one_load_per_driver.py"
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_migration_repair_keeps_one_load_per_driver(
    resources: Resources, fleet: Fleet
) -> None:
    migration = _migration_0008()
    # ASSIGNED with the driver already set: loads the index does not cover yet.
    loads = [await _load(resources, fleet, driven=True) for _ in range(3)]
    plan = [("RELEASED", 2), ("IN_TRANSIT", 1), ("RELEASED", 3)]  # (status, hours ago)

    async with resources.sessionmaker() as session:
        # As in a database before 0008; the rollback below restores the index.
        await session.execute(text(f"DROP INDEX {migration.INDEX}"))
        for load, (status, hours) in zip(loads, plan, strict=True):
            await session.execute(
                text(
                    "UPDATE loads SET status = :status, "
                    "released_at = now() - make_interval(hours => :hours) WHERE id = :id"
                ),
                {"status": status, "hours": hours, "id": load.id},
            )
        await session.execute(migration.REPAIR)
        ids = [load.id for load in loads]
        rows = await session.execute(
            select(Load.id, Load.status, Load.assigned_driver_user_id).where(Load.id.in_(ids))
        )
        after = {row.id: (row.status, row.assigned_driver_user_id is not None) for row in rows}
        events = (
            await session.execute(
                select(LoadEvent.load_id, LoadEvent.from_status, LoadEvent.to_status).where(
                    LoadEvent.load_id.in_(ids), LoadEvent.actor_description == "migration 0008"
                )
            )
        ).all()
        await session.rollback()

    assert [after[load.id] for load in loads] == [
        (LoadStatus.ASSIGNED, False),
        (LoadStatus.IN_TRANSIT, True),
        (LoadStatus.ASSIGNED, False),
    ]
    assert sorted((e.load_id, e.from_status, e.to_status) for e in events) == sorted(
        [
            (loads[0].id, LoadStatus.RELEASED, LoadStatus.ASSIGNED),
            (loads[2].id, LoadStatus.RELEASED, LoadStatus.ASSIGNED),
        ]
    )
