"""The long-lived clients one process owns: database engine and Redis client.

Every process type (api, worker, gps-consumer, CLI command) opens exactly one
:class:`Resources` at start-up and closes it at shutdown, and passes it (or the
sessionmaker and client inside it) down to the code that needs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from limits.aio.storage import RedisStorage
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from superior_one.config import Settings
from superior_one.db import create_engine, create_job_queue_pool, create_sessionmaker
from superior_one.redis import create_limits_storage, create_redis


@dataclass(slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    limits_storage: RedisStorage
    # Only the worker has it: the job queue's psycopg pool (see create_job_queue_pool).
    job_queue_pool: AsyncConnectionPool | None = None

    @classmethod
    def open(
        cls, settings: Settings, *, pool_size: int | None = None, job_queue_pool_size: int = 0
    ) -> Resources:
        engine = create_engine(settings, pool_size=pool_size)
        redis = create_redis(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            redis=redis,
            limits_storage=create_limits_storage(redis, settings),
            job_queue_pool=(
                create_job_queue_pool(settings, max_size=job_queue_pool_size)
                if job_queue_pool_size
                else None
            ),
        )

    async def close(self) -> None:
        if self.job_queue_pool is not None:
            await self.job_queue_pool.close()
        await self.redis.aclose()
        await self.engine.dispose()


@asynccontextmanager
async def open_resources(
    settings: Settings, *, pool_size: int | None = None, job_queue_pool_size: int = 0
) -> AsyncIterator[Resources]:
    """Open the process's resources for the duration of the block.

    ``job_queue_pool_size`` > 0 also opens the job queue pool (the worker, job commands).
    """
    resources = Resources.open(
        settings, pool_size=pool_size, job_queue_pool_size=job_queue_pool_size
    )
    try:
        if resources.job_queue_pool is not None:
            await resources.job_queue_pool.open(wait=True)
        yield resources
    finally:
        await resources.close()
