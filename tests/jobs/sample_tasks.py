"""Tasks used only by the job tests; the worker subprocesses import them through
``SO_JOBS_EXTRA_IMPORT_PATHS``. Not collected by pytest."""

from __future__ import annotations

import asyncio

from procrastinate import JobContext
from sqlalchemy import text

from superior_one.db import unit_of_work
from superior_one.jobs import Queue, TransientJobError, job_task, worker_deps
from superior_one.redis import key

EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS test_job_effects (
    effect_key text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def attempts_key(namespace_key: str) -> str:
    return f"{namespace_key}:attempts"


@job_task(name="tests.record_effect", queue=Queue.BULK)
async def record_effect(
    context: JobContext, *, effect_key: str, block_first_attempt: bool = False
) -> None:
    """Write one effect idempotently; on the first attempt optionally hang afterwards.

    Hanging after the effect commits is the worst moment for a worker to die:
    the effect exists but the job is not acknowledged.
    """
    deps = worker_deps(context)
    settings = deps.resources.settings
    await deps.resources.redis.rpush(
        key(settings, "test-attempts", effect_key), str(context.job.attempts)
    )
    async with unit_of_work(deps.resources.sessionmaker) as session:
        await session.execute(
            text(
                "INSERT INTO test_job_effects (effect_key) VALUES (:k) "
                "ON CONFLICT (effect_key) DO NOTHING"
            ),
            {"k": effect_key},
        )
    if block_first_attempt and context.job.attempts == 0:
        await asyncio.sleep(3600)


@job_task(name="tests.fail_transiently_once", queue=Queue.BULK)
async def fail_transiently_once(context: JobContext, *, effect_key: str) -> None:
    deps = worker_deps(context)
    await deps.resources.redis.rpush(
        key(deps.resources.settings, "test-attempts", effect_key), str(context.job.attempts)
    )
    if context.job.attempts == 0:
        raise TransientJobError("dependency briefly down")


@job_task(name="tests.fail_for_good", queue=Queue.BULK)
async def fail_for_good(context: JobContext, *, effect_key: str) -> None:
    deps = worker_deps(context)
    await deps.resources.redis.rpush(
        key(deps.resources.settings, "test-attempts", effect_key), str(context.job.attempts)
    )
    if context.job.attempts == 0:
        raise ValueError(f"bad input {effect_key}")
