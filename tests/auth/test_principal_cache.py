"""Principal cache: no query on a hit, revocation seen everywhere at once, Redis-down fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from superior_one.accounts.models import OrganizationType, Role
from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_organization, create_user

REVOCATION_DEADLINE_S = 1.0


@contextmanager
def count_queries(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Start one more api 'process': its own engine, Redis client and caches."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await application.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield application, client


async def _wait_for_status(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, deadline_s: float
) -> float:
    started = time.perf_counter()
    while True:
        response = await client.get("/me", headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code == status or elapsed > deadline_s:
            return elapsed if response.status_code == status else float("inf")
        await asyncio.sleep(0.02)


async def test_cached_principal_needs_no_query(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, resources: Resources
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    user = await create_user(resources.sessionmaker, settings, org)
    headers = auth_headers(settings, user)
    assert (await client.get("/health/live")).status_code == 200
    warm = await client.post("/auth/logout", headers=headers, json={})
    assert warm.status_code == 204

    with count_queries(app.state.engine) as statements:
        principal = await app.state.principal_cache.get(user.id)
    assert principal is not None
    assert statements == []


async def test_uncached_principal_is_loaded_with_one_query(
    app: FastAPI, settings: Settings, resources: Resources
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    user = await create_user(resources.sessionmaker, settings, org)

    with count_queries(app.state.engine) as statements:
        await app.state.principal_cache.get(user.id)
    assert len(statements) == 1


async def test_deactivated_user_rejected_on_every_process_within_a_second(
    settings: Settings, resources: Resources
) -> None:
    carrier = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    dispatcher = await create_user(resources.sessionmaker, settings, carrier, Role.DISPATCHER)
    admin = await create_user(resources.sessionmaker, settings, carrier, Role.ORG_ADMIN)
    headers = auth_headers(settings, dispatcher)

    async with running_app(settings) as (_, worker_1), running_app(settings) as (_, worker_2):
        login = await worker_1.post(
            "/auth/login", json={"email": dispatcher.email, "password": DEFAULT_PASSWORD}
        )
        refresh_token = login.json()["refreshToken"]
        # Warm both processes' caches.
        assert (await worker_1.get("/me", headers=headers)).status_code == 200
        assert (await worker_2.get("/me", headers=headers)).status_code == 200

        deactivate = await worker_1.patch(
            f"/users/{dispatcher.id}",
            headers=auth_headers(settings, admin),
            json={"is_active": False},
        )
        assert deactivate.status_code == 200, deactivate.text

        elapsed_1 = await _wait_for_status(worker_1, headers, 401, REVOCATION_DEADLINE_S)
        elapsed_2 = await _wait_for_status(worker_2, headers, 401, REVOCATION_DEADLINE_S)
        refresh = await worker_2.post("/auth/refresh", json={"refreshToken": refresh_token})

    assert elapsed_1 < REVOCATION_DEADLINE_S
    assert elapsed_2 < REVOCATION_DEADLINE_S
    assert refresh.status_code == 401


async def test_reactivation_does_not_revive_old_tokens(
    client: httpx.AsyncClient, settings: Settings, resources: Resources
) -> None:
    carrier = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    dispatcher = await create_user(resources.sessionmaker, settings, carrier, Role.DISPATCHER)
    admin_headers = auth_headers(
        settings, await create_user(resources.sessionmaker, settings, carrier, Role.ORG_ADMIN)
    )
    old_headers = auth_headers(settings, dispatcher)

    for active in (False, True):
        response = await client.patch(
            f"/users/{dispatcher.id}", headers=admin_headers, json={"isActive": active}
        )
        assert response.status_code == 200

    after = await client.get("/me", headers=old_headers)
    assert after.status_code == 401
    assert after.json()["code"] == "token_revoked"
    relogin = await client.post(
        "/auth/login", json={"email": dispatcher.email, "password": DEFAULT_PASSWORD}
    )
    assert relogin.status_code == 200


async def test_deactivated_organization_rejects_its_users(
    client: httpx.AsyncClient, settings: Settings, resources: Resources
) -> None:
    platform = await create_organization(resources.sessionmaker, OrganizationType.PLATFORM)
    platform_admin = await create_user(
        resources.sessionmaker, settings, platform, Role.PLATFORM_ADMIN
    )
    carrier = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    dispatcher = await create_user(resources.sessionmaker, settings, carrier)
    headers = auth_headers(settings, dispatcher)
    assert (await client.get("/me", headers=headers)).status_code == 200

    response = await client.patch(
        f"/admin/organizations/{carrier.id}",
        headers=auth_headers(settings, platform_admin),
        json={"isActive": False},
    )
    assert response.status_code == 200

    assert (await client.get("/me", headers=headers)).status_code == 401


async def test_role_change_revokes_tokens(
    client: httpx.AsyncClient, settings: Settings, resources: Resources
) -> None:
    carrier = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    driver = await create_user(resources.sessionmaker, settings, carrier, Role.DRIVER)
    admin = await create_user(resources.sessionmaker, settings, carrier, Role.ORG_ADMIN)
    headers = auth_headers(settings, driver)
    assert (await client.get("/me", headers=headers)).status_code == 200

    response = await client.patch(
        f"/users/{driver.id}", headers=auth_headers(settings, admin), json={"role": "DISPATCHER"}
    )
    assert response.status_code == 200

    assert (await client.get("/me", headers=headers)).status_code == 401


async def test_auth_falls_back_to_database_when_redis_is_down(
    settings: Settings, resources: Resources
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    user = await create_user(resources.sessionmaker, settings, org, Role.ORG_ADMIN)
    # Port 1 on loopback refuses connections: Redis is "down" for this process.
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})

    application = create_app(down)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            me = await client.get("/me", headers=auth_headers(settings, user))
            login = await client.post(
                "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
            )
            ready = await client.get("/health/ready")

    assert me.status_code == 200
    assert login.status_code == 200
    assert ready.json()["status"] == "degraded"


@pytest.mark.parametrize("local_ttl", [0.0, 30.0])
async def test_cache_entry_dropped_after_invalidation(
    settings: Settings, resources: Resources, local_ttl: float
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    user = await create_user(resources.sessionmaker, settings, org)
    configured = settings.model_copy(update={"principal_local_ttl_s": local_ttl})

    async with running_app(configured) as (application, _):
        cache = application.state.principal_cache
        await cache.get(user.id)
        await cache.invalidate([user.id])
        with count_queries(application.state.engine) as statements:
            await cache.get(user.id)

    assert len(statements) == 1
