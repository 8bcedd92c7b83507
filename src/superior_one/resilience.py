"""A circuit breaker per outbound dependency, its state shared by every process in Redis.

One :class:`SharedCircuitBreaker` guards one dependency (``fmcsa``, ``stripe``).
The dependency's name is the circuit's Redis key and the ``dependency`` label of
``so_circuit_breaker_state`` and ``so_circuit_breaker_transitions_total``. The
caller says which errors mean "the dependency is unavailable"; only those count
toward opening the circuit. Every other error, and every success, ends a trial
call as a success.

The breaker raises its own errors and each integration maps them to the error
its callers already handle: :class:`CircuitOpenError` while the circuit is open,
:class:`CircuitStateUnavailableError` when Redis cannot be read. Whether to call
the dependency without the breaker then (fail open) or not at all (fail closed)
is the integration's choice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import structlog
from purgatory import AsyncAbstractUnitOfWork, AsyncCircuitBreakerFactory
from purgatory.domain.model import Context, OpenedState

# Neither the breaker nor the repository base class is re-exported at the
# package top level.
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from purgatory.service._async.repository import AsyncAbstractRepository
from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.observability import metrics
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS, key

log = structlog.get_logger(__name__)

T = TypeVar("T")

CircuitState = Literal["closed", "opened", "half-opened"]
# so_circuit_breaker_state's encoding: 0 closed, 1 half-open, 2 open.
_STATE_GAUGE_VALUES: dict[CircuitState, float] = {"closed": 0.0, "half-opened": 1.0, "opened": 2.0}
_STATES: dict[str, CircuitState] = {
    "closed": "closed",
    "opened": "opened",
    "half-opened": "half-opened",
}


class CircuitOpenError(Exception):
    """The circuit is open: no call was made. ``retry_in_s`` is the time to the next trial."""

    def __init__(self, dependency: str, retry_in_s: float) -> None:
        self.dependency = dependency
        self.retry_in_s = max(0.0, retry_in_s)
        super().__init__(
            f"Calls to {dependency} are paused after repeated failures; the next trial "
            f"call is allowed in {self.retry_in_s:.1f} s."
        )


class CircuitStateUnavailableError(Exception):
    """Redis is unreachable, so the circuit's state cannot be read."""

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        super().__init__(
            f"The {dependency} circuit state cannot be read because Redis is unreachable."
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCircuitRepository(AsyncAbstractRepository):
    """purgatory's circuit state in one Redis hash per circuit, on the process's own client.

    purgatory's ``AsyncRedisUnitOfWork`` only takes a URL and opens its own
    client, which would bypass ``create_redis``. Its repository interface lets us
    keep the state on our pool and under our key namespace instead. Threshold
    and reset time come from this process's settings on every read, so a
    configuration change applies without clearing Redis.
    """

    def __init__(self, redis: Redis, settings: Settings, *, threshold: int, reset_s: float) -> None:
        self._redis = redis
        self._settings = settings
        self._threshold = threshold
        self._ttl = reset_s
        # Idle circuits disappear eventually; any write renews the expiry.
        self._expire_s = max(24 * 3600, int(self._ttl * 10))
        self.messages: list[Any] = []

    def _key(self, name: str) -> str:
        return key(self._settings, "circuit", name)

    async def get(self, name: str) -> Context | None:
        raw = await self._redis.hgetall(self._key(name))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        opened_at = fields.get("opened_at", "")
        return Context(
            name,
            threshold=self._threshold,
            ttl=self._ttl,
            state=_STATES.get(fields.get("state", ""), "closed"),
            failure_count=int(fields.get("failure_count") or 0),
            opened_at=float(opened_at) if opened_at else None,
        )

    async def register(self, context: Context) -> None:
        name = self._key(context.name)
        await self._write(
            context.name,
            lambda pipe: (
                pipe.hsetnx(name, "state", context.state)
                .hsetnx(name, "failure_count", 0)
                .expire(name, self._expire_s)
            ),
        )

    async def update_state(self, name: str, state: str, opened_at: float | None) -> None:
        redis_key = self._key(name)
        mapping = {"state": state, "opened_at": "" if opened_at is None else repr(opened_at)}
        await self._write(
            name,
            lambda pipe: pipe.hset(redis_key, mapping=mapping).expire(redis_key, self._expire_s),
        )
        log.info("circuit.state_changed", dependency=name, state=state)
        # Counted where the transition happens; admit() keeps every other
        # process's gauge in step with the shared state.
        metrics.set_circuit_state(name, state)

    async def inc_failures(self, name: str, failure_count: int) -> None:
        redis_key = self._key(name)
        await self._write(
            name,
            lambda pipe: pipe.hincrby(redis_key, "failure_count", 1).expire(
                redis_key, self._expire_s
            ),
        )

    async def reset_failure(self, name: str) -> None:
        redis_key = self._key(name)
        await self._write(name, lambda pipe: pipe.hset(redis_key, "failure_count", 0))

    async def _write(self, name: str, build: Callable[[Any], Any]) -> None:
        # Recording is best effort: a lost write costs one miscounted failure,
        # while raising here would replace the call's own result or error.
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                build(pipe)
                await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("circuit.write_failed", dependency=name, error_type=type(exc).__name__)


class _RedisCircuitUnitOfWork(AsyncAbstractUnitOfWork):
    def __init__(self, repository: RedisCircuitRepository) -> None:
        self.contexts = repository

    async def commit(self) -> None:
        """Do nothing, because each repository write is atomic on its own."""

    async def rollback(self) -> None:
        """Do nothing: no write is deferred."""


class SharedCircuitBreaker:
    """A purgatory circuit breaker whose state every process reads from Redis.

    ``counts_as_failure`` returns true for the errors that mean the dependency is unavailable.
    A cancelled call always counts, because purgatory would otherwise close a
    circuit on a cancelled trial.

    NOTE: once the reset time has passed, every process that calls finds the
    circuit half-open and sends its own trial call, because purgatory has no
    single-probe lock.
    """

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        name: str,
        threshold: int,
        reset_s: float,
        counts_as_failure: Callable[[BaseException], bool],
    ) -> None:
        self.name = name
        self._repository = RedisCircuitRepository(
            redis, settings, threshold=threshold, reset_s=reset_s
        )

        def is_not_a_failure(exc: BaseException) -> bool:
            return not (isinstance(exc, asyncio.CancelledError) or counts_as_failure(exc))

        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=reset_s,
            exclude=[(BaseException, is_not_a_failure)],
            uow=_RedisCircuitUnitOfWork(self._repository),
        )

    async def state(self) -> CircuitState:
        """Return the state stored in Redis (an expired open circuit still reads "opened")."""
        try:
            context = await self._repository.get(self.name)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            raise CircuitStateUnavailableError(self.name) from exc
        return "closed" if context is None else context.state

    async def admit(self) -> AsyncCircuitBreaker:
        """Read the shared state; raise :class:`CircuitOpenError` while it is open."""
        try:
            breaker = await self._factory.get_breaker(self.name)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            raise CircuitStateUnavailableError(self.name) from exc
        context = breaker.context
        metrics.CIRCUIT_BREAKER_STATE.labels(self.name).set(_STATE_GAUGE_VALUES[context.state])
        if context.state == "opened" and context.opened_at is not None:
            retry_in = context.opened_at + context.ttl - time.time()
            if retry_in > 0:
                raise CircuitOpenError(self.name, retry_in)
        return breaker

    async def run(self, breaker: AsyncCircuitBreaker, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` inside an admitted breaker, which records the outcome."""
        try:
            async with breaker:
                return await operation()
        except OpenedState as exc:
            # Another process opened the circuit between admit() and now.
            raise CircuitOpenError(
                self.name, exc.opened_at + breaker.context.ttl - time.time()
            ) from exc
