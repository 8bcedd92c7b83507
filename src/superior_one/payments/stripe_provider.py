"""The :class:`PaymentProvider` on the official ``stripe`` SDK (stripe 16).

One :class:`stripe.StripeClient` per process, built from settings by
:meth:`StripePaymentProvider.from_settings` and closed with :meth:`aclose`.
Nothing touches the SDK's module-level globals (``stripe.api_key`` and so on),
so several clients with different keys or base URLs can live side by side (the
tests point one at the local simulator).

Calls use the SDK's native async methods (``*_async``) over its httpx client.
The SDK's own network retries are off (``max_network_retries=0``): when they
are on, a retry of a POST without an explicit key gets a fresh random key and
can charge twice. The caller retries, always with the key of the business
operation.

Built with a Redis client, every request passes Stripe's circuit breaker
(:class:`superior_one.resilience.SharedCircuitBreaker`, named ``stripe``, its
state shared by all processes). Only failures that mean Stripe is unavailable
(timeouts, connection errors, 5xx, 429) count toward opening it. Declines and
other 4xx responses come from a working Stripe. While the breaker is open a
call sends nothing and raises :class:`ProviderCircuitOpenError`, a
:class:`ProviderUnavailableError`, so a charge stays PROCESSING and
reconciliation settles it with the same key.
With Redis unreachable the breaker cannot be read and calls go to Stripe as if
there were none: failing closed would stop every payment while Redis is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import stripe
import structlog
from redis.asyncio import Redis
from stripe.params import (
    AccountCreateParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    TransferCreateParams,
)

from superior_one.config import Settings
from superior_one.payments.provider import (
    CardDeclinedError,
    ConnectedAccountResult,
    CreateConnectedAccount,
    CreatePaymentIntent,
    CreateRefund,
    CreateTransfer,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    PaymentFailure,
    PaymentIntentResult,
    PaymentIntentStatus,
    PaymentProviderError,
    ProviderAuthenticationError,
    ProviderCircuitOpenError,
    ProviderRequestError,
    ProviderUnavailableError,
    RefundResult,
    TransferResult,
)
from superior_one.resilience import (
    CircuitOpenError,
    CircuitStateUnavailableError,
    SharedCircuitBreaker,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

CIRCUIT_NAME = "stripe"


def is_unavailability(exc: BaseException) -> bool:
    """Return whether an error means Stripe is unavailable: a timeout, no connection, 5xx or 429.

    A decline, a rejected request, an idempotency conflict and any other 4xx
    response come from a working Stripe and never open the breaker.
    """
    if not isinstance(exc, ProviderUnavailableError):
        return False
    status = exc.http_status
    return status is None or status >= 500 or status == 429


def stripe_circuit_breaker(redis: Redis, settings: Settings) -> SharedCircuitBreaker:
    """Return the breaker of Stripe calls, its state shared through Redis."""
    return SharedCircuitBreaker(
        redis,
        settings,
        name=CIRCUIT_NAME,
        threshold=settings.stripe_breaker_threshold,
        reset_s=settings.stripe_breaker_reset_s,
        counts_as_failure=is_unavailability,
    )


class StripePaymentProvider:
    """Stripe PaymentIntents, Refunds, Connect accounts and Transfers through ``stripe``."""

    def __init__(
        self,
        client: stripe.StripeClient,
        http_client: stripe.HTTPClient,
        *,
        breaker: SharedCircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._http_client = http_client
        self._breaker = breaker

    @classmethod
    def from_settings(
        cls, settings: Settings, *, redis: Redis | None = None
    ) -> StripePaymentProvider:
        """Build a client with the secret key, base URL and timeout from ``settings``.

        With ``redis``, calls pass Stripe's shared circuit breaker; without it
        there is no breaker.
        """
        secret = settings.stripe_secret_key.get_secret_value()
        if not secret:
            raise ValueError(
                "SO_STRIPE_SECRET_KEY is empty; set it to a Stripe secret key, or to the "
                "local simulator's key in development and tests."
            )
        # At DEBUG the SDK logs request and response bodies (payment method and
        # customer ids, client secrets); those lines never go out, whatever the
        # root level.
        logging.getLogger("stripe").setLevel(max(logging.INFO, logging.root.level))
        http_client = stripe.HTTPXClient(timeout=settings.stripe_timeout_s)
        client = stripe.StripeClient(
            secret,
            base_addresses={"api": settings.stripe_api_base},
            max_network_retries=0,
            http_client=http_client,
        )
        breaker = stripe_circuit_breaker(redis, settings) if redis is not None else None
        return cls(client, http_client, breaker=breaker)

    async def aclose(self) -> None:
        await self._http_client.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16.1

    async def _call(self, operation: str, request: Callable[[], Awaitable[T]]) -> T:
        """Send one SDK request through the breaker; ``request`` starts it when called."""
        if self._breaker is None:
            return await _send(operation, request())
        try:
            breaker = await self._breaker.admit()
        except CircuitOpenError as exc:
            raise _circuit_open(exc, operation) from exc
        except CircuitStateUnavailableError:
            log.warning("payments.provider_circuit_unreadable", operation=operation)
            return await _send(operation, request())
        try:
            return await self._breaker.run(breaker, lambda: _send(operation, request()))
        except CircuitOpenError as exc:
            raise _circuit_open(exc, operation) from exc

    async def create_payment_intent(
        self, request: CreatePaymentIntent, *, idempotency_key: str
    ) -> PaymentIntentResult:
        params: PaymentIntentCreateParams = {
            "amount": request.amount_cents,
            "currency": request.currency,
            "customer": request.customer,
            "metadata": dict(request.metadata),
        }
        if request.payment_method is not None:
            params["payment_method"] = request.payment_method
        if request.confirm:
            params["confirm"] = True
            # Confirmed on the server with no page to return to: redirect-based
            # payment methods cannot complete, so Stripe requires this or a return_url.
            params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        if request.off_session:
            params["off_session"] = True
        if request.transfer_group is not None:
            params["transfer_group"] = request.transfer_group
        if request.description is not None:
            params["description"] = request.description

        intent = await self._call(
            "payment_intent.create",
            lambda: self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            ),
        )
        return _payment_intent_result(intent.to_dict(), replayed=_was_replayed(intent))

    async def confirm_payment_intent(
        self,
        payment_intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        off_session: bool | None = None,
    ) -> PaymentIntentResult:
        params: PaymentIntentConfirmParams = {}
        if payment_method is not None:
            params["payment_method"] = payment_method
        if off_session is not None:
            params["off_session"] = off_session

        intent = await self._call(
            "payment_intent.confirm",
            lambda: self._client.v1.payment_intents.confirm_async(
                payment_intent_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return _payment_intent_result(intent.to_dict(), replayed=_was_replayed(intent))

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentResult:
        intent = await self._call(
            "payment_intent.retrieve",
            lambda: self._client.v1.payment_intents.retrieve_async(payment_intent_id),
        )
        return _payment_intent_result(intent.to_dict())

    async def create_refund(self, request: CreateRefund, *, idempotency_key: str) -> RefundResult:
        params: RefundCreateParams = {
            "payment_intent": request.payment_intent_id,
            "metadata": dict(request.metadata),
        }
        if request.amount_cents is not None:
            params["amount"] = request.amount_cents
        if request.reason is not None:
            params["reason"] = request.reason

        refund = await self._call(
            "refund.create",
            lambda: self._client.v1.refunds.create_async(
                params, {"idempotency_key": idempotency_key}
            ),
        )

        data = refund.to_dict()
        return RefundResult(
            id=str(data["id"]),
            status=str(data.get("status") or "pending"),
            amount_cents=int(data["amount"]),
            currency=str(data["currency"]),
            payment_intent_id=_reference_id(data.get("payment_intent")),
            charge_id=_reference_id(data.get("charge")),
            replayed=_was_replayed(refund),
        )

    async def create_transfer(
        self, request: CreateTransfer, *, idempotency_key: str
    ) -> TransferResult:
        params: TransferCreateParams = {
            "amount": request.amount_cents,
            "currency": request.currency,
            "destination": request.destination_account,
            "transfer_group": request.transfer_group,
            "source_transaction": request.source_transaction,
            "metadata": dict(request.metadata),
        }
        if request.description is not None:
            params["description"] = request.description

        transfer = await self._call(
            "transfer.create",
            lambda: self._client.v1.transfers.create_async(
                params, {"idempotency_key": idempotency_key}
            ),
        )

        data = transfer.to_dict()
        return TransferResult(
            id=str(data["id"]),
            amount_cents=int(data["amount"]),
            currency=str(data["currency"]),
            destination_account=_reference_id(data.get("destination")),
            transfer_group=data.get("transfer_group"),
            source_transaction=_reference_id(data.get("source_transaction")),
            replayed=_was_replayed(transfer),
        )

    async def create_connected_account(
        self, request: CreateConnectedAccount, *, idempotency_key: str
    ) -> ConnectedAccountResult:
        params: AccountCreateParams = {
            "type": "express",
            "country": request.country,
            # Separate charges and transfers need only the transfers capability.
            "capabilities": {"transfers": {"requested": True}},
            "metadata": dict(request.metadata),
        }
        if request.email is not None:
            params["email"] = request.email
        if request.business_type is not None:
            params["business_type"] = request.business_type

        account = await self._call(
            "account.create",
            lambda: self._client.v1.accounts.create_async(
                params, {"idempotency_key": idempotency_key}
            ),
        )
        return _connected_account_result(account.to_dict(), replayed=_was_replayed(account))

    async def retrieve_connected_account(self, account_id: str) -> ConnectedAccountResult:
        account = await self._call(
            "account.retrieve", lambda: self._client.v1.accounts.retrieve_async(account_id)
        )
        return _connected_account_result(account.to_dict())


async def _send(operation: str, request: Awaitable[T]) -> T:
    """Await one SDK request, turning SDK exceptions into provider errors."""
    try:
        return await request
    except stripe.StripeError as exc:
        raise _translate_error(exc, operation=operation) from exc


def _circuit_open(exc: CircuitOpenError, operation: str) -> ProviderCircuitOpenError:
    log.info(
        "payments.provider_circuit_open",
        operation=operation,
        retry_in_s=round(exc.retry_in_s, 1),
    )
    return ProviderCircuitOpenError(
        f"Stripe calls are paused after repeated failures; nothing was sent. The next "
        f"trial call is allowed in {exc.retry_in_s:.1f} s.",
        retry_in_s=exc.retry_in_s,
    )


# --- Wire objects to results ------------------------------------------------


def _reference_id(value: object) -> str | None:
    """Return the id of a field that is either an id string or an expanded object."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value["id"])
    return str(value)


def _was_replayed(obj: stripe.StripeObject) -> bool:
    response = obj.last_response
    if response is None:
        return False
    return any(
        name.lower() == "idempotent-replayed" and value == "true"
        for name, value in response.headers.items()
    )


def _payment_intent_result(
    data: Mapping[str, Any], *, replayed: bool = False
) -> PaymentIntentResult:
    failure = data.get("last_payment_error")
    return PaymentIntentResult(
        id=str(data["id"]),
        status=PaymentIntentStatus(data["status"]),
        amount_cents=int(data["amount"]),
        amount_received_cents=int(data.get("amount_received") or 0),
        currency=str(data["currency"]),
        customer=_reference_id(data.get("customer")),
        latest_charge_id=_reference_id(data.get("latest_charge")),
        transfer_group=data.get("transfer_group"),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        last_failure=(
            PaymentFailure(
                code=failure.get("code"),
                decline_code=failure.get("decline_code"),
                advice_code=failure.get("advice_code"),
                message=failure.get("message"),
            )
            if isinstance(failure, Mapping)
            else None
        ),
        replayed=replayed,
    )


def payment_intent_from_object(data: Mapping[str, Any]) -> PaymentIntentResult:
    """Read a PaymentIntent object as Stripe sends it (a webhook event's ``data.object``)."""
    return _payment_intent_result(data)


def connected_account_from_object(data: Mapping[str, Any]) -> ConnectedAccountResult:
    """Read an Account object as Stripe sends it (``account.updated``'s ``data.object``)."""
    return _connected_account_result(data)


def _connected_account_result(
    data: Mapping[str, Any], *, replayed: bool = False
) -> ConnectedAccountResult:
    capabilities = data.get("capabilities") or {}
    return ConnectedAccountResult(
        id=str(data["id"]),
        charges_enabled=bool(data.get("charges_enabled")),
        payouts_enabled=bool(data.get("payouts_enabled")),
        details_submitted=bool(data.get("details_submitted")),
        transfers_capability=capabilities.get("transfers"),
        replayed=replayed,
    )


# --- SDK errors to provider errors ------------------------------------------


def _error_body(exc: stripe.StripeError) -> Mapping[str, Any]:
    body = exc.json_body
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error: Mapping[str, Any] = body["error"]
        return error
    return {}


def _translate_error(exc: stripe.StripeError, *, operation: str) -> PaymentProviderError:
    """Map an SDK exception to the provider error the caller acts on."""
    status = exc.http_status
    body = _error_body(exc)
    code = exc.code or body.get("code")
    message = str(exc.user_message or body.get("message") or type(exc).__name__)
    context: dict[str, Any] = {"code": code, "http_status": status, "request_id": exc.request_id}
    log.info(
        "payments.provider_error",
        operation=operation,
        error_type=type(exc).__name__,
        http_status=status,
        code=code,
        request_id=exc.request_id,
    )

    if isinstance(exc, stripe.CardError):
        intent = body.get("payment_intent")
        return CardDeclinedError(
            message,
            decline_code=body.get("decline_code"),
            advice_code=body.get("advice_code"),
            payment_intent=_payment_intent_result(intent) if isinstance(intent, Mapping) else None,
            **context,
        )
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyKeyReusedError(message, **context)
    if status == 409 and code == "idempotency_key_in_use":
        return IdempotencyKeyInUseError(message, **context)
    if isinstance(exc, stripe.APIConnectionError):
        # A refused or timed-out connection never delivered the request; any
        # other failure (read timeout, reset) may have happened after Stripe acted.
        never_sent = isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)
        return ProviderUnavailableError(message, outcome_unknown=not never_sent, **context)
    if isinstance(exc, stripe.RateLimitError):
        return ProviderUnavailableError(message, **context)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderAuthenticationError(message, **context)
    if isinstance(exc, stripe.InvalidRequestError):
        return ProviderRequestError(message, **context)
    if status is not None and (status >= 500 or status == 409):
        # Stripe stores a 500 under the idempotency key once the endpoint has
        # started, so the outcome of a 5xx is unknown until reconciled.
        # NOTE: a stored 500 replays for 24 h under the same key; settling such
        # an attempt needs a PaymentIntent lookup by metadata, not built yet.
        return ProviderUnavailableError(message, outcome_unknown=status >= 500, **context)
    return PaymentProviderError(message, **context)
