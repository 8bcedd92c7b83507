"""Fixtures for the carriers tests: the FMCSA simulator and settings aimed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from superior_one.config import Settings
from superior_one.integrations.fmcsa import FmcsaClient
from superior_one.resources import Resources
from superior_one.simulators.fmcsa import SimulatorServer
from tests.jobs.helpers import worker_settings

WEB_KEY = "carriers-test-key"
QCMOBILE_DIR = Path(__file__).resolve().parents[2] / "../shared/data/fmcsa/qcmobile"
REVOCATIONS_FILE = (
    Path(__file__).resolve().parents[2]
    / "../shared/data/fmcsa/revocations/revocation_2024_08_06.txt"
)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    data_dir = QCMOBILE_DIR.resolve() if QCMOBILE_DIR.is_dir() else None
    with SimulatorServer(web_key=WEB_KEY, data_dir=data_dir) as server:
        yield server


@pytest.fixture
def qcmobile_samples() -> Path:
    if not QCMOBILE_DIR.is_dir():
        pytest.skip(f"QCMobile sample replies not found at {QCMOBILE_DIR.resolve()}")
    return QCMOBILE_DIR.resolve()


@pytest.fixture
def carrier_settings(settings: Settings, simulator: SimulatorServer) -> Settings:
    """Worker settings against the simulator; every check calls it (no reply cache)."""
    return worker_settings(
        settings,
        fmcsa_base_url=simulator.base_url,
        fmcsa_web_key=SecretStr(WEB_KEY),
        fmcsa_read_timeout_s=2.0,
        fmcsa_call_budget="1000/minute",
        fmcsa_budget_max_wait_s=0.0,
        fmcsa_retry_attempts=1,
        fmcsa_retry_initial_s=0.01,
        fmcsa_retry_max_s=0.05,
        fmcsa_breaker_threshold=100,
        fmcsa_cache_fresh_s=0,
    )


@pytest.fixture
async def fmcsa(carrier_settings: Settings, resources: Resources) -> AsyncIterator[FmcsaClient]:
    async with httpx.AsyncClient() as http:
        yield FmcsaClient.create(
            carrier_settings,
            http=http,
            redis=resources.redis,
            limits_storage=resources.limits_storage,
        )
