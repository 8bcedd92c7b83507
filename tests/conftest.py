"""Shared fixtures: a real PostgreSQL database and Redis database per test worker.

Each pytest-xdist worker gets its own database (``so_test_<worker>``, migrated
once per run) and its own Redis database number and key namespace. Every test
starts clean: tables are truncated and the Redis database is flushed before it
runs. Reference tables filled by migrations are kept.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis as redis_sync
from fastapi import FastAPI

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.migrate import upgrade_to_heads
from superior_one.resources import Resources, open_resources

ADMIN_DSN = os.environ.get("SO_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("SO_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_CASES_DIR = Path(__file__).resolve().parents[2] / "shared" / "cases"

# Tables whose rows come from migrations (reference data) and survive cleaning.
PRESERVED_TABLES = frozenset(
    {"alembic_version", "spatial_ref_sys", "equipment_types", "equipment_rules"}
)


def _worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else 0


# Several pytest runs may share this machine's servers at once (developers, CI):
# each run names its databases and Redis keys after its own id. xdist gives all
# workers of one run the same TESTRUNUID.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
RUN_SCOPE = f"{RUN_ID}_{_worker_number()}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"so_test_{RUN_SCOPE}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade_to_heads(Settings(database_url=url, environment="test"))
    yield url
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_namespace() -> str:
    return f"so-test-{RUN_SCOPE}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    # Database 0 belongs to the development platform; workers use 1..15.
    return f"{REDIS_BASE_URL}/{1 + _worker_number() % 15}"


@pytest.fixture(scope="session")
def _truncate_statement(database_url: str) -> str:
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'tiger', "
            "'tiger_data', 'topology')"
        ).fetchall()
    tables = [r[0] for r in rows if r[0].split(".")[-1] not in PRESERVED_TABLES]
    return f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE" if tables else ""


@pytest.fixture(autouse=True)
def clean_state(
    database_url: str, redis_url: str, redis_namespace: str, _truncate_statement: str
) -> None:
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    if _truncate_statement:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(_truncate_statement)
    # Only this run's keys are deleted: another run may share the Redis database.
    client = redis_sync.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{redis_namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def settings(database_url: str, redis_url: str, redis_namespace: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        # Generous: a loaded CI machine must not turn a slow reply into "Redis down".
        redis_socket_timeout_s=3.0,
        db_pool_size=5,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        jwt_secret="test-secret-that-is-long-enough-for-hs256-signing",
    )


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    async with open_resources(settings) as opened:
        yield opened


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await application.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
