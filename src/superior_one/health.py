"""Liveness and readiness probes.

``/health/live`` answers while the process runs. ``/health/ready`` checks
PostgreSQL, that migrations are at head, and Redis; Redis being down reports
``degraded`` with 200, because the platform keeps serving without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from superior_one.redis import REDIS_UNAVAILABLE_ERRORS

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    checks: dict[str, Any] = {}

    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), state.engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            applied = {r[0] for r in rows}
        expected = state.migration_heads
        checks["database"] = "ok"
        checks["migrations"] = "ok" if applied == expected else "behind"
    except Exception as exc:  # any failure here means "not ready", whatever its type
        checks["database"] = f"unavailable: {type(exc).__name__}"
        checks["migrations"] = "unknown"

    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await state.redis.ping()
        checks["redis"] = "ok"
    except REDIS_UNAVAILABLE_ERRORS as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"

    if checks["database"] != "ok" or checks["migrations"] != "ok":
        status, code = "unavailable", 503
    elif checks["redis"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JSONResponse({"status": status, "checks": checks}, status_code=code)
