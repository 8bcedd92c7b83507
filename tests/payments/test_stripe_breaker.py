"""Stripe's circuit breaker: state in the real Redis, faults from the payment simulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.payments.models import AttemptStatus, InvoiceStatus, SettledBy
from superior_one.payments.provider import (
    CardDeclinedError,
    CreatePaymentIntent,
    IdempotencyKeyInUseError,
    PaymentIntentStatus,
    ProviderCircuitOpenError,
    ProviderRequestError,
    ProviderUnavailableError,
    charge_idempotency_key,
)
from superior_one.payments.runtime import open_provider
from superior_one.payments.service import call_create_intent
from superior_one.payments.stripe_provider import (
    StripePaymentProvider,
    is_unavailability,
    stripe_circuit_breaker,
)
from superior_one.redis import create_redis
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import ApiFault, FaultPlan, PaymentProviderSimulator
from tests.payments.factories import (
    attempts_of,
    charge,
    completed_load,
    create_parties,
    drain_jobs,
    issue_invoice,
    reload_invoice,
    save_billing_profile,
)

THRESHOLD = 3
RESET_S = 1.0
EVERY_INTENT_CREATE_FAILS = FaultPlan(api=[ApiFault(kind="server_error", status=503, times=None)])
CHARGE = CreatePaymentIntent(
    amount_cents=123456,
    currency="usd",
    customer="cus_test_A",
    payment_method="pm_card_visa",
    confirm=True,
    off_session=True,
)

MakeProvider = Callable[..., StripePaymentProvider]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Settings of the app, the worker and the providers of these tests: a short reset time."""
    return settings.model_copy(
        update={"stripe_breaker_threshold": THRESHOLD, "stripe_breaker_reset_s": RESET_S}
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    yield client
    await client.aclose()


@pytest.fixture
async def make_provider(settings: Settings, redis: Redis) -> AsyncIterator[MakeProvider]:
    """Build providers on the test's Redis, each one as if in its own process."""
    opened: list[StripePaymentProvider] = []

    def make(**overrides: object) -> StripePaymentProvider:
        provider = StripePaymentProvider.from_settings(
            settings.model_copy(update=overrides), redis=redis
        )
        opened.append(provider)
        return provider

    yield make
    for provider in opened:
        await provider.aclose()


def _key(n: int) -> str:
    return charge_idempotency_key("inv-breaker", n)


async def _state(settings: Settings, redis: Redis) -> str:
    return await stripe_circuit_breaker(redis, settings).state()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _transitions(state: str) -> float:
    return _sample("so_circuit_breaker_transitions_total", dependency="stripe", state=state)


async def _fail(provider: StripePaymentProvider, times: int, *, first_key: int = 1) -> None:
    for n in range(first_key, first_key + times):
        with pytest.raises(ProviderUnavailableError) as caught:
            await provider.create_payment_intent(CHARGE, idempotency_key=_key(n))
        assert not isinstance(caught.value, ProviderCircuitOpenError)


# --- which errors count ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ProviderUnavailableError("timed out", outcome_unknown=True), True),
        (ProviderUnavailableError("no connection"), True),
        (ProviderUnavailableError("server error", http_status=503), True),
        (ProviderUnavailableError("rate limited", http_status=429), True),
        (ProviderUnavailableError("lock timeout", http_status=409), False),
        (IdempotencyKeyInUseError("key in use", http_status=409), False),
        (ProviderRequestError("no such payment intent", http_status=404), False),
        (
            CardDeclinedError(
                "declined", decline_code="generic_decline", advice_code=None, payment_intent=None
            ),
            False,
        ),
    ],
    ids=["timeout", "connection", "5xx", "429", "409", "key-in-use", "404", "decline"],
)
def test_is_unavailability_by_error(error: Exception, counts: bool) -> None:
    assert is_unavailability(error) is counts


# --- opening and failing fast ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "timeout_s"),
    [
        (ApiFault(kind="server_error", status=503, times=None), 2.0),
        (ApiFault(kind="timeout", delay_s=0.6, times=None), 0.3),
    ],
    ids=["503", "timeout"],
)
async def test_breaker_opens_after_threshold_and_fails_fast(
    make_provider: MakeProvider,
    simulator: PaymentProviderSimulator,
    settings: Settings,
    redis: Redis,
    fault: ApiFault,
    timeout_s: float,
) -> None:
    provider = make_provider(stripe_timeout_s=timeout_s)
    simulator.faults = FaultPlan(api=[fault])
    await _fail(provider, THRESHOLD)

    with pytest.raises(ProviderCircuitOpenError) as caught:
        await provider.create_payment_intent(CHARGE, idempotency_key=_key(99))

    assert isinstance(caught.value, ProviderUnavailableError)
    assert caught.value.outcome_unknown is False
    assert 0 < caught.value.retry_in_s <= RESET_S
    assert simulator.stats["requests"] == THRESHOLD
    assert await _state(settings, redis) == "opened"


async def test_breaker_opens_on_refused_connections(settings: Settings, redis: Redis) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    provider = StripePaymentProvider.from_settings(
        settings.model_copy(update={"stripe_api_base": f"http://127.0.0.1:{port}"}), redis=redis
    )
    try:
        await _fail(provider, THRESHOLD)
        with pytest.raises(ProviderCircuitOpenError):
            await provider.retrieve_payment_intent("pi_unknown")
    finally:
        await provider.aclose()

    assert await _state(settings, redis) == "opened"


async def test_breaker_open_for_every_process(
    make_provider: MakeProvider, simulator: PaymentProviderSimulator
) -> None:
    simulator.faults = EVERY_INTENT_CREATE_FAILS
    await _fail(make_provider(), THRESHOLD)
    simulator.faults = FaultPlan()

    with pytest.raises(ProviderCircuitOpenError):
        await make_provider().retrieve_payment_intent("pi_unknown")

    assert simulator.stats["requests"] == THRESHOLD


# --- responses that do not count ---------------------------------------------------------


async def test_breaker_stays_closed_on_declines(
    make_provider: MakeProvider,
    simulator: PaymentProviderSimulator,
    settings: Settings,
    redis: Redis,
) -> None:
    provider = make_provider()
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline", times=None)])

    for n in range(THRESHOLD * 2):
        with pytest.raises(CardDeclinedError):
            await provider.create_payment_intent(CHARGE, idempotency_key=_key(n + 1))

    assert simulator.stats["requests"] == THRESHOLD * 2
    assert await _state(settings, redis) == "closed"


async def test_breaker_stays_closed_on_rejected_requests(
    make_provider: MakeProvider,
    simulator: PaymentProviderSimulator,
    settings: Settings,
    redis: Redis,
) -> None:
    provider = make_provider()

    for _ in range(THRESHOLD * 2):
        with pytest.raises(ProviderRequestError):
            await provider.retrieve_payment_intent("pi_unknown")

    assert simulator.stats["requests"] == THRESHOLD * 2
    assert await _state(settings, redis) == "closed"


async def test_breaker_decline_between_failures_restarts_count(
    make_provider: MakeProvider,
    simulator: PaymentProviderSimulator,
    settings: Settings,
    redis: Redis,
) -> None:
    provider = make_provider()
    simulator.faults = EVERY_INTENT_CREATE_FAILS
    await _fail(provider, THRESHOLD - 1)
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline")])
    with pytest.raises(CardDeclinedError):
        await provider.create_payment_intent(CHARGE, idempotency_key=_key(50))
    simulator.faults = EVERY_INTENT_CREATE_FAILS

    await _fail(provider, THRESHOLD - 1, first_key=60)

    assert await _state(settings, redis) == "closed"


# --- recovery ----------------------------------------------------------------------------


async def test_breaker_closes_after_successful_trial(
    make_provider: MakeProvider,
    simulator: PaymentProviderSimulator,
    settings: Settings,
    redis: Redis,
) -> None:
    provider = make_provider()
    simulator.faults = EVERY_INTENT_CREATE_FAILS
    await _fail(provider, THRESHOLD)
    simulator.faults = FaultPlan()
    half_open_before = _transitions("half_open")
    closed_before = _transitions("closed")

    await asyncio.sleep(RESET_S + 0.1)
    intent = await provider.create_payment_intent(CHARGE, idempotency_key=_key(99))

    assert intent.status is PaymentIntentStatus.SUCCEEDED
    assert await _state(settings, redis) == "closed"
    assert _transitions("half_open") - half_open_before == 1
    assert _transitions("closed") - closed_before == 1
    assert _sample("so_circuit_breaker_state", dependency="stripe") == 0.0


async def test_breaker_reopens_when_trial_call_fails(
    make_provider: MakeProvider, simulator: PaymentProviderSimulator
) -> None:
    provider = make_provider()
    simulator.faults = EVERY_INTENT_CREATE_FAILS
    await _fail(provider, THRESHOLD)
    await asyncio.sleep(RESET_S + 0.1)

    await _fail(provider, 1, first_key=10)  # the trial call
    with pytest.raises(ProviderCircuitOpenError):
        await provider.create_payment_intent(CHARGE, idempotency_key=_key(11))

    assert simulator.stats["requests"] == THRESHOLD + 1


async def test_breaker_state_metric_shows_open(
    make_provider: MakeProvider, simulator: PaymentProviderSimulator
) -> None:
    opened_before = _transitions("open")
    simulator.faults = EVERY_INTENT_CREATE_FAILS

    await _fail(make_provider(), THRESHOLD)

    assert _sample("so_circuit_breaker_state", dependency="stripe") == 2.0
    assert _transitions("open") - opened_before == 1


async def test_breaker_fail_fast_counted_as_circuit_open(
    settings: Settings, simulator: PaymentProviderSimulator
) -> None:
    def rejected() -> float:
        return _sample(
            "so_external_call_errors_total",
            dependency="stripe",
            operation="create_payment_intent",
            kind="circuit_open",
        )

    simulator.faults = EVERY_INTENT_CREATE_FAILS
    async with open_provider(settings) as provider:
        for n in range(THRESHOLD):
            await call_create_intent(provider, CHARGE, _key(n + 1))
        before = rejected()
        outcome = await call_create_intent(provider, CHARGE, _key(99))

    assert outcome.kind == "unknown"
    assert rejected() - before == 1


async def test_breaker_unreadable_redis_calls_stripe(
    settings: Settings, simulator: PaymentProviderSimulator
) -> None:
    # Nothing listens on port 1: every Redis command fails at once.
    unreachable = create_redis(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    provider = StripePaymentProvider.from_settings(settings, redis=unreachable)
    try:
        intent = await provider.create_payment_intent(CHARGE, idempotency_key=_key(1))
    finally:
        await provider.aclose()
        await unreachable.aclose()

    assert intent.status is PaymentIntentStatus.SUCCEEDED
    assert simulator.stats["requests"] == 1


# --- charges while the breaker is open ----------------------------------------------------


async def test_charge_while_open_reconciled_later(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    simulator.faults = FaultPlan(
        api=[ApiFault(kind="server_error", method="GET", path="/v1/payment_intents", times=None)]
    )
    async with open_provider(settings) as provider:
        for _ in range(THRESHOLD):
            with pytest.raises(ProviderUnavailableError):
                await provider.retrieve_payment_intent("pi_unknown")
    simulator.faults = FaultPlan()  # Stripe is back; the breaker is still open.
    requests_before = simulator.stats["requests"]

    response = await charge(client, invoice.id, parties.shipper)
    requests_during_open = simulator.stats["requests"] - requests_before
    await asyncio.sleep(RESET_S + 0.1)
    await drain_jobs(settings)

    assert response.status_code == 202, response.text
    assert response.json()["invoice"]["status"] == "PROCESSING"
    assert requests_during_open == 0
    attempt = (await attempts_of(resources.sessionmaker, invoice.id))[0]
    assert (attempt.status, attempt.settled_by) == (
        AttemptStatus.SUCCEEDED,
        SettledBy.RECONCILIATION,
    )
    assert (await reload_invoice(resources.sessionmaker, invoice.id)).status is InvoiceStatus.PAID
    assert [
        r["idempotency_key"] for r in simulator.request_log if r["path"] == "/v1/payment_intents"
    ] == [f"inv:{invoice.id}:charge:1"]
    assert simulator.stats["payment_intents_created"] == 1
