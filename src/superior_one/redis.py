"""The process's Redis client and the helpers that share its connection pool.

Each process calls :func:`create_redis` once at start-up and closes the client at
shutdown. No other module creates a Redis client or pool; a test enforces it.
Helpers that need their own client object (the ``limits`` storage) are built
here on the same connection pool.
"""

from __future__ import annotations

from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from superior_one.config import Settings
from superior_one.observability.redis_metrics import InstrumentedRedis
from superior_one.observability.tracing import current_tracing

# Errors that mean "Redis is unavailable" rather than "the command was wrong".
# Callers catch these to fall back to PostgreSQL; they never mask a logic error.

REDIS_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def create_redis(settings: Settings) -> Redis:
    """Create the process's Redis client; connections open lazily on first use."""
    client_class = InstrumentedRedis if settings.metrics_enabled else Redis
    client = client_class.from_url(
        settings.redis_url,
        decode_responses=False,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
        max_connections=settings.redis_max_connections,
        health_check_interval=30,
    )
    if (tracing := current_tracing()) is not None:
        tracing.instrument_redis(client)
    return client


def create_limits_storage(redis: Redis, settings: Settings) -> RedisStorage:
    """Build a ``limits`` storage that reuses ``redis``'s connection pool."""
    return RedisStorage(
        "async+" + settings.redis_url,
        implementation="redispy",
        key_prefix=f"{settings.redis_namespace}:limits",
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # limits types options as scalars
    )


def key(settings: Settings, *parts: str) -> str:
    """Build a namespaced key or channel name: ``key(s, "principal", id)``."""
    return ":".join((settings.redis_namespace, *parts))
