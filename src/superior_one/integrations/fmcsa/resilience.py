"""Call budget, circuit breaker and retries around every QCMobile call.

Every attempt (a retry included) goes through :meth:`FmcsaGuard.call`:

1. the circuit breaker, shared by all processes through Redis, is read; while it
   is open no call is made and no budget is spent;
2. one unit of the call budget (a moving window in Redis, shared by all
   processes) is taken, waiting at most ``fmcsa_budget_max_wait_s`` for one;
3. the call runs inside the breaker, which counts only unavailability
   (5xx, 429, timeouts, network errors, the maintenance page) as failures.

Transient failures are retried by tenacity with exponential backoff and full
jitter, never longer than ``fmcsa_retry_max_s`` per wait. A Retry-After header
from FMCSA raises the wait to at least that figure, within the same cap.

With Redis unreachable the guard refuses to call: it could neither honour the
shared budget nor see the shared breaker, and a government API that bans keys
for abuse is the wrong place to fail open. Callers see
:class:`~superior_one.integrations.fmcsa.errors.FmcsaUnavailableError`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from purgatory import AsyncAbstractUnitOfWork, AsyncCircuitBreakerFactory
from purgatory.domain.model import Context, OpenedState

# Neither the breaker nor the repository base class is re-exported at the
# package top level.
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from purgatory.service._async.repository import AsyncAbstractRepository
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from superior_one.config import Settings
from superior_one.integrations.fmcsa.errors import (
    FmcsaCircuitOpenError,
    FmcsaMaintenanceError,
    FmcsaOverBudgetError,
    FmcsaTransientError,
    FmcsaUnavailableError,
)
from superior_one.observability import metrics
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS, key

log = structlog.get_logger(__name__)

T = TypeVar("T")

BUDGET_IDENTIFIER = "fmcsa"
CIRCUIT_NAME = "fmcsa"

CircuitState = Literal["closed", "opened", "half-opened"]
# so_circuit_breaker_state's encoding: 0 closed, 1 half-open, 2 open.
_STATE_GAUGE_VALUES: dict[CircuitState, float] = {"closed": 0.0, "half-opened": 1.0, "opened": 2.0}
_STATES: dict[str, CircuitState] = {
    "closed": "closed",
    "opened": "opened",
    "half-opened": "half-opened",
}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CallBudget:
    """One budget of FMCSA calls for every process, counted in a Redis moving window.

    The window's timestamps come from each caller's clock (``limits`` pushes
    ``time.time()``), so hosts sharing a budget need synchronized clocks.
    """

    def __init__(self, storage: RedisStorage, settings: Settings) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        budget = parse(settings.fmcsa_call_budget)
        # The slot is counted when it is taken, but the request reaches FMCSA a
        # little later (breaker bookkeeping, a busy event loop: up to 0.25 s seen
        # under load). Counting over a window longer by the margin keeps the
        # calls as FMCSA sees them within the budget.
        self.item: RateLimitItem = RateLimitItemPerSecond(
            budget.amount, budget.get_expiry() + settings.fmcsa_budget_margin_s
        )
        self._max_wait_s = settings.fmcsa_budget_max_wait_s

    async def acquire(self) -> float:
        """Take one call from the budget; return the seconds spent waiting for it.

        Raises :class:`FmcsaOverBudgetError` when no call frees up within the
        allowed wait. The error's ``retry_in_s`` is the time until the next one does.
        """
        started = time.monotonic()
        deadline = started + self._max_wait_s
        slept = False
        while True:
            try:
                if await self._limiter.hit(self.item, BUDGET_IDENTIFIER):
                    waited_s = time.monotonic() - started if slept else 0.0
                    metrics.EXTERNAL_BUDGET_WAIT.labels("fmcsa").observe(waited_s)
                    return waited_s
                stats = await self._limiter.get_window_stats(self.item, BUDGET_IDENTIFIER)
            except REDIS_UNAVAILABLE_ERRORS as exc:
                raise FmcsaUnavailableError(
                    "The FMCSA call budget cannot be read because Redis is unreachable; "
                    "no FMCSA call is made until it is back.",
                    reason="redis_unavailable",
                ) from exc

            frees_in = max(0.0, stats.reset_time - time.time())
            if time.monotonic() + frees_in > deadline:
                metrics.EXTERNAL_BUDGET_WAIT.labels("fmcsa").observe(time.monotonic() - started)
                log.info(
                    "fmcsa.budget_exhausted",
                    budget=str(self.item),
                    frees_in_s=round(frees_in, 3),
                )
                raise FmcsaOverBudgetError(
                    f"The FMCSA call budget ({self.item}) is used up; the next call is "
                    f"possible in {frees_in:.1f} s. Retry after that.",
                    retry_in_s=frees_in,
                )
            # A little jitter so processes waiting for the same slot do not all
            # wake in the same millisecond; the loser simply waits again.
            await asyncio.sleep(frees_in + random.uniform(0.0, 0.05))  # noqa: S311
            slept = True


class RedisCircuitRepository(AsyncAbstractRepository):
    """purgatory's circuit state in one Redis hash, on the process's own client.

    purgatory's ``AsyncRedisUnitOfWork`` only takes a URL and opens its own
    client, which would bypass ``create_redis``. Its repository interface lets us
    keep the state on our pool and under our key namespace instead. Threshold
    and reset time come from settings on every read, so a configuration change
    applies without clearing Redis.
    """

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._threshold = settings.fmcsa_breaker_threshold
        self._ttl = settings.fmcsa_breaker_reset_s
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
            lambda pipe: (
                pipe.hsetnx(name, "state", context.state)
                .hsetnx(name, "failure_count", 0)
                .expire(name, self._expire_s)
            )
        )

    async def update_state(self, name: str, state: str, opened_at: float | None) -> None:
        redis_key = self._key(name)
        mapping = {"state": state, "opened_at": "" if opened_at is None else repr(opened_at)}
        await self._write(
            lambda pipe: pipe.hset(redis_key, mapping=mapping).expire(redis_key, self._expire_s)
        )
        log.info("fmcsa.circuit_state_changed", circuit=name, state=state)
        # Counted where the transition happens; admit() keeps every other
        # process's gauge in step with the shared state.
        metrics.set_circuit_state("fmcsa", state)

    async def inc_failures(self, name: str, failure_count: int) -> None:
        redis_key = self._key(name)
        await self._write(
            lambda pipe: pipe.hincrby(redis_key, "failure_count", 1).expire(
                redis_key, self._expire_s
            )
        )

    async def reset_failure(self, name: str) -> None:
        redis_key = self._key(name)
        await self._write(lambda pipe: pipe.hset(redis_key, "failure_count", 0))

    async def _write(self, build: Callable[[Any], Any]) -> None:
        # Recording is best effort: a lost write costs one miscounted failure,
        # while raising here would replace the call's own result or error.
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                build(pipe)
                await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("fmcsa.circuit_write_failed", error_type=type(exc).__name__)


class _RedisCircuitUnitOfWork(AsyncAbstractUnitOfWork):
    def __init__(self, repository: RedisCircuitRepository) -> None:
        self.contexts = repository

    async def commit(self) -> None:
        """Do nothing, because each repository write is atomic on its own."""

    async def rollback(self) -> None:
        """Do nothing: no write is deferred."""


def _is_not_a_failure(exc: BaseException) -> bool:
    # Only unavailability trips the circuit. A configuration error or an
    # unreadable body comes from a running service. A cancelled call counts as
    # a failure, because purgatory would otherwise close a circuit on a cancelled trial.
    return not isinstance(exc, (FmcsaTransientError, FmcsaMaintenanceError, asyncio.CancelledError))


class SharedCircuitBreaker:
    """A purgatory circuit breaker whose state every process reads from Redis.

    NOTE: once the reset time has passed, every process that calls finds the
    circuit half-open and sends its own trial call, because purgatory has no
    single-probe lock. The shared call budget bounds how many that can be.
    """

    def __init__(self, redis: Redis, settings: Settings, *, name: str = CIRCUIT_NAME) -> None:
        self.name = name
        self._repository = RedisCircuitRepository(redis, settings)
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=settings.fmcsa_breaker_threshold,
            default_ttl=settings.fmcsa_breaker_reset_s,
            exclude=[(BaseException, _is_not_a_failure)],
            uow=_RedisCircuitUnitOfWork(self._repository),
        )

    async def state(self) -> CircuitState:
        """Return the state stored in Redis (an expired open circuit still reads "opened")."""
        try:
            context = await self._repository.get(self.name)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            raise _redis_unavailable() from exc
        return "closed" if context is None else context.state

    async def admit(self) -> AsyncCircuitBreaker:
        """Read the shared state; raise :class:`FmcsaCircuitOpenError` while it is open."""
        try:
            breaker = await self._factory.get_breaker(self.name)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            raise _redis_unavailable() from exc
        context = breaker.context
        metrics.CIRCUIT_BREAKER_STATE.labels("fmcsa").set(_STATE_GAUGE_VALUES[context.state])
        if context.state == "opened" and context.opened_at is not None:
            retry_in = context.opened_at + context.ttl - time.time()
            if retry_in > 0:
                raise _circuit_open(retry_in)
        return breaker

    @staticmethod
    async def run(breaker: AsyncCircuitBreaker, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` inside an admitted breaker, which records the outcome."""
        try:
            async with breaker:
                return await operation()
        except OpenedState as exc:
            # Another process opened the circuit between admit() and now.
            raise _circuit_open(exc.opened_at + breaker.context.ttl - time.time()) from exc


def _circuit_open(retry_in_s: float) -> FmcsaCircuitOpenError:
    retry_in_s = max(0.0, retry_in_s)
    return FmcsaCircuitOpenError(
        f"FMCSA calls are paused after repeated failures; the next trial call is "
        f"allowed in {retry_in_s:.1f} s.",
        retry_in_s=retry_in_s,
    )


def _redis_unavailable() -> FmcsaUnavailableError:
    return FmcsaUnavailableError(
        "The FMCSA circuit state cannot be read because Redis is unreachable; "
        "no FMCSA call is made until it is back.",
        reason="redis_unavailable",
    )


class _FullJitterWait(wait_random_exponential):
    """Full jitter (uniform between 0 and the exponential step), raised to Retry-After."""

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = float(super().__call__(retry_state))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, FmcsaTransientError) and error.retry_after_s is not None:
            wait = max(wait, min(error.retry_after_s, float(self.max)))
        return wait


class FmcsaGuard:
    """Budget, breaker and retries around one logical FMCSA request."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis: Redis,
        limits_storage: RedisStorage,
    ) -> None:
        self.budget = CallBudget(limits_storage, settings)
        self.breaker = SharedCircuitBreaker(redis, settings)
        self._attempts = settings.fmcsa_retry_attempts
        self._wait = _FullJitterWait(
            multiplier=settings.fmcsa_retry_initial_s, max=settings.fmcsa_retry_max_s
        )

    async def call(self, operation: Callable[[], Awaitable[T]], *, endpoint: str) -> T:
        """Run ``operation`` with retries; each attempt passes breaker and budget."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(FmcsaTransientError),
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            reraise=True,
            before_sleep=lambda state: _log_retry(state, endpoint),
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(operation, endpoint)
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(self, operation: Callable[[], Awaitable[T]], endpoint: str) -> T:
        try:
            # Breaker first: an open circuit must not spend budget.
            breaker = await self.breaker.admit()
            waited_s = await self.budget.acquire()
            if waited_s > 0:
                log.info("fmcsa.budget_waited", endpoint=endpoint, waited_s=round(waited_s, 3))
            return await self.breaker.run(breaker, operation)
        except FmcsaCircuitOpenError:
            # No call was made, so metrics.external_call did not count this one.
            metrics.EXTERNAL_CALL_ERRORS.labels("fmcsa", endpoint, "circuit_open").inc()
            raise


def _log_retry(state: RetryCallState, endpoint: str) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "fmcsa.retry_scheduled",
        endpoint=endpoint,
        attempt=state.attempt_number,
        reason=getattr(error, "reason", type(error).__name__),
        wait_s=round(state.upcoming_sleep, 3),
    )
