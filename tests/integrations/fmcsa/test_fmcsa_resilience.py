"""Call budget, circuit breaker and retries, shared through the real Redis."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import SecretStr
from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.integrations.fmcsa import (
    FmcsaCircuitOpenError,
    FmcsaClient,
    FmcsaConfigurationError,
    FmcsaOverBudgetError,
    FmcsaTransientError,
    FmcsaUnavailableError,
)
from superior_one.integrations.fmcsa.resilience import BUDGET_IDENTIFIER, fmcsa_circuit_breaker
from superior_one.redis import create_limits_storage, create_redis
from superior_one.resilience import SharedCircuitBreaker
from superior_one.simulators.fmcsa import Fault, SimulatorServer
from tests.integrations.fmcsa.conftest import WEB_KEY

BUDGET_WORKER = Path(__file__).with_name("budget_worker.py")


def _arrivals(simulator: SimulatorServer) -> list[float]:
    return sorted(request.at for request in simulator.state.requests())


def _max_in_window(times: list[float], window_s: float) -> int:
    return max(
        (sum(1 for t in times if start <= t < start + window_s) for start in times), default=0
    )


def _breaker(settings: Settings, redis: Redis, **overrides: object) -> SharedCircuitBreaker:
    return fmcsa_circuit_breaker(redis, settings.model_copy(update=overrides))


async def _fail_times(client: FmcsaClient, times: int) -> None:
    for _ in range(times):
        with pytest.raises(FmcsaTransientError):
            await client.carrier(158121, max_age_s=0)


# --- circuit breaker -----------------------------------------------------------------------


async def test_breaker_opens_after_threshold_failures(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fmcsa_settings: Settings,
    redis: Redis,
) -> None:
    client = make_client(fmcsa_breaker_threshold=2, fmcsa_retry_attempts=1)
    simulator.state.add_fault(Fault(kind="status", status=503, count=None))
    await _fail_times(client, 2)

    with pytest.raises(FmcsaCircuitOpenError) as caught:
        await client.carrier(158121, max_age_s=0)

    assert caught.value.retry_in_s > 0
    assert len(simulator.state.requests()) == 2  # the open circuit made no call
    assert await _breaker(fmcsa_settings, redis).state() == "opened"


async def test_breaker_state_is_shared_between_clients(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fmcsa_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    simulator.state.add_fault(Fault(kind="status", status=503, count=None))
    await _fail_times(make_client(fmcsa_breaker_threshold=2, fmcsa_retry_attempts=1), 2)
    simulator.state.clear_faults()

    # Another Redis client and another FMCSA client, as in a second process.
    other_settings = fmcsa_settings.model_copy(update={"fmcsa_breaker_threshold": 2})
    other_redis = create_redis(other_settings)
    try:
        other = FmcsaClient.create(other_settings, http=http, redis=other_redis)
        with pytest.raises(FmcsaCircuitOpenError):
            await other.carrier(158121, max_age_s=0)
    finally:
        await other_redis.aclose()
    assert len(simulator.state.requests()) == 2


async def test_breaker_recovers_after_reset_time(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fmcsa_settings: Settings,
    redis: Redis,
) -> None:
    client = make_client(
        fmcsa_breaker_threshold=2, fmcsa_breaker_reset_s=0.5, fmcsa_retry_attempts=1
    )
    simulator.state.add_fault(Fault(kind="status", status=503, count=2))
    await _fail_times(client, 2)
    with pytest.raises(FmcsaCircuitOpenError):
        await client.carrier(158121, max_age_s=0)

    await asyncio.sleep(0.6)
    fetched = await client.carrier(158121, max_age_s=0)

    assert fetched.value is not None
    assert await _breaker(fmcsa_settings, redis).state() == "closed"


async def test_breaker_reopens_when_trial_call_fails(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(
        fmcsa_breaker_threshold=2, fmcsa_breaker_reset_s=0.5, fmcsa_retry_attempts=1
    )
    simulator.state.add_fault(Fault(kind="status", status=503, count=None))
    await _fail_times(client, 2)
    await asyncio.sleep(0.6)

    await _fail_times(client, 1)  # the trial call
    with pytest.raises(FmcsaCircuitOpenError):
        await client.carrier(158121, max_age_s=0)

    assert len(simulator.state.requests()) == 3


async def test_breaker_ignores_configuration_errors(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fmcsa_settings: Settings,
    redis: Redis,
) -> None:
    client = make_client(fmcsa_breaker_threshold=1, fmcsa_web_key=SecretStr("wrong"))
    for _ in range(3):
        with pytest.raises(FmcsaConfigurationError):
            await client.carrier(158121, max_age_s=0)
    assert await _breaker(fmcsa_settings, redis).state() == "closed"


async def test_breaker_counts_maintenance_page_as_failure(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fmcsa_settings: Settings,
    redis: Redis,
) -> None:
    client = make_client(fmcsa_breaker_threshold=1)
    simulator.state.add_fault(Fault(kind="maintenance", count=None))
    with pytest.raises(FmcsaUnavailableError):
        await client.carrier(158121, max_age_s=0)
    assert await _breaker(fmcsa_settings, redis).state() == "opened"


async def test_breaker_open_spends_no_budget(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fmcsa_settings: Settings,
    redis: Redis,
) -> None:
    client = make_client(
        fmcsa_breaker_threshold=1,
        fmcsa_retry_attempts=1,
        fmcsa_call_budget="5/minute",
        fmcsa_budget_margin_s=0,
    )
    simulator.state.add_fault(Fault(kind="status", status=503, count=None))
    await _fail_times(client, 1)
    for _ in range(3):
        with pytest.raises(FmcsaCircuitOpenError):
            await client.carrier(158121, max_age_s=0)

    limiter = MovingWindowRateLimiter(create_limits_storage(redis, fmcsa_settings))
    # With no margin the budget counts over exactly 60 s.
    stats = await limiter.get_window_stats(RateLimitItemPerSecond(5, 60), BUDGET_IDENTIFIER)
    assert stats.remaining == 4  # only the first, failed call was counted


# --- call budget ---------------------------------------------------------------------------


async def test_budget_raises_over_budget_when_used_up(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(
        fmcsa_call_budget="3/10 seconds", fmcsa_budget_max_wait_s=0, fmcsa_budget_margin_s=0
    )
    for dot in (3000004, 3000005, 3000006):
        await client.carrier(dot)

    with pytest.raises(FmcsaOverBudgetError) as caught:
        await client.carrier(3000007)

    assert 0 < caught.value.retry_in_s <= 10
    assert len(simulator.state.requests()) == 3


async def test_budget_waits_for_a_free_slot(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_call_budget="2/1 second", fmcsa_budget_max_wait_s=3)
    for dot in (3000004, 3000005, 3000006):
        await client.carrier(dot)

    first, _, third = _arrivals(simulator)
    # The third call had to wait until the first left the one-second window.
    assert third - first >= 0.95


async def test_budget_counts_every_retry(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_call_budget="2/10 seconds", fmcsa_retry_attempts=3)
    simulator.state.add_fault(Fault(kind="status", status=503, count=None))
    with pytest.raises(FmcsaOverBudgetError):
        await client.carrier(158121)
    assert len(simulator.state.requests()) == 2


async def test_retry_waits_at_least_retry_after(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_retry_initial_s=0.001, fmcsa_retry_max_s=1.0)
    simulator.state.add_fault(Fault(kind="rate_limit", retry_after_seconds=0.3, count=1))
    await client.carrier(158121)
    first, second = _arrivals(simulator)
    assert second - first >= 0.3


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port of ours on 127.0.0.1 that is bound but not listening: connections fail."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def test_guard_refuses_to_call_without_redis(
    fmcsa_settings: Settings,
    http: httpx.AsyncClient,
    simulator: SimulatorServer,
    refusing_port: int,
) -> None:
    settings = fmcsa_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{refusing_port}/0"}
    )
    redis = create_redis(settings)
    try:
        client = FmcsaClient.create(settings, http=http, redis=redis)
        with pytest.raises(FmcsaUnavailableError) as caught:
            await client.carrier(158121)
    finally:
        await redis.aclose()
    assert caught.value.reason == "redis_unavailable"
    assert simulator.state.requests() == []


@pytest.mark.slow
def test_budget_holds_across_two_processes(
    fmcsa_settings: Settings, simulator: SimulatorServer
) -> None:
    budget, window_s, per_process = 5, 3, 6
    start_at = time.time() + 2.0  # time for both interpreters to start
    common = [
        "--redis-url", fmcsa_settings.redis_url,
        "--namespace", fmcsa_settings.redis_namespace,
        "--base-url", simulator.base_url,
        "--web-key", WEB_KEY,
        "--budget", f"{budget}/{window_s} seconds",
        "--max-wait", "15",
        "--count", str(per_process),
        "--start-at", str(start_at),
    ]  # fmt: skip
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(BUDGET_WORKER), *common, "--first-dot", str(first_dot)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for first_dot in (3_100_001, 3_200_001)
    ]
    outputs = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0]
    assert sum(output.get("ok", 0) for output in outputs) == 2 * per_process
    arrivals = _arrivals(simulator)
    assert len(arrivals) == 2 * per_process
    # Arrival times at the simulator lag the budget's clock by the request's own
    # latency, which differs per request; 0.25 s of slack absorbs that.
    assert _max_in_window(arrivals, window_s - 0.25) <= budget
