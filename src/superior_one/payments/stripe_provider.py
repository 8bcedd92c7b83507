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
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import httpx
import stripe
import structlog
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
    ProviderRequestError,
    ProviderUnavailableError,
    RefundResult,
    TransferResult,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


class StripePaymentProvider:
    """Stripe PaymentIntents, Refunds, Connect accounts and Transfers through ``stripe``."""

    def __init__(self, client: stripe.StripeClient, http_client: stripe.HTTPClient) -> None:
        self._client = client
        self._http_client = http_client

    @classmethod
    def from_settings(cls, settings: Settings) -> StripePaymentProvider:
        """Build a client with the secret key, base URL and timeout from ``settings``."""
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
        return cls(client, http_client)

    async def aclose(self) -> None:
        await self._http_client.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16.1

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

        intent = await _call(
            "payment_intent.create",
            self._client.v1.payment_intents.create_async(
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

        intent = await _call(
            "payment_intent.confirm",
            self._client.v1.payment_intents.confirm_async(
                payment_intent_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return _payment_intent_result(intent.to_dict(), replayed=_was_replayed(intent))

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentResult:
        intent = await _call(
            "payment_intent.retrieve",
            self._client.v1.payment_intents.retrieve_async(payment_intent_id),
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

        refund = await _call(
            "refund.create",
            self._client.v1.refunds.create_async(params, {"idempotency_key": idempotency_key}),
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

        transfer = await _call(
            "transfer.create",
            self._client.v1.transfers.create_async(params, {"idempotency_key": idempotency_key}),
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

        account = await _call(
            "account.create",
            self._client.v1.accounts.create_async(params, {"idempotency_key": idempotency_key}),
        )
        return _connected_account_result(account.to_dict(), replayed=_was_replayed(account))

    async def retrieve_connected_account(self, account_id: str) -> ConnectedAccountResult:
        account = await _call(
            "account.retrieve", self._client.v1.accounts.retrieve_async(account_id)
        )
        return _connected_account_result(account.to_dict())


async def _call(operation: str, request: Awaitable[T]) -> T:
    """Await one SDK request, turning SDK exceptions into provider errors."""
    try:
        return await request
    except stripe.StripeError as exc:
        raise _translate_error(exc, operation=operation) from exc


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
