"""The payment provider client of a process, and timed calls to it.

The provider is chosen by configuration only: the Stripe implementation with
``SO_STRIPE_API_BASE`` pointing at Stripe, or at the local simulator in
development and tests. With an empty ``SO_STRIPE_SECRET_KEY`` there is no
provider and a charge request gets 503; invoicing and webhooks still work.

Every provider built here passes Stripe's circuit breaker, whose state lives in
Redis: on the process's Redis client when the caller has one, else on a client
of the provider's own, closed with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.observability import metrics
from superior_one.payments.errors import PaymentsNotConfiguredError
from superior_one.payments.provider import (
    CardDeclinedError,
    IdempotencyKeyInUseError,
    PaymentProvider,
    PaymentProviderError,
    ProviderCircuitOpenError,
    ProviderUnavailableError,
)
from superior_one.payments.stripe_provider import StripePaymentProvider
from superior_one.redis import create_redis

T = TypeVar("T")
DEPENDENCY = "stripe"


def is_configured(settings: Settings) -> bool:
    return bool(settings.stripe_secret_key.get_secret_value())


def _not_configured() -> PaymentsNotConfiguredError:
    return PaymentsNotConfiguredError(
        "Payments are not configured on this server (SO_STRIPE_SECRET_KEY is empty). "
        "Try again later or contact support."
    )


@asynccontextmanager
async def open_provider(
    settings: Settings, redis: Redis | None = None
) -> AsyncIterator[PaymentProvider]:
    """Open a provider client for the duration of the block (one job run or command).

    Pass the process's Redis client; without one the block opens its own for the breaker.
    """
    # NOTE: the worker's WorkerDeps has no provider, so each job builds a client and
    # its connection pool; a per-process client there would save that per job.
    if not is_configured(settings):
        raise _not_configured()
    own_redis = create_redis(settings) if redis is None else None
    provider = StripePaymentProvider.from_settings(settings, redis=redis or own_redis)
    try:
        yield provider
    finally:
        await provider.aclose()
        if own_redis is not None:
            await own_redis.aclose()


@dataclass(slots=True)
class PaymentsRuntime:
    """The api process's long-lived provider client (``app.state.payments``)."""

    provider: PaymentProvider | None
    # The breaker's Redis client when the runtime had to open one itself.
    own_redis: Redis | None = None

    @classmethod
    def create(cls, settings: Settings, redis: Redis | None = None) -> PaymentsRuntime:
        """Build the provider; pass the process's Redis client, or the runtime opens its own."""
        if not is_configured(settings):
            return cls(provider=None)
        own_redis = create_redis(settings) if redis is None else None
        provider = StripePaymentProvider.from_settings(settings, redis=redis or own_redis)
        return cls(provider=provider, own_redis=own_redis)

    def require_provider(self) -> PaymentProvider:
        if self.provider is None:
            raise _not_configured()
        return self.provider

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()
        if self.own_redis is not None:
            await self.own_redis.aclose()


def _error_kind(exc: PaymentProviderError) -> str:
    if isinstance(exc, ProviderCircuitOpenError):
        return "circuit_open"
    if isinstance(exc, ProviderUnavailableError):
        if exc.http_status is None:
            return "timeout" if exc.outcome_unknown else "connection"
        if exc.http_status == 429:
            return "rate_limited"
        return "http_5xx" if exc.http_status >= 500 else "http_4xx"
    if isinstance(exc, IdempotencyKeyInUseError):
        return "http_4xx"
    return "http_4xx" if exc.http_status is not None and exc.http_status < 500 else "other"


async def timed_call(operation: str, call: Awaitable[T]) -> T:
    """Await one provider call, recording its latency and failure kind.

    A card decline is a valid response, not a failed call: it is timed as ``ok``.
    """
    declined: CardDeclinedError | None = None
    with metrics.external_call(DEPENDENCY, operation) as handle:
        try:
            return await call
        except CardDeclinedError as exc:
            declined = exc
        except PaymentProviderError as exc:
            handle.error_kind = _error_kind(exc)
            raise
    assert declined is not None
    raise declined
