"""A gps-consumer process killed (SIGKILL) mid-batch: another claims its entries, and
nothing is lost or stored twice, and no load moves twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.geo.geodesy import LatLng, destination
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from superior_one.tracking.fixes import Fix
from superior_one.tracking.stream import BufferedFix, GpsStream
from tests.tracking.factories import (
    PICKUP,
    Haul,
    consumer,
    count_fixes,
    gps_load_events,
    load_status,
    released_load,
)

FIXES_PER_TRUCK = 5000
ENTRY_SIZE = 500
TRUCKS = 4
CLI = Path(sys.executable).with_name("superior-one")


def _drive(haul: Haul, start: datetime) -> list[BufferedFix]:
    """One fix a second: five minutes parked at pickup, then east at 20 m/s."""
    fixes = []
    for i in range(FIXES_PER_TRUCK):
        moving = i >= 300
        point = destination(LatLng(*PICKUP), 90.0, 20.0 * (i - 300)) if moving else None
        fixes.append(
            BufferedFix(
                load_id=haul.load.id,
                driver_user_id=haul.driver.user.id,
                carrier_organization_id=haul.dispatcher.organization.id,
                sender_user_id=haul.driver.user.id,
                received_at=datetime.now(UTC),
                fix=Fix(
                    fix_id=f"{haul.driver.user.id}/{i}",
                    fix_time=start + timedelta(seconds=i),
                    lat=point.lat if point else PICKUP[0],
                    lng=point.lng if point else PICKUP[1],
                    accuracy_m=10.0,
                    speed_mps=20.0 if moving else 0.0,
                ),
            )
        )
    return fixes


def _start_victim(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SO_ENVIRONMENT": "test",
        "SO_DATABASE_URL": settings.database_url,
        "SO_REDIS_URL": settings.redis_url,
        "SO_REDIS_NAMESPACE": settings.redis_namespace,
        "SO_METRICS_PORT_GPS_CONSUMER": "0",
        "SO_LOG_LEVEL": "WARNING",
        # The victim must not claim anything itself; it only reads new entries.
        "SO_GPS_CONSUMER_CLAIM_IDLE_S": "600",
    }
    return subprocess.Popen(  # noqa: S603 - our own command line
        [str(CLI), "gps-consumer", "--name", "victim", "--batch-entries", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _victim_pending(stream: GpsStream) -> int:
    for info in await stream.redis.xinfo_consumers(stream.stream_key, stream.group):
        if info["name"] in (b"victim", "victim"):
            return int(info["pending"])
    return 0


async def _kill_mid_batch(settings: Settings, stream: GpsStream, resources: Resources) -> int:
    """Start a consumer process and SIGKILL it while it holds unacknowledged entries.

    A kill can land in the instant between one batch's acknowledgement and the
    next read; then the process is started again and killed again.
    """
    for _ in range(3):
        victim = _start_victim(settings)
        try:
            deadline = time.monotonic() + 90
            while await count_fixes(resources) == 0:
                assert victim.poll() is None, "the consumer process exited by itself"
                assert time.monotonic() < deadline, "the consumer never stored a batch"
                await asyncio.sleep(0.01)
            while True:  # polling another process's state: no event to wait on
                if await _victim_pending(stream) > 0:
                    break
                await asyncio.sleep(0.001)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
        finally:
            if victim.poll() is None:
                victim.kill()
        if (left := await _victim_pending(stream)) > 0:
            return left
    return 0


async def test_killed_consumer_loses_nothing_and_duplicates_nothing(
    resources: Resources, settings: Settings
) -> None:
    window_start = datetime.now(UTC) - timedelta(hours=4)
    hauls = [
        await released_load(resources, settings, pickup_start=window_start) for _ in range(TRUCKS)
    ]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    stream = GpsStream(resources.redis, settings)
    await stream.ensure_group()
    for haul in hauls:
        fixes = _drive(haul, start)
        for offset in range(0, FIXES_PER_TRUCK, ENTRY_SIZE):
            await stream.append(fixes[offset : offset + ENTRY_SIZE])

    left_pending = await _kill_mid_batch(settings, stream, resources)
    stored_before_rescue = await count_fixes(resources)
    await asyncio.sleep(1.0)
    await consumer(resources, "rescuer", claim_idle_s=0.5).drain()

    async with unit_of_work(resources.sessionmaker) as session:
        distinct = (
            await session.execute(
                text("SELECT count(DISTINCT (driver_user_id, fix_time)) FROM geo_events")
            )
        ).scalar_one()
    pending = await resources.redis.xpending(stream.stream_key, stream.group)

    assert left_pending > 0  # killed with entries read but not acknowledged
    assert 0 < stored_before_rescue < TRUCKS * FIXES_PER_TRUCK
    assert await count_fixes(resources) == TRUCKS * FIXES_PER_TRUCK
    assert distinct == TRUCKS * FIXES_PER_TRUCK
    assert pending["pending"] == 0
    assert await resources.redis.xlen(stream.stream_key) == 0
    for haul in hauls:
        events = await gps_load_events(resources, haul.load.id)
        assert [e.to_status for e in events] == [LoadStatus.RELEASED, LoadStatus.IN_TRANSIT]
        assert await load_status(resources, haul.load.id) is LoadStatus.IN_TRANSIT


async def test_consumer_names_are_unique_per_process(resources: Resources) -> None:
    first = consumer(resources, name=None)
    assert str(os.getpid()) in first.name
    assert first.name != consumer(resources, name=f"other-{uuid.uuid4().hex[:4]}").name
