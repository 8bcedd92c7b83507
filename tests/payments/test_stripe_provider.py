"""The Stripe implementation (official SDK) against the local payment provider simulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import stripe
from pydantic import SecretStr

from superior_one.config import Settings
from superior_one.payments.provider import (
    CardDeclinedError,
    CreateConnectedAccount,
    CreatePaymentIntent,
    CreateRefund,
    CreateTransfer,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    PaymentIntentStatus,
    ProviderAuthenticationError,
    ProviderRequestError,
    ProviderUnavailableError,
    account_idempotency_key,
    charge_idempotency_key,
    confirm_idempotency_key,
    refund_idempotency_key,
    transfer_idempotency_key,
)
from superior_one.payments.stripe_provider import StripePaymentProvider
from superior_one.simulators.payment_provider import (
    DEFAULT_API_KEY,
    ApiFault,
    FaultPlan,
    PaymentProviderSimulator,
    run_payment_provider,
)
from superior_one.simulators.server import ServerThread

INVOICE_CHARGE = CreatePaymentIntent(
    amount_cents=123456,
    currency="usd",
    customer="cus_test_A",
    payment_method="pm_card_visa",
    confirm=True,
    off_session=True,
    transfer_group="load_42",
    metadata={"invoice_id": "INV-1001"},
)
CHARGE_KEY = charge_idempotency_key("INV-1001", 1)


@pytest.fixture
def running() -> Iterator[tuple[PaymentProviderSimulator, ServerThread]]:
    with run_payment_provider() as pair:
        yield pair


@pytest.fixture
def simulator(running: tuple[PaymentProviderSimulator, ServerThread]) -> PaymentProviderSimulator:
    return running[0]


def _settings(base_url: str, *, timeout_s: float = 5.0, key: str = DEFAULT_API_KEY) -> Settings:
    return Settings(
        stripe_secret_key=SecretStr(key), stripe_api_base=base_url, stripe_timeout_s=timeout_s
    )


@pytest.fixture
async def provider(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> AsyncIterator[StripePaymentProvider]:
    client = StripePaymentProvider.from_settings(_settings(running[1].base_url))
    yield client
    await client.aclose()


async def _activate_account(base_url: str, account_id: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as admin:
        response = await admin.post(f"/__sim/accounts/{account_id}/activate")
    assert response.status_code == 200


async def _charge_and_account(
    provider: StripePaymentProvider, base_url: str, *, activate: bool = True
) -> tuple[str, str]:
    """Charge the invoice and create a carrier account; return (charge id, account id)."""
    intent = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    account = await provider.create_connected_account(
        CreateConnectedAccount(), idempotency_key=account_idempotency_key("carrier-7")
    )
    if activate:
        await _activate_account(base_url, account.id)
    assert intent.latest_charge_id is not None
    return intent.latest_charge_id, account.id


def _keys_sent(simulator: PaymentProviderSimulator, path: str) -> list[str | None]:
    return [r["idempotency_key"] for r in simulator.request_log if r["path"] == path]


# --- Construction --------------------------------------------------------------


def test_from_settings_leaves_sdk_globals_alone(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    StripePaymentProvider.from_settings(_settings(running[1].base_url))

    assert stripe.api_key is None
    assert stripe.api_base == "https://api.stripe.com"


def test_from_settings_rejects_empty_secret() -> None:
    with pytest.raises(ValueError, match="SO_STRIPE_SECRET_KEY"):
        StripePaymentProvider.from_settings(_settings("http://127.0.0.1:1", key=""))


# --- PaymentIntents ------------------------------------------------------------


async def test_create_payment_intent_succeeds(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    intent = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    assert intent.id.startswith("pi_")
    assert intent.status is PaymentIntentStatus.SUCCEEDED
    assert intent.amount_cents == 123456
    assert intent.amount_received_cents == 123456
    assert intent.customer == "cus_test_A"
    assert intent.transfer_group == "load_42"
    assert intent.metadata == {"invoice_id": "INV-1001"}
    assert intent.latest_charge_id is not None
    assert intent.replayed is False
    assert _keys_sent(simulator, "/v1/payment_intents") == ["inv:INV-1001:charge:1"]


async def test_create_payment_intent_replay_same_key(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    first = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    second = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    assert second.id == first.id
    assert second.replayed is True
    assert simulator.stats["payment_intents_created"] == 1
    assert simulator.stats["charges_succeeded"] == 1


async def test_create_payment_intent_changed_params_same_key(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    changed = CreatePaymentIntent(
        amount_cents=123457,
        currency="usd",
        customer="cus_test_A",
        payment_method="pm_card_visa",
        confirm=True,
        off_session=True,
        transfer_group="load_42",
        metadata={"invoice_id": "INV-1001"},
    )

    with pytest.raises(IdempotencyKeyReusedError) as excinfo:
        await provider.create_payment_intent(changed, idempotency_key=CHARGE_KEY)

    assert excinfo.value.http_status == 400
    assert excinfo.value.retryable is False
    assert simulator.stats["payment_intents_created"] == 1


async def test_create_payment_intent_50_concurrent_one_key(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    # The first request waits inside the provider, so the others overlap it.
    simulator.faults = FaultPlan(api=[ApiFault(kind="latency", delay_s=0.5)])

    outcomes = await asyncio.gather(
        *(
            provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
            for _ in range(50)
        ),
        return_exceptions=True,
    )
    ids = {o.id for o in outcomes if not isinstance(o, BaseException)}
    in_use = [o for o in outcomes if isinstance(o, IdempotencyKeyInUseError)]
    other_errors = [
        o
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, IdempotencyKeyInUseError)
    ]
    retried = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    assert other_errors == []
    assert len(ids) == 1
    assert len(in_use) >= 1
    assert all(error.retryable for error in in_use)
    assert retried.id in ids
    assert simulator.stats["payment_intents_created"] == 1
    assert simulator.stats["charges_succeeded"] == 1


async def test_create_payment_intent_50_concurrent_no_latency(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    outcomes = await asyncio.gather(
        *(
            provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
            for _ in range(50)
        ),
        return_exceptions=True,
    )
    ids = {o.id for o in outcomes if not isinstance(o, BaseException)}
    unexpected = [
        o
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, IdempotencyKeyInUseError)
    ]

    assert unexpected == []
    assert len(ids) == 1
    assert simulator.stats["payment_intents_created"] == 1


async def test_create_payment_intent_lost_response_retry(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    simulator, server = running
    # The provider creates the PaymentIntent but the response arrives after
    # the client has given up.
    simulator.faults = FaultPlan(api=[ApiFault(kind="timeout", delay_s=2.0)])
    client = StripePaymentProvider.from_settings(_settings(server.base_url, timeout_s=0.5))
    try:
        with pytest.raises(ProviderUnavailableError) as excinfo:
            await client.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
        retried = await client.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    finally:
        await client.aclose()

    assert excinfo.value.outcome_unknown is True
    assert excinfo.value.retryable is True
    assert retried.replayed is True
    assert retried.status is PaymentIntentStatus.SUCCEEDED
    assert _keys_sent(simulator, "/v1/payment_intents") == [CHARGE_KEY, CHARGE_KEY]
    assert simulator.stats["payment_intents_created"] == 1


async def test_create_payment_intent_server_error_sent_once(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    simulator.faults = FaultPlan(api=[ApiFault(kind="server_error", status=503)])

    with pytest.raises(ProviderUnavailableError) as excinfo:
        await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    requests_after_error = len(_keys_sent(simulator, "/v1/payment_intents"))
    retried = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    assert excinfo.value.http_status == 503
    assert requests_after_error == 1
    assert retried.status is PaymentIntentStatus.SUCCEEDED
    assert simulator.stats["payment_intents_created"] == 1


async def test_create_payment_intent_soft_decline(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline", decline_code="insufficient_funds")])

    with pytest.raises(CardDeclinedError) as excinfo:
        await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    error = excinfo.value
    assert error.decline_code == "insufficient_funds"
    assert error.hard is False
    assert error.http_status == 402
    assert error.payment_intent is not None
    assert error.payment_intent.status is PaymentIntentStatus.REQUIRES_PAYMENT_METHOD
    assert error.payment_intent.last_failure is not None
    assert error.payment_intent.last_failure.decline_code == "insufficient_funds"


async def test_create_payment_intent_decline_replayed(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    # A decline is stored under the key like a success: retrying the same
    # attempt returns the same decline, and a new attempt needs a new key.
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline")])
    with pytest.raises(CardDeclinedError) as first:
        await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    with pytest.raises(CardDeclinedError) as second:
        await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    next_attempt = await provider.create_payment_intent(
        INVOICE_CHARGE, idempotency_key=charge_idempotency_key("INV-1001", 2)
    )

    assert first.value.payment_intent is not None
    assert second.value.payment_intent is not None
    assert second.value.payment_intent.id == first.value.payment_intent.id
    assert next_attempt.status is PaymentIntentStatus.SUCCEEDED
    assert simulator.stats["payment_intents_created"] == 2


@pytest.mark.parametrize(
    ("payment_method", "decline_code", "code"),
    [
        ("pm_card_chargeDeclinedStolenCard", "stolen_card", "card_declined"),
        ("pm_card_chargeDeclinedLostCard", "lost_card", "card_declined"),
        ("pm_card_chargeDeclinedExpiredCard", None, "expired_card"),
    ],
)
async def test_create_payment_intent_hard_decline(
    provider: StripePaymentProvider, payment_method: str, decline_code: str | None, code: str
) -> None:
    request = CreatePaymentIntent(
        amount_cents=5000,
        currency="usd",
        customer="cus_test_A",
        payment_method=payment_method,
        confirm=True,
    )

    with pytest.raises(CardDeclinedError) as excinfo:
        await provider.create_payment_intent(request, idempotency_key=CHARGE_KEY)

    assert excinfo.value.hard is True
    assert excinfo.value.decline_code == decline_code
    assert excinfo.value.code == code


async def test_create_payment_intent_advice_code_makes_decline_hard(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    simulator.faults = FaultPlan(
        api=[
            ApiFault(kind="decline", decline_code="generic_decline", advice_code="do_not_try_again")
        ]
    )

    with pytest.raises(CardDeclinedError) as excinfo:
        await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    assert excinfo.value.hard is True


async def test_create_payment_intent_below_minimum_rejected(
    provider: StripePaymentProvider,
) -> None:
    request = CreatePaymentIntent(amount_cents=49, currency="usd", customer="cus_test_A")

    with pytest.raises(ProviderRequestError) as excinfo:
        await provider.create_payment_intent(request, idempotency_key=CHARGE_KEY)

    assert excinfo.value.code == "amount_too_small"


async def test_confirm_payment_intent_after_create(provider: StripePaymentProvider) -> None:
    draft = CreatePaymentIntent(amount_cents=5000, currency="usd", customer="cus_test_A")
    created = await provider.create_payment_intent(draft, idempotency_key=CHARGE_KEY)

    confirmed = await provider.confirm_payment_intent(
        created.id,
        idempotency_key=confirm_idempotency_key("INV-1001", 1),
        payment_method="pm_card_visa",
        off_session=True,
    )

    assert created.status is PaymentIntentStatus.REQUIRES_PAYMENT_METHOD
    assert confirmed.id == created.id
    assert confirmed.status is PaymentIntentStatus.SUCCEEDED


async def test_confirm_payment_intent_twice_new_key_rejected(
    provider: StripePaymentProvider,
) -> None:
    created = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    with pytest.raises(ProviderRequestError) as excinfo:
        await provider.confirm_payment_intent(
            created.id, idempotency_key=confirm_idempotency_key("INV-1001", 9)
        )

    assert excinfo.value.code == "payment_intent_unexpected_state"


async def test_retrieve_payment_intent(provider: StripePaymentProvider) -> None:
    created = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    fetched = await provider.retrieve_payment_intent(created.id)

    assert fetched.id == created.id
    assert fetched.status is PaymentIntentStatus.SUCCEEDED
    assert fetched.latest_charge_id == created.latest_charge_id


async def test_retrieve_payment_intent_unknown_id(provider: StripePaymentProvider) -> None:
    with pytest.raises(ProviderRequestError) as excinfo:
        await provider.retrieve_payment_intent("pi_missing")

    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"


# --- Refunds -------------------------------------------------------------------


async def test_create_refund_partial_then_rest(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    intent = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    partial = await provider.create_refund(
        CreateRefund(payment_intent_id=intent.id, amount_cents=1000, reason="duplicate"),
        idempotency_key=refund_idempotency_key("INV-1001", 1),
    )
    rest = await provider.create_refund(
        CreateRefund(payment_intent_id=intent.id),
        idempotency_key=refund_idempotency_key("INV-1001", 2),
    )

    assert partial.amount_cents == 1000
    assert partial.status == "succeeded"
    assert partial.payment_intent_id == intent.id
    assert partial.charge_id == intent.latest_charge_id
    assert rest.amount_cents == 123456 - 1000
    assert simulator.stats["refunds_created"] == 2


async def test_create_refund_more_than_charged_rejected(provider: StripePaymentProvider) -> None:
    intent = await provider.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)

    with pytest.raises(ProviderRequestError) as excinfo:
        await provider.create_refund(
            CreateRefund(payment_intent_id=intent.id, amount_cents=123457),
            idempotency_key=refund_idempotency_key("INV-1001", 1),
        )

    assert excinfo.value.code == "amount_too_large"


# --- Connect: accounts and transfers ------------------------------------------


async def test_create_connected_account_starts_inactive(
    provider: StripePaymentProvider, simulator: PaymentProviderSimulator
) -> None:
    key = account_idempotency_key("carrier-7")
    account = await provider.create_connected_account(
        CreateConnectedAccount(email="ops@carrier.example", metadata={"carrier_id": "carrier-7"}),
        idempotency_key=key,
    )
    again = await provider.create_connected_account(
        CreateConnectedAccount(email="ops@carrier.example", metadata={"carrier_id": "carrier-7"}),
        idempotency_key=key,
    )

    assert account.id.startswith("acct_")
    assert account.payouts_enabled is False
    assert account.transfers_capability == "inactive"
    assert again.id == account.id
    assert simulator.stats["accounts_created"] == 1


async def test_retrieve_connected_account_after_onboarding(
    provider: StripePaymentProvider, running: tuple[PaymentProviderSimulator, ServerThread]
) -> None:
    account = await provider.create_connected_account(
        CreateConnectedAccount(), idempotency_key=account_idempotency_key("carrier-7")
    )
    await _activate_account(running[1].base_url, account.id)

    fetched = await provider.retrieve_connected_account(account.id)

    assert fetched.payouts_enabled is True
    assert fetched.charges_enabled is True
    assert fetched.details_submitted is True
    assert fetched.transfers_capability == "active"


def _payout(amount_cents: int, charge_id: str, account_id: str) -> CreateTransfer:
    return CreateTransfer(
        amount_cents=amount_cents,
        currency="usd",
        destination_account=account_id,
        transfer_group="load_42",
        source_transaction=charge_id,
        metadata={"load_id": "42"},
    )


async def test_create_transfer_pays_carrier_from_charge(
    provider: StripePaymentProvider, running: tuple[PaymentProviderSimulator, ServerThread]
) -> None:
    simulator, server = running
    charge_id, account_id = await _charge_and_account(provider, server.base_url)

    transfer = await provider.create_transfer(
        _payout(119752, charge_id, account_id),
        idempotency_key=transfer_idempotency_key("payout-1"),
    )

    assert transfer.id.startswith("tr_")
    assert transfer.amount_cents == 119752
    assert transfer.destination_account == account_id
    assert transfer.transfer_group == "load_42"
    assert transfer.source_transaction == charge_id
    assert simulator.stats["transfers_created"] == 1


async def test_create_transfer_to_inactive_account_rejected(
    provider: StripePaymentProvider, running: tuple[PaymentProviderSimulator, ServerThread]
) -> None:
    charge_id, account_id = await _charge_and_account(provider, running[1].base_url, activate=False)

    with pytest.raises(ProviderRequestError) as excinfo:
        await provider.create_transfer(
            _payout(100, charge_id, account_id),
            idempotency_key=transfer_idempotency_key("payout-1"),
        )

    assert excinfo.value.code == "insufficient_capabilities_for_transfer"


async def test_create_transfer_beyond_source_charge_rejected(
    provider: StripePaymentProvider, running: tuple[PaymentProviderSimulator, ServerThread]
) -> None:
    charge_id, account_id = await _charge_and_account(provider, running[1].base_url)

    with pytest.raises(ProviderRequestError) as excinfo:
        await provider.create_transfer(
            _payout(123457, charge_id, account_id),
            idempotency_key=transfer_idempotency_key("payout-1"),
        )

    assert excinfo.value.code == "balance_insufficient"


# --- Configuration and transport errors ---------------------------------------


async def test_wrong_secret_key_rejected(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    client = StripePaymentProvider.from_settings(_settings(running[1].base_url, key="sk_wrong"))
    try:
        with pytest.raises(ProviderAuthenticationError) as excinfo:
            await client.retrieve_payment_intent("pi_any")
    finally:
        await client.aclose()

    assert excinfo.value.http_status == 401


async def test_unreachable_provider_outcome_known() -> None:
    # A port with nothing listening: the connection is refused, so the
    # request never reached the provider.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = StripePaymentProvider.from_settings(_settings(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(ProviderUnavailableError) as excinfo:
            await client.create_payment_intent(INVOICE_CHARGE, idempotency_key=CHARGE_KEY)
    finally:
        await client.aclose()

    assert excinfo.value.outcome_unknown is False
