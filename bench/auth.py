"""Benchmark: authenticated requests with the cached principal vs a database lookup.

Runs the api under granian on 127.0.0.1 twice, once as built and once with the
replaced system's per-request user and organization queries, and drives both
with wrk. Also measures, in process, how many queries a cached request makes
and the time authentication adds at p99.

    .venv/bin/python -m bench.auth            # full run, about 1 minute
    .venv/bin/python -m bench.auth --quick    # about 20 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from sqlalchemy import event
from starlette.requests import Request

from bench.common import (
    RESULTS_DIR,
    fresh_database,
    machine_description,
    now_iso,
    run_wrk,
    server,
)
from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.app import create_app
from superior_one.auth.dependencies import get_principal
from superior_one.auth.passwords import PasswordService
from superior_one.auth.tokens import issue_access_token
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.resources import open_resources

ENDPOINT = "/auth/whoami"


async def _create_user(settings: Settings) -> User:
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        organization = Organization(name="Bench Carrier", type=OrganizationType.CARRIER)
        session.add(organization)
        await session.flush()
        user = User(
            organization_id=organization.id,
            email="bench@example.com",
            password_hash=PasswordService(settings).hash("bench-password-123"),
            role=Role.DISPATCHER,
        )
        session.add(user)
        await session.flush()
        return user


def user_with_token(settings: Settings) -> str:
    """Create a user in ``settings``' database and return an access token for it."""
    user = asyncio.run(_create_user(settings))
    return issue_access_token(
        settings,
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role.value,
        token_version=1,
    )


async def _in_process_figures(settings: Settings, token: str, iterations: int) -> dict[str, float]:
    """Count queries per cached request and time the authentication dependency."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        scope: dict[str, Any] = {
            "type": "http",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "app": app,
        }
        await get_principal(Request(scope))  # warm the caches

        queries = 0

        def count(*_args: Any) -> None:
            nonlocal queries
            queries += 1

        event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
        durations = []
        for _ in range(iterations):
            started = time.perf_counter()
            await get_principal(Request(scope))
            durations.append((time.perf_counter() - started) * 1000)
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", count)

    durations.sort()
    return {
        "db_queries_per_cached_request": queries / iterations,
        "auth_added_p50_ms": round(statistics.median(durations), 4),
        "auth_added_p99_ms": round(durations[int(len(durations) * 0.99) - 1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, under a minute")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    args = parser.parse_args()
    seconds = 5 if args.quick else 20

    database_url = fresh_database("so_bench_auth")
    settings = Settings(
        database_url=database_url, redis_namespace="so-bench-auth", log_level="WARNING"
    )
    token = user_with_token(settings)
    env = {
        "SO_DATABASE_URL": database_url,
        "SO_REDIS_NAMESPACE": "so-bench-auth",
        "SO_LOG_LEVEL": "WARNING",
        "SO_ACCESS_TOKEN_TTL_S": "3600",
    }
    headers = {"Authorization": f"Bearer {token}"}

    with server("bench.auth_apps:create_cached_app", env) as url:
        run_wrk(url + ENDPOINT, seconds=2, connections=args.connections, headers=headers)
        cached = run_wrk(
            url + ENDPOINT, seconds=seconds, connections=args.connections, headers=headers
        )
    with server("bench.auth_apps:create_db_lookup_app", env) as url:
        run_wrk(url + ENDPOINT, seconds=2, connections=args.connections, headers=headers)
        lookup = run_wrk(
            url + ENDPOINT, seconds=seconds, connections=args.connections, headers=headers
        )
    in_process = asyncio.run(_in_process_figures(settings, token, 2000 if args.quick else 20000))

    result = {
        "date": now_iso(),
        "machine": machine_description(),
        "command": "python -m bench.auth" + (" --quick" if args.quick else ""),
        "endpoint": ENDPOINT,
        "server": "granian, 1 worker",
        "load": f"wrk, 1 thread, {args.connections} connections, {seconds} s per variant",
        "rps_cached": round(cached["rps"], 1),
        "rps_db_lookup": round(lookup["rps"], 1),
        "p50_ms_cached": cached["p50_ms"],
        "p99_ms_cached": cached["p99_ms"],
        "p50_ms_db_lookup": lookup["p50_ms"],
        "p99_ms_db_lookup": lookup["p99_ms"],
        "errors_cached": cached["errors"],
        "errors_db_lookup": lookup["errors"],
        **in_process,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "auth.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
