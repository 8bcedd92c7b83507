"""Redis unavailable: the api writes fixes straight to PostgreSQL, and nothing is lost."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from tests.tracking.factories import (
    PICKUP,
    consumer,
    fence_events,
    fix,
    gps_load_events,
    ping,
    ping_batch,
    released_load,
    stored_fixes,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


@pytest.fixture
async def client_without_redis(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"})
    app: FastAPI = create_app(down)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def test_ping_without_redis_is_accepted_into_postgresql(
    client_without_redis: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await ping(client_without_redis, haul, fix(_now(), *PICKUP))
    stored = await stored_fixes(resources, haul.load.id)

    assert response.status_code == 202
    assert response.json()["bufferedIn"] == "database"
    assert len(stored) == 1
    assert stored[0].geofence_pending


async def test_retry_without_redis_is_duplicate_and_stored_once(
    client_without_redis: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    body = fix(_now(), *PICKUP, client_fix_id="offline-1")

    await ping(client_without_redis, haul, body)
    retry = await ping(client_without_redis, haul, body)

    assert retry.json()["results"][0]["status"] == "duplicate"
    assert len(await stored_fixes(resources, haul.load.id)) == 1


async def test_jump_check_without_redis_uses_stored_fixes(
    client_without_redis: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    await ping(client_without_redis, haul, fix(now - timedelta(seconds=30), *PICKUP))

    response = await ping(client_without_redis, haul, fix(now, PICKUP[0] + 0.1, PICKUP[1]))

    assert response.json()["reason"] == "impossible_speed"


async def test_consumer_sweep_evaluates_fixes_written_without_redis(
    client_without_redis: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    start = _now() - timedelta(minutes=5)
    dwell = [fix(start + timedelta(seconds=30 * i), *PICKUP) for i in range(4)]
    await ping_batch(client_without_redis, haul, dwell)

    swept = await consumer(resources).sweep()
    stored = await stored_fixes(resources, haul.load.id)
    arrivals = [e for e in await fence_events(resources, haul.load.id)
                if e.event_type == "ARRIVED_PICKUP"]  # fmt: skip

    assert swept == 4
    assert not any(f.geofence_pending for f in stored)
    assert len(arrivals) == 1
    assert [e.to_status for e in await gps_load_events(resources, haul.load.id)] == [
        LoadStatus.RELEASED
    ]


async def test_fixes_after_redis_returns_join_the_same_history(
    client_without_redis: httpx.AsyncClient,
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    await ping(client_without_redis, haul, fix(now - timedelta(seconds=60), *PICKUP))

    await ping(client, haul, fix(now, *PICKUP))
    await consumer(resources).drain()

    assert [f.fix_time for f in await stored_fixes(resources, haul.load.id)] == [
        now - timedelta(seconds=60),
        now,
    ]
