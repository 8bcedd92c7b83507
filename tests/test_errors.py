"""One problem-details envelope for every error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.db import SessionDep
from superior_one.errors import PROBLEM_CONTENT_TYPE
from superior_one.schemas import RequestSchema

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "requestId"}


class _AmountIn(RequestSchema):
    amount_cents: int
    memo: str | None = None


@pytest.fixture
async def failing_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)

    @application.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at db host 10.0.0.5")

    @application.post("/amounts")
    async def amounts(body: _AmountIn) -> dict[str, int]:
        return {"amountCents": body.amount_cents}

    @application.get("/store-text")
    async def store_text(session: SessionDep, value: str) -> None:
        # Unvalidated text straight to PostgreSQL, as a route missing a check would send it.
        await session.execute(text("SELECT CAST(:value AS text)"), {"value": value + "\x00"})

    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_validation_error_lists_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", json={"email": "not-an-email"})

    body = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert body["code"] == "validation_failed"
    assert {e["field"] for e in body["errors"]} == {"email", "password"}
    assert body.keys() >= PROBLEM_MEMBERS


async def test_unknown_field_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login", json={"email": "a@example.com", "password": "x", "admin": True}
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["admin"]


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-route")

    assert response.status_code == 404
    assert response.json()["code"] == "route_not_found"
    assert response.json().keys() >= PROBLEM_MEMBERS


async def test_server_error_hides_internals(failing_client: httpx.AsyncClient) -> None:
    response = await failing_client.get("/boom")

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "hunter2" not in response.text
    assert "10.0.0.5" not in response.text
    assert "RuntimeError" not in response.text


async def test_request_id_echoed_in_header_and_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"X-Request-ID": "req-abc-12345"})

    assert response.headers["x-request-id"] == "req-abc-12345"
    assert response.json()["requestId"] == "req-abc-12345"


async def test_declared_oversized_body_gets_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = b'{"email": "' + b"a" * settings.max_body_bytes + b'"}'

    response = await client.post(
        "/auth/login", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


async def test_streamed_oversized_body_gets_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"a" * 65536

    response = await client.post(
        "/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


async def test_malformed_json_names_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000 + b"]" * 200_000, b'{"email": "a@example.com", "password": "\xff\xfe"}'],
    ids=["deeply_nested", "not_utf8"],
)
async def test_unreadable_body_names_body_and_fix(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/auth/login", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body"]
    assert "UTF-8 encoded JSON" in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_content_type_names_header(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/auth/login",
        content=b'{"email": "a@example.com", "password": "x"}',
        headers={"content-type": content_type},
    )

    assert response.status_code == 422
    assert "Content-Type: application/json" in response.json()["detail"]
    assert "Content-Type: application/json" in response.json()["errors"][0]["message"]


async def test_unauthenticated_response_names_bearer_scheme(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_nul_character_in_body_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login", json={"email": "a@example.com", "password": "pass\u0000word"}
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["password"]
    assert "NUL" in response.json()["errors"][0]["message"]


async def test_nul_character_in_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/loads?commodity=%00sand&limit=5")

    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert [e["field"] for e in response.json()["errors"]] == ["commodity"]


async def test_boolean_for_number_is_422(failing_client: httpx.AsyncClient) -> None:
    rejected = await failing_client.post("/amounts", json={"amountCents": True})
    accepted = await failing_client.post("/amounts", json={"amountCents": 1})

    assert rejected.status_code == 422
    assert [e["field"] for e in rejected.json()["errors"]] == ["amountCents"]
    assert accepted.json() == {"amountCents": 1}


async def test_value_the_database_rejects_is_422(failing_client: httpx.AsyncClient) -> None:
    response = await failing_client.get("/store-text", params={"value": "sand"})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_value"
