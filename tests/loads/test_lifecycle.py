"""The state machine: allowed transitions, 409s, concurrency, idempotent GPS moves, expiry."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.cache import BoardCache
from superior_one.loads.errors import InvalidTransitionError, LoadNotFoundError
from superior_one.loads.lifecycle import ALLOWED_TRANSITIONS, Actor, transition_load
from superior_one.loads.models import ActorKind, Load, LoadEvent, LoadStatus
from superior_one.loads.service import expire_posted_loads
from superior_one.resources import Resources
from tests.loads.factories import add_user, create_party, future, insert_load

S = LoadStatus
LISTED = {
    (S.DRAFT, S.POSTED), (S.DRAFT, S.CANCELLED),
    (S.POSTED, S.ASSIGNED), (S.POSTED, S.CANCELLED), (S.POSTED, S.EXPIRED),
    (S.ASSIGNED, S.RELEASED), (S.ASSIGNED, S.CANCELLED),
    (S.RELEASED, S.IN_TRANSIT), (S.RELEASED, S.CANCELLED),
    (S.IN_TRANSIT, S.DELIVERED), (S.DELIVERED, S.COMPLETED),
}  # fmt: skip


def test_lifecycle_allows_exactly_the_listed_transitions() -> None:
    allowed = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert allowed == LISTED


async def _events(resources: Resources, load_id: uuid.UUID) -> list[LoadEvent]:
    async with resources.sessionmaker() as session:
        result = await session.execute(
            select(LoadEvent).where(LoadEvent.load_id == load_id).order_by(LoadEvent.id)
        )
        return list(result.scalars())


async def test_transition_not_listed_raises_409_naming_both_statuses(
    resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    load = await insert_load(resources.sessionmaker, shipper.organization, status=S.DRAFT)

    with pytest.raises(InvalidTransitionError) as caught:
        async with unit_of_work(resources.sessionmaker) as session:
            await transition_load(session, load.id, S.DELIVERED, Actor.system("test"))

    assert (caught.value.status, caught.value.extra) == (
        409,
        {"currentStatus": "DRAFT", "requestedStatus": "DELIVERED"},
    )


async def test_transition_of_unknown_load_is_not_found(resources: Resources) -> None:
    with pytest.raises(LoadNotFoundError):
        async with unit_of_work(resources.sessionmaker) as session:
            await transition_load(session, uuid.uuid4(), S.POSTED, Actor.system("test"))


async def test_transition_records_actor_reason_and_gps_fix(
    resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    load = await insert_load(
        resources.sessionmaker,
        shipper.organization,
        status=S.RELEASED,
        carrier=carrier.organization,
        commit_event=False,
    )

    async with unit_of_work(resources.sessionmaker) as session:
        await transition_load(
            session,
            load.id,
            S.IN_TRANSIT,
            Actor.gps("geofence: departed pickup"),
            reason="left the pickup geofence",
            gps_fix_id=987654321,
            expected_from={S.RELEASED},
        )

    [recorded] = await _events(resources, load.id)
    assert (
        recorded.from_status,
        recorded.to_status,
        recorded.actor_kind,
        recorded.actor_description,
        recorded.gps_fix_id,
    ) == (S.RELEASED, S.IN_TRANSIT, ActorKind.GPS, "geofence: departed pickup", 987654321)


async def test_transition_idempotent_second_apply_changes_nothing(
    resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    load = await insert_load(
        resources.sessionmaker,
        shipper.organization,
        status=S.IN_TRANSIT,
        carrier=carrier.organization,
        commit_event=False,
    )

    results = []
    for _ in range(2):
        async with unit_of_work(resources.sessionmaker) as session:
            results.append(
                await transition_load(
                    session, load.id, S.DELIVERED, Actor.gps("arrived"), idempotent=True
                )
            )

    assert ([r.applied for r in results], len(await _events(resources, load.id))) == (
        [True, False],
        1,
    )


async def test_transition_concurrent_changes_only_one_wins(
    resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    load = await insert_load(resources.sessionmaker, shipper.organization, commit_event=False)
    both_read = asyncio.Barrier(2)

    async def attempt(to_status: LoadStatus) -> str:
        try:
            async with unit_of_work(resources.sessionmaker) as session:
                await session.execute(select(Load.status).where(Load.id == load.id))
                await both_read.wait()
                await transition_load(
                    session,
                    load.id,
                    to_status,
                    Actor.system("race"),
                    changes={"assigned_carrier_organization_id": carrier.organization.id}
                    if to_status is S.ASSIGNED
                    else None,
                )
                # Hold the row lock a moment so the other transaction has to wait on it.
                await asyncio.sleep(0.2)
            return "won"
        except InvalidTransitionError:
            return "conflict"

    outcomes = await asyncio.gather(attempt(S.ASSIGNED), attempt(S.CANCELLED))

    assert (sorted(outcomes), len(await _events(resources, load.id))) == (["conflict", "won"], 1)


async def test_assign_concurrent_requests_for_two_carriers_only_one_wins(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carriers = [
        await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
        for _ in range(2)
    ]
    load = await insert_load(resources.sessionmaker, shipper.organization)
    for carrier in carriers:
        response = await client.put(f"/loads/{load.id}/interest", json={}, headers=carrier.headers)
        assert response.status_code == 200

    responses = await asyncio.gather(
        *(
            client.post(
                f"/loads/{load.id}/assign",
                json={"carrierOrganizationId": str(c.organization.id)},
                headers=shipper.headers,
            )
            for c in carriers
        )
    )

    assert sorted(r.status_code for r in responses) == [200, 409]


async def test_cancelled_load_cannot_be_posted_over_the_api(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    load = await insert_load(resources.sessionmaker, shipper.organization, status=S.CANCELLED)

    response = await client.post(f"/loads/{load.id}/post", headers=shipper.headers)

    body = response.json()
    assert (response.status_code, body["currentStatus"], body["requestedStatus"]) == (
        409,
        "CANCELLED",
        "POSTED",
    )


async def test_release_needs_a_driver_of_the_carrier(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    other = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    foreign_driver = await add_user(resources.sessionmaker, settings, other, Role.DRIVER)
    load = await insert_load(
        resources.sessionmaker,
        shipper.organization,
        status=S.ASSIGNED,
        carrier=carrier.organization,
    )

    response = await client.post(
        f"/loads/{load.id}/release",
        json={"driverUserId": str(foreign_driver.user.id)},
        headers=carrier.headers,
    )

    assert (response.status_code, response.json()["code"]) == (404, "driver_not_found")


async def test_expiry_expires_posted_loads_whose_pickup_window_ended(
    resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    overdue = await insert_load(
        resources.sessionmaker, shipper.organization, pickup_start=future(-6)
    )
    current = await insert_load(
        resources.sessionmaker, shipper.organization, pickup_start=future(6)
    )

    count = await expire_posted_loads(
        resources.sessionmaker, BoardCache(resources.redis, settings), batch_size=1
    )

    async with resources.sessionmaker() as session:
        statuses = dict((await session.execute(select(Load.id, Load.status))).all())
    assert (count, statuses[overdue.id], statuses[current.id]) == (1, S.EXPIRED, S.POSTED)


async def test_expiry_writes_a_system_event(resources: Resources, settings: Settings) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    overdue = await insert_load(
        resources.sessionmaker, shipper.organization, pickup_start=future(-6), commit_event=False
    )

    await expire_posted_loads(resources.sessionmaker, BoardCache(resources.redis, settings))

    [recorded] = await _events(resources, overdue.id)
    assert (recorded.from_status, recorded.to_status, recorded.actor_kind) == (
        S.POSTED,
        S.EXPIRED,
        ActorKind.SYSTEM,
    )


async def test_expiry_bumps_the_board_cache_generation(
    resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    await insert_load(resources.sessionmaker, shipper.organization, pickup_start=future(-6))
    cache = BoardCache(resources.redis, settings)
    before = await cache.generation()

    await expire_posted_loads(resources.sessionmaker, cache)

    assert await cache.generation() == (before or 0) + 1


async def test_event_count_matches_transitions(resources: Resources, settings: Settings) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    load = await insert_load(
        resources.sessionmaker, shipper.organization, status=S.DRAFT, commit_event=False
    )
    for target in (S.POSTED, S.CANCELLED):
        async with unit_of_work(resources.sessionmaker) as session:
            await transition_load(session, load.id, target, Actor.system("test"))

    async with resources.sessionmaker() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(LoadEvent).where(LoadEvent.load_id == load.id)
            )
        ).scalar_one()
    assert count == 2
