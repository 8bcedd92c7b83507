"""The hourly re-verification tick: this hour's share of due carriers, spread over the hour."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest

from superior_one.carriers.tasks import reverify_due
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.jobs import app, defer
from superior_one.resources import Resources
from tests.jobs.helpers import dsn, job_row, run_worker_until


async def test_reverify_tick_claims_share_of_due_carriers(
    resources: Resources, carrier_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(dsn(carrier_settings), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO organizations (id, name, type) SELECT gen_random_uuid(), "
            "'Carrier ' || n, 'CARRIER' FROM generate_series(1, 200) AS n"
        )
        conn.execute(
            "INSERT INTO carriers (id, organization_id, dot_number, verification_status, "
            "next_verification_at) SELECT gen_random_uuid(), id, "
            "3000000 + 100 * row_number() OVER (ORDER BY id) + 5, 'VERIFIED', "
            "now() - (row_number() OVER (ORDER BY id) % 3) * interval '1 hour' FROM organizations"
        )
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, reverify_due, timestamp=int(time.time()))

    async def tick_done() -> bool:
        return job_row(carrier_settings, job_id)[0] == "succeeded"

    # Without its periodic schedule: a worker running at five past the hour would defer
    # a second reverify_due tick and move twice as many carriers.
    monkeypatch.setattr(app.periodic_registry, "periodic_tasks", {})
    await run_worker_until(carrier_settings, tick_done)

    with psycopg.connect(dsn(carrier_settings)) as conn:
        moved = conn.execute(
            "SELECT count(*) FROM carriers WHERE next_verification_at > now() + interval '6 days'"
        ).fetchone()
        slots = conn.execute(
            "SELECT count(*), count(DISTINCT scheduled_at), max(scheduled_at) - min(scheduled_at) "
            "FROM procrastinate_jobs WHERE task_name = 'carriers.verify'"
        ).fetchone()
    # 200 carriers over 168 hours, with a 25 % catch-up margin: 2 per tick.
    assert moved == (2,)
    assert slots is not None
    assert slots[0] == 2
    assert slots[1] == 2
    assert slots[2] == timedelta(minutes=5)
