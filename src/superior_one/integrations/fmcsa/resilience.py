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

The breaker itself is :class:`superior_one.resilience.SharedCircuitBreaker`,
shared with the Stripe provider.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
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
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS
from superior_one.resilience import (
    CircuitOpenError,
    CircuitStateUnavailableError,
    SharedCircuitBreaker,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

BUDGET_IDENTIFIER = "fmcsa"
CIRCUIT_NAME = "fmcsa"


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


def _counts_as_failure(exc: BaseException) -> bool:
    # Only unavailability trips the circuit. A configuration error or an
    # unreadable body comes from a running service.
    return isinstance(exc, (FmcsaTransientError, FmcsaMaintenanceError))


def fmcsa_circuit_breaker(redis: Redis, settings: Settings) -> SharedCircuitBreaker:
    """Return the breaker of FMCSA calls, its state shared through Redis.

    Every process may send a trial call once the reset time has passed; the
    shared call budget bounds how many that can be.
    """
    return SharedCircuitBreaker(
        redis,
        settings,
        name=CIRCUIT_NAME,
        threshold=settings.fmcsa_breaker_threshold,
        reset_s=settings.fmcsa_breaker_reset_s,
        counts_as_failure=_counts_as_failure,
    )


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
        self.breaker = fmcsa_circuit_breaker(redis, settings)
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
        except CircuitOpenError as exc:
            # No call was made, so metrics.external_call did not count this one.
            metrics.EXTERNAL_CALL_ERRORS.labels("fmcsa", endpoint, "circuit_open").inc()
            raise _circuit_open(exc.retry_in_s) from exc
        except CircuitStateUnavailableError as exc:
            raise _redis_unavailable() from exc


def _log_retry(state: RetryCallState, endpoint: str) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "fmcsa.retry_scheduled",
        endpoint=endpoint,
        attempt=state.attempt_number,
        reason=getattr(error, "reason", type(error).__name__),
        wait_s=round(state.upcoming_sleep, 3),
    )
