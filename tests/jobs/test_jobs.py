"""The job system against real PostgreSQL and Redis: transactional deferral,
retries of transient failures only, failed jobs kept, and a worker killed mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync
from sqlalchemy import text
from typer.testing import CliRunner

from superior_one.config import Settings, get_settings
from superior_one.db import unit_of_work
from superior_one.jobs import defer
from superior_one.redis import key
from superior_one.resources import Resources
from tests.jobs.helpers import (
    dsn,
    job_row,
    run_worker_until,
    start_worker_process,
    wait_for,
    worker_settings,
)
from tests.jobs.sample_tasks import (
    EFFECTS_TABLE,
    fail_for_good,
    fail_transiently_once,
    record_effect,
)


class RollbackError(Exception):
    pass


@pytest.fixture
def jobs_settings(settings: Settings) -> Settings:
    with psycopg.connect(dsn(settings), autocommit=True) as conn:
        conn.execute(EFFECTS_TABLE)
        conn.execute("TRUNCATE test_job_effects")
    return worker_settings(settings)


def effects(settings: Settings, effect_key: str) -> int:
    with psycopg.connect(dsn(settings)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM test_job_effects WHERE effect_key = %s", (effect_key,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def attempts(settings: Settings, effect_key: str) -> list[int]:
    client = redis_sync.Redis.from_url(settings.redis_url)
    try:
        raw = client.lrange(key(settings, "test-attempts", effect_key), 0, -1)
    finally:
        client.close()
    return [int(value) for value in raw]


def job_count(settings: Settings, effect_key: str) -> int:
    with psycopg.connect(dsn(settings)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE args->>'effect_key' = %s",
            (effect_key,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_defer_rolled_back_transaction_sends_no_job(
    jobs_settings: Settings, resources: Resources
) -> None:
    with pytest.raises(RollbackError):
        async with unit_of_work(resources.sessionmaker) as session:
            await session.execute(text("SELECT 1"))
            await defer(session, record_effect, effect_key="rolled-back")
            raise RollbackError

    async with unit_of_work(resources.sessionmaker) as session:
        committed_id = await defer(session, record_effect, effect_key="committed")

    async def committed_job_done() -> bool:
        return job_row(jobs_settings, committed_id)[0] == "succeeded"

    await run_worker_until(jobs_settings, committed_job_done)

    assert job_count(jobs_settings, "rolled-back") == 0
    assert effects(jobs_settings, "rolled-back") == 0
    assert effects(jobs_settings, "committed") == 1


async def test_defer_job_runs_on_the_sessions_connection(
    jobs_settings: Settings, resources: Resources
) -> None:
    # The job row is visible inside the deferring transaction and nowhere else until commit.
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, record_effect, effect_key="same-transaction")
        inside = (
            await session.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
            )
        ).scalar_one()
        with psycopg.connect(dsn(jobs_settings)) as other:
            row = other.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", (job_id,))
            outside = row.fetchone()
    assert inside == 1
    assert outside == (0,)


async def test_worker_retries_transient_failure_then_succeeds(
    jobs_settings: Settings, resources: Resources
) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, fail_transiently_once, effect_key="transient")

    async def succeeded() -> bool:
        return job_row(jobs_settings, job_id)[0] == "succeeded"

    await run_worker_until(jobs_settings, succeeded)

    assert attempts(jobs_settings, "transient") == [0, 1]
    assert job_row(jobs_settings, job_id) == ("succeeded", 2)


async def test_worker_fails_non_transient_error_without_retry(
    jobs_settings: Settings, resources: Resources
) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(session, fail_for_good, effect_key="bad-input")

    async def failed() -> bool:
        return job_row(jobs_settings, job_id)[0] == "failed"

    await run_worker_until(jobs_settings, failed)

    assert attempts(jobs_settings, "bad-input") == [0]
    with psycopg.connect(dsn(jobs_settings)) as conn:
        recorded = conn.execute(
            "SELECT error_type, error_message FROM job_failures WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert recorded == ("ValueError", "bad input bad-input")


def test_jobs_cli_lists_and_retries_failed_job(
    jobs_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from superior_one.cli import app as cli_app
    from superior_one.resources import open_resources

    async def defer_and_fail() -> int:
        async with (
            open_resources(jobs_settings) as opened,
            unit_of_work(opened.sessionmaker) as session,
        ):
            job_id = await defer(session, fail_for_good, effect_key="cli")

        async def failed() -> bool:
            return job_row(jobs_settings, job_id)[0] == "failed"

        await run_worker_until(jobs_settings, failed)
        return job_id

    job_id = asyncio.run(defer_and_fail())
    for name, value in {
        "SO_DATABASE_URL": jobs_settings.database_url,
        "SO_REDIS_URL": jobs_settings.redis_url,
        "SO_REDIS_NAMESPACE": jobs_settings.redis_namespace,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    # The CLI's callback would point logging at the runner's stream, which closes after
    # each invocation; later tests in this process would then log into a closed file.
    monkeypatch.setattr("superior_one.cli.configure_logging", lambda **_: None)
    runner = CliRunner()
    try:
        listed = runner.invoke(cli_app, ["jobs", "failed"])
        retried = runner.invoke(cli_app, ["jobs", "retry", str(job_id)])
        again = runner.invoke(cli_app, ["jobs", "retry", str(job_id)])
    finally:
        get_settings.cache_clear()

    assert listed.exit_code == 0, listed.output
    assert str(job_id) in listed.output
    assert "bad input cli" in listed.output
    assert retried.exit_code == 0, retried.output
    assert job_row(jobs_settings, job_id)[0] == "todo"
    assert again.exit_code == 1

    async def succeeded() -> bool:
        return job_row(jobs_settings, job_id)[0] == "succeeded"

    asyncio.run(run_worker_until(jobs_settings, succeeded))
    # Failing counted the first run; the manual retry counts one more before the second run.
    assert attempts(jobs_settings, "cli") == [0, 2]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_killed_worker_job_retried_once(
    jobs_settings: Settings, resources: Resources, tmp_path: Path
) -> None:
    effect_key = f"killed-{uuid.uuid4().hex[:8]}"
    async with unit_of_work(resources.sessionmaker) as session:
        job_id = await defer(
            session, record_effect, effect_key=effect_key, block_first_attempt=True
        )

    first = start_worker_process(jobs_settings, tmp_path / "worker-1.log")
    try:
        # The first run wrote its effect and now hangs, unacknowledged.
        await asyncio.to_thread(
            wait_for,
            lambda: effects(jobs_settings, effect_key) == 1,
            timeout_s=90,
            what="the first attempt's effect",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    assert job_row(jobs_settings, job_id)[0] == "doing"

    second = start_worker_process(jobs_settings, tmp_path / "worker-2.log")
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: job_row(jobs_settings, job_id)[0] == "succeeded",
            timeout_s=90,
            what="the job to be recovered and succeed",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=15)
        except Exception:
            second.kill()
            second.wait(timeout=5)

    assert attempts(jobs_settings, effect_key) == [0, 1]
    assert effects(jobs_settings, effect_key) == 1
