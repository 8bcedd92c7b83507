from __future__ import annotations

import httpx
from fastapi import FastAPI


async def test_live_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200


async def test_ready_reports_all_checks_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


async def test_ready_fails_when_migrations_behind(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.migration_heads = {"9999_not_applied"}

    response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "behind"
