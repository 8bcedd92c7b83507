from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from superior_one.accounts.models import OrganizationType
from superior_one.app import create_app
from superior_one.auth.passwords import PasswordService
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import DEFAULT_PASSWORD, create_organization, create_user


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | None]]:
    calls: list[str | None] = []
    original = PasswordService.verify

    def counting(self: PasswordService, password_hash: str | None, password: str) -> bool:
        calls.append(password_hash)
        return original(self, password_hash, password)

    monkeypatch.setattr(PasswordService, "verify", counting)
    yield calls


async def test_login_unknown_email_matches_wrong_password(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    verify_calls: list[str | None],
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    user = await create_user(resources.sessionmaker, settings, org)

    unknown = await client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "whatever-123"}
    )
    wrong = await client.post("/auth/login", json={"email": user.email, "password": "nope-1234"})

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["code"] == wrong.json()["code"] == "invalid_credentials"
    assert unknown.json()["detail"] == wrong.json()["detail"]
    # Both paths run exactly one argon2 verification, so they take similar time.
    assert len(verify_calls) == 2


async def test_login_limited_per_account(settings: Settings, resources: Resources) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    user = await create_user(resources.sessionmaker, settings, org)
    limited = settings.model_copy(update={"login_limit_per_account": "3/minute"})
    application = create_app(limited)

    async with application.router.lifespan_context(application):
        statuses = await _attempts(application, user.email, "wrong-password", 4)
        correct = await _attempts(application, user.email, DEFAULT_PASSWORD, 1)

    assert statuses == [401, 401, 401, 429]
    assert correct == [429]


async def test_login_limited_per_address(settings: Settings) -> None:
    limited = settings.model_copy(update={"login_limit_per_address": "2/minute"})
    application = create_app(limited)

    async with application.router.lifespan_context(application):
        statuses = [
            (await _attempts(application, f"user{i}@example.com", "wrong-password", 1))[0]
            for i in range(3)
        ]

    assert statuses == [401, 401, 429]


async def test_login_limit_response_has_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"login_limit_per_account": "1/minute"})
    application = create_app(limited)

    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            body = {"email": "someone@example.com", "password": "wrong-password"}
            await client.post("/auth/login", json=body)
            response = await client.post("/auth/login", json=body)

    assert response.status_code == 429
    assert response.json()["code"] == "login_rate_limited"
    assert 0 < int(response.headers["retry-after"]) <= 60


async def _attempts(application: FastAPI, email: str, password: str, count: int) -> list[int]:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return [
            (
                await client.post("/auth/login", json={"email": email, "password": password})
            ).status_code
            for _ in range(count)
        ]


async def test_login_successes_are_not_counted(settings: Settings, resources: Resources) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    user = await create_user(resources.sessionmaker, settings, org)
    limited = settings.model_copy(update={"login_limit_per_address": "2/minute"})
    application = create_app(limited)

    async with application.router.lifespan_context(application):
        statuses = await _attempts(application, user.email, DEFAULT_PASSWORD, 4)

    assert statuses == [200, 200, 200, 200]
