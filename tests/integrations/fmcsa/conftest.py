"""Fixtures for the FMCSA tests: the local simulator, settings pointing at it,
and clients whose Redis keys live under a namespace unique to the test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.integrations.fmcsa import FmcsaClient
from superior_one.redis import create_redis
from superior_one.simulators.fmcsa import SimulatorServer

WEB_KEY = "test-web-key"
QCMOBILE_DIR = Path(__file__).resolve().parents[3] / "../shared/data/fmcsa/qcmobile"
REVOCATIONS_DIR = Path(__file__).resolve().parents[3] / "../shared/data/fmcsa/revocations"


@pytest.fixture
def qcmobile_dir() -> Path:
    if not QCMOBILE_DIR.is_dir():
        pytest.skip(f"QCMobile sample replies not found at {QCMOBILE_DIR.resolve()}")
    return QCMOBILE_DIR.resolve()


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    data_dir = QCMOBILE_DIR.resolve() if QCMOBILE_DIR.is_dir() else None
    with SimulatorServer(web_key=WEB_KEY, data_dir=data_dir) as server:
        yield server


@pytest.fixture
def fmcsa_settings(settings: Settings, simulator: SimulatorServer) -> Settings:
    """Settings aimed at the simulator with fast retries and a generous budget.

    Tests about the budget or the breaker override those figures themselves.
    """
    return settings.model_copy(
        update={
            "redis_namespace": f"so-test-{uuid.uuid4().hex}",
            "fmcsa_base_url": simulator.base_url,
            "fmcsa_web_key": SecretStr(WEB_KEY),
            "fmcsa_read_timeout_s": 2.0,
            "fmcsa_call_budget": "1000/minute",
            "fmcsa_budget_max_wait_s": 0.0,
            "fmcsa_retry_attempts": 3,
            "fmcsa_retry_initial_s": 0.01,
            "fmcsa_retry_max_s": 0.05,
            "fmcsa_breaker_threshold": 100,
            "fmcsa_breaker_reset_s": 60.0,
        }
    )


@pytest.fixture
async def redis(fmcsa_settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(fmcsa_settings)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{fmcsa_settings.redis_namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make_client(
    fmcsa_settings: Settings, redis: Redis, http: httpx.AsyncClient
) -> Callable[..., FmcsaClient]:
    """Build a resilient client; keyword arguments override settings fields."""

    def build(**overrides: Any) -> FmcsaClient:
        return FmcsaClient.create(
            fmcsa_settings.model_copy(update=overrides), http=http, redis=redis
        )

    return build


@pytest.fixture
def fmcsa(make_client: Callable[..., FmcsaClient]) -> FmcsaClient:
    return make_client()
