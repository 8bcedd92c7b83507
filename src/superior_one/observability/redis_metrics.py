"""A Redis client that times each command and pipeline and counts failures.

:func:`superior_one.redis.create_redis` builds the process's client from
:class:`InstrumentedRedis`. Pub/sub connections and the ``limits`` storage's own
client object are not timed: a subscription blocks by design, and rate-limit
checks show up in the latency of the request that makes them.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from superior_one.observability import metrics

# Commands that wait on the server on purpose; their latency is not Redis's.
_BLOCKING = frozenset({"BLPOP", "BRPOP", "BLMOVE", "BZPOPMIN", "BZPOPMAX", "BLMPOP", "BZMPOP"})


def _command_name(args: tuple[Any, ...]) -> str:
    if not args:
        return "UNKNOWN"
    first = args[0]
    name = first.decode("ascii", "replace") if isinstance(first, bytes) else str(first)
    return name.upper()[:32]


def _is_blocking(name: str, args: tuple[Any, ...]) -> bool:
    if name in _BLOCKING:
        return True
    return name in {"XREAD", "XREADGROUP"} and any(
        a in ("BLOCK", b"BLOCK", "block") for a in args[1:]
    )


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, (RedisTimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (RedisConnectionError, ConnectionError, OSError)):
        return "connection"
    return "error"


class InstrumentedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        name = "MULTI" if self.is_transaction else "PIPELINE"
        started = time.perf_counter()
        try:
            result: list[Any] = await super().execute(raise_on_error)
        except (RedisError, OSError) as exc:
            metrics.REDIS_COMMAND_ERRORS.labels(name, _error_kind(exc)).inc()
            raise
        metrics.REDIS_COMMAND_DURATION.labels(name).observe(time.perf_counter() - started)
        return result


class InstrumentedRedis(Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = _command_name(args)
        started = time.perf_counter()
        try:
            result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            metrics.REDIS_COMMAND_ERRORS.labels(name, _error_kind(exc)).inc()
            raise
        if not _is_blocking(name, args):
            metrics.REDIS_COMMAND_DURATION.labels(name).observe(time.perf_counter() - started)
        return result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return InstrumentedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
