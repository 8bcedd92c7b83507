"""Helpers for tests that run the worker: in this process or as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from superior_one.config import Settings
from superior_one.jobs.worker import run_worker

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_TASKS = "tests.jobs.sample_tasks"


def worker_settings(settings: Settings, **overrides: Any) -> Settings:
    """Settings for a test worker: fast heartbeats and retries; missed periodic ticks skipped."""
    values: dict[str, Any] = {
        "jobs_extra_import_paths": [SAMPLE_TASKS],
        "jobs_heartbeat_s": 0.5,
        "jobs_stalled_after_s": 2.0,
        "jobs_stalled_check_cron": "* * * * * */1",
        "jobs_periodic_max_delay_s": 5.0,
        "jobs_retry_base_s": 0.05,
        "jobs_retry_cap_s": 0.2,
        "metrics_port_worker": 0,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


async def run_worker_until(
    settings: Settings,
    done: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float = 60.0,
    concurrency: int = 2,
) -> None:
    """Run a worker in this process until ``done()`` is true, then stop it."""
    worker = asyncio.create_task(
        run_worker(settings, concurrency=concurrency, install_signal_handlers=False)
    )
    try:
        async with asyncio.timeout(timeout_s):
            while not await done():
                if worker.done():
                    worker.result()
                    raise AssertionError("the worker stopped before the condition held")
                await asyncio.sleep(0.1)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://")


def job_row(settings: Settings, job_id: int) -> tuple[str, int]:
    with psycopg.connect(dsn(settings)) as conn:
        row = conn.execute(
            "SELECT status, attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None, f"job {job_id} not found"
    return row[0], row[1]


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SO_")}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "SO_ENVIRONMENT": "test",
            "SO_DATABASE_URL": settings.database_url,
            "SO_REDIS_URL": settings.redis_url,
            "SO_REDIS_NAMESPACE": settings.redis_namespace,
            "SO_JOBS_EXTRA_IMPORT_PATHS": f'["{SAMPLE_TASKS}"]',
            "SO_JOBS_HEARTBEAT_S": str(settings.jobs_heartbeat_s),
            "SO_JOBS_STALLED_AFTER_S": str(settings.jobs_stalled_after_s),
            "SO_JOBS_STALLED_CHECK_CRON": settings.jobs_stalled_check_cron,
            "SO_JOBS_PERIODIC_MAX_DELAY_S": str(settings.jobs_periodic_max_delay_s),
            "SO_JOBS_RETRY_BASE_S": str(settings.jobs_retry_base_s),
            "SO_JOBS_RETRY_CAP_S": str(settings.jobs_retry_cap_s),
            "SO_METRICS_PORT_WORKER": "0",
            "SO_FMCSA_BASE_URL": settings.fmcsa_base_url,
            "SO_FMCSA_WEB_KEY": settings.fmcsa_web_key.get_secret_value(),
            "SO_FMCSA_CALL_BUDGET": settings.fmcsa_call_budget,
            "SO_FMCSA_BUDGET_MAX_WAIT_S": str(settings.fmcsa_budget_max_wait_s),
            "SO_FMCSA_CACHE_FRESH_S": str(settings.fmcsa_cache_fresh_s),
            "SO_LOG_LEVEL": "INFO",
        }
    )
    return env


def start_worker_process(
    settings: Settings, log_path: Path, *, concurrency: int = 2
) -> subprocess.Popen[bytes]:
    """Start ``superior-one worker`` as a real OS process, logging to ``log_path``."""
    command = Path(sys.executable).parent / "superior-one"
    with log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 (our own console script)
            [str(command), "worker", "--concurrency", str(concurrency)],
            cwd=REPO_ROOT,
            env=worker_env(settings),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
