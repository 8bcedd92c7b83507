"""The gps-consumer: storage, acknowledgement, positions by fix time, exactly-once effects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.geo.geodesy import LatLng, destination
from superior_one.loads.models import LoadStatus
from superior_one.redis import key
from superior_one.resources import Resources
from superior_one.tracking.fixes import Fix, fix_id_for
from superior_one.tracking.models import TruckPosition
from superior_one.tracking.stream import BufferedFix, GpsStream
from tests.tracking.factories import (
    PICKUP,
    Haul,
    consumer,
    fix,
    gps_load_events,
    load_status,
    ping,
    ping_batch,
    released_load,
    stored_fixes,
)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _away(metres: float) -> tuple[float, float]:
    point = destination(LatLng(*PICKUP), 90.0, metres)
    return point.lat, point.lng


async def _pickup_and_departure(client: httpx.AsyncClient, haul: Haul) -> None:
    """Dwell at pickup for two minutes, then leave: one batch, proven pickup."""
    start = _now() - timedelta(minutes=10)
    fixes = [fix(start + timedelta(seconds=30 * i), *PICKUP) for i in range(5)]
    fixes += [
        fix(start + timedelta(seconds=150 + 30 * i), *_away(700 + 750 * i), speed=25.0)
        for i in range(3)
    ]
    response = await ping_batch(client, haul, fixes)
    assert response.json()["accepted"] == len(fixes)


async def test_consumer_acknowledges_and_deletes_entries_after_the_write(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await ping(client, haul, fix(_now(), *PICKUP))
    stream_key = key(settings, "gps", "stream")

    await consumer(resources).drain()
    pending = await resources.redis.xpending(stream_key, settings.gps_consumer_group)

    assert pending["pending"] == 0
    assert await resources.redis.xlen(stream_key) == 0


async def test_consumer_moves_load_in_transit_after_proven_pickup(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _pickup_and_departure(client, haul)

    await consumer(resources).drain()

    assert await load_status(resources, haul.load.id) is LoadStatus.IN_TRANSIT


async def test_transition_cites_the_departure_fix(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _pickup_and_departure(client, haul)

    await consumer(resources).drain()
    events = await gps_load_events(resources, haul.load.id)
    stored = {f.id: f for f in await stored_fixes(resources, haul.load.id)}
    moved = [e for e in events if e.to_status is LoadStatus.IN_TRANSIT]

    assert len(moved) == 1
    assert moved[0].gps_fix_id in stored
    # The second confidently-outside fix: 1.45 km out, the seventh fix of the batch.
    assert stored[moved[0].gps_fix_id].lng == _away(1450)[1]


async def test_same_entries_processed_twice_store_and_decide_once(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _pickup_and_departure(client, haul)
    stream = GpsStream(resources.redis, settings)
    await stream.ensure_group()
    entries = await stream.read_new("reader", 100, None)

    # As when a consumer dies after its commit and another claims its entries.
    await consumer(resources, "a").process(entries)
    await consumer(resources, "b").process(entries)

    assert len(await stored_fixes(resources, haul.load.id)) == 8
    assert len(await gps_load_events(resources, haul.load.id)) == 2  # arrival, departure


async def test_two_consumers_at_once_apply_the_transition_once(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _pickup_and_departure(client, haul)
    stream = GpsStream(resources.redis, settings)
    await stream.ensure_group()
    entries = await stream.read_new("reader", 100, None)

    await asyncio.gather(
        consumer(resources, "a").process(entries), consumer(resources, "b").process(entries)
    )
    moved = [
        e
        for e in await gps_load_events(resources, haul.load.id)
        if e.to_status is LoadStatus.IN_TRANSIT
    ]

    assert len(moved) == 1


async def test_latest_position_follows_fix_time_not_arrival(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    await ping(client, haul, fix(now, *PICKUP))
    await consumer(resources).drain()
    # A dead zone's stored fix arrives after the newer one.
    await ping_batch(client, haul, [fix(now - timedelta(minutes=5), *_away(3000), speed=20.0)])
    await consumer(resources).drain()

    async with unit_of_work(resources.sessionmaker) as session:
        position = (
            await session.execute(
                select(TruckPosition).where(TruckPosition.driver_user_id == haul.driver.user.id)
            )
        ).scalar_one()
    stream = GpsStream(resources.redis, settings)
    details = await stream.position_details(
        haul.dispatcher.organization.id, [str(haul.driver.user.id)]
    )

    assert position.fix_time == now
    assert details[str(haul.driver.user.id)][0] == now


async def test_late_fixes_are_stored_in_fix_time_order(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    await ping(client, haul, fix(now, *PICKUP))
    late = [fix(now - timedelta(minutes=m), *_away(3000 + 500 * m), speed=20.0) for m in (6, 5)]
    await ping_batch(client, haul, late)

    await consumer(resources).drain()
    stored = await stored_fixes(resources, haul.load.id)

    assert [f.fix_time for f in stored] == [
        now - timedelta(minutes=6),
        now - timedelta(minutes=5),
        now,
    ]


async def test_fixes_of_a_cancelled_load_are_stored_not_evaluated(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await _pickup_and_departure(client, haul)
    async with unit_of_work(resources.sessionmaker) as session:
        from superior_one.loads.lifecycle import Actor, transition_load

        await transition_load(session, haul.load.id, LoadStatus.CANCELLED, Actor.system("test"))

    await consumer(resources).drain()

    assert len(await stored_fixes(resources, haul.load.id)) == 8
    assert await gps_load_events(resources, haul.load.id) == []


async def _wait_for_stored(resources: Resources, haul: Haul, count: int) -> int:
    for _ in range(250):
        stored = len(await stored_fixes(resources, haul.load.id))
        if stored >= count:
            return stored
        await asyncio.sleep(0.02)
    return stored


async def test_consumer_lingers_after_a_small_batch(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await ping(client, haul, fix(_now() - timedelta(seconds=60), *PICKUP))
    gps_consumer = consumer(resources)
    gps_consumer.linger_s = 0.5
    stop = asyncio.Event()
    running = asyncio.create_task(gps_consumer.run(stop))
    assert await _wait_for_stored(resources, haul, 1) == 1

    # Sent while the consumer lingers: stored only once the linger is over.
    await ping(client, haul, fix(_now(), *PICKUP))
    await asyncio.sleep(0.25)
    stored_during_linger = len(await stored_fixes(resources, haul.load.id))
    stored_after_linger = await _wait_for_stored(resources, haul, 2)
    stop.set()
    await running

    assert stored_during_linger == 1
    assert stored_after_linger == 2


def _buffered(haul: Haul, fix_time: datetime, source: str) -> BufferedFix:
    driver = haul.driver.user.id
    return BufferedFix(
        load_id=haul.load.id,
        driver_user_id=driver,
        carrier_organization_id=haul.dispatcher.organization.id,
        sender_user_id=driver,
        received_at=datetime.now(UTC),
        fix=Fix(
            fix_id=fix_id_for(str(driver), fix_time),
            fix_time=fix_time,
            lat=PICKUP[0],
            lng=PICKUP[1],
            accuracy_m=10.0,
            source=source,
        ),
    )


async def test_consumer_sets_aside_entry_the_database_rejects(
    resources: Resources, settings: Settings
) -> None:
    # PostgreSQL text cannot hold NUL: that entry fails on every attempt and must
    # not hold back the good entries read in the same batch.
    good_haul = await released_load(resources, settings)
    bad_haul = await released_load(resources, settings)
    stream = GpsStream(resources.redis, settings)
    await stream.append([_buffered(good_haul, _now() - timedelta(seconds=60), "gps")])
    bad_id = await stream.append([_buffered(bad_haul, _now() - timedelta(seconds=30), "g\x00ps")])
    await stream.append([_buffered(good_haul, _now(), "gps")])

    await consumer(resources).drain()

    assert len(await stored_fixes(resources, good_haul.load.id)) == 2
    assert await stored_fixes(resources, bad_haul.load.id) == []
    stream_key = key(settings, "gps", "stream")
    assert await resources.redis.xlen(stream_key) == 0
    dead = await resources.redis.xrange(key(settings, "gps", "stream", "dead"))
    assert [fields[b"id"] for _, fields in dead] == [bad_id]
