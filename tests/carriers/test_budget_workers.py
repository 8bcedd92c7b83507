"""The FMCSA call budget is kept at the job level across two real worker processes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import psycopg
import pytest

from superior_one.carriers.models import CarrierStatus
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.jobs import defer_many
from superior_one.resources import Resources
from superior_one.simulators.fmcsa import SimulatorServer
from tests.carriers.factories import create_carrier
from tests.jobs.helpers import dsn, start_worker_process, wait_for

BUDGET_CALLS = 4
BUDGET_WINDOW_S = 3.0
CARRIERS = 12
# The simulator stamps a request when it arrives, a little after the budget was
# taken (longer on a loaded machine). A window this much shorter absorbs that delay.
ARRIVAL_SLACK_S = 0.5


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_max_in_window_counts_a_sliding_window() -> None:
    assert max_in_window([0.0, 0.5, 1.0, 2.1, 2.2], 2.0) == 4
    assert max_in_window([0.0, 2.0, 4.0], 2.0) == 1
    assert max_in_window([], 2.0) == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_workers_stay_within_shared_fmcsa_budget(
    resources: Resources,
    carrier_settings: Settings,
    simulator: SimulatorServer,
    tmp_path: Path,
) -> None:
    settings = carrier_settings.model_copy(
        update={
            "fmcsa_call_budget": f"{BUDGET_CALLS}/{int(BUDGET_WINDOW_S)} seconds",
            "fmcsa_budget_max_wait_s": 0.5,
        }
    )
    carriers = [
        await create_carrier(
            resources.sessionmaker,
            dot_number=3000400 + index * 10 + 5,
            status=CarrierStatus.PENDING,
            last_result_status=None,
            last_verified_at=None,
        )
        for index in range(CARRIERS)
    ]
    from superior_one.carriers.tasks import verify

    async with unit_of_work(resources.sessionmaker) as session:
        await defer_many(session, verify, [{"carrier_id": str(c.id)} for c in carriers])

    def verified() -> int:
        with psycopg.connect(dsn(settings)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM carriers WHERE verification_status = 'VERIFIED'"
            ).fetchone()
        return int(row[0]) if row else 0

    workers = [
        start_worker_process(settings, tmp_path / f"worker-{n}.log", concurrency=3) for n in (1, 2)
    ]
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: verified() == CARRIERS,
            timeout_s=120,
            what="all carriers to be verified",
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=20)

    times = [served.at for served in simulator.state.requests()]
    assert len(times) >= CARRIERS
    assert max_in_window(times, BUDGET_WINDOW_S - ARRIVAL_SLACK_S) <= BUDGET_CALLS
