"""The payment provider interface: PaymentIntents, refunds, Connect accounts and transfers.

Every call that creates or changes something takes an idempotency key from the
caller. The key names the business operation (see :func:`charge_idempotency_key`)
so that a retry after a timeout, a crash or a redelivered job reaches the
provider with the same key and cannot charge twice. Implementations never
generate keys and never retry on their own: the caller owns both.

Amounts are integer cents. Only payment method ids (``pm_...``) pass through
here, never card data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Literal, Protocol

# Stripe accepts idempotency keys of up to 255 characters.
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# A key part may not contain ':' (the separator), so two operations can never
# produce the same key.
_KEY_PART = re.compile(r"[A-Za-z0-9_.\-]+")


# --- Idempotency keys -------------------------------------------------------


def operation_key(*parts: str | int) -> str:
    """Join the parts that name one business operation into an idempotency key.

    The same parts always give the same key; nothing random or time-based goes
    in. Raise ``ValueError`` for an empty part, a part with characters other
    than letters, digits, ``_``, ``.`` and ``-``, or a key over 255 characters.
    """
    if not parts:
        raise ValueError("an idempotency key needs at least one part")
    texts: list[str] = []
    for part in parts:
        if isinstance(part, bool):
            raise ValueError(f"idempotency key part {part!r} must be a string or an int")
        text = str(part)
        if not _KEY_PART.fullmatch(text):
            raise ValueError(
                f"idempotency key part {text!r} must be non-empty and use only letters, "
                "digits, '_', '.' and '-'"
            )
        texts.append(text)
    key = ":".join(texts)
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"idempotency key is {len(key)} characters; at most "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH} are accepted"
        )
    return key


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int of 1 or more, got {value!r}")
    return value


# NOTE: pass the invoice's or payout's stable id (a UUID), not a human-readable
# number: environments that share one Stripe account would otherwise reuse keys.
def charge_idempotency_key(invoice_id: str, attempt: int) -> str:
    """Key of charge attempt ``attempt`` (1, 2, ...) of an invoice: ``inv:<id>:charge:<n>``.

    Retries of the same attempt (timeouts, reconciliation) reuse the key; a
    new attempt after a decline (dunning) increments ``attempt``.
    """
    return operation_key("inv", invoice_id, "charge", _positive("attempt", attempt))


def confirm_idempotency_key(invoice_id: str, attempt: int) -> str:
    """Key of the confirmation of charge attempt ``attempt`` of an invoice."""
    return operation_key("inv", invoice_id, "confirm", _positive("attempt", attempt))


def refund_idempotency_key(invoice_id: str, refund_number: int) -> str:
    """Key of refund number ``refund_number`` (1, 2, ...) against an invoice."""
    return operation_key("inv", invoice_id, "refund", _positive("refund_number", refund_number))


def transfer_idempotency_key(payout_id: str) -> str:
    """Key of the Connect transfer that pays out one carrier payout."""
    return operation_key("payout", payout_id, "transfer")


def account_idempotency_key(carrier_id: str) -> str:
    """Key of the creation of a carrier's connected account."""
    return operation_key("carrier", carrier_id, "account")


# --- Requests ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreatePaymentIntent:
    amount_cents: int
    currency: str
    customer: str
    # A saved PaymentMethod id (pm_...). Card numbers never reach the platform.
    payment_method: str | None = None
    confirm: bool = False
    # True when the shipper is not present (invoice charged by a job).
    off_session: bool = False
    transfer_group: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateRefund:
    payment_intent_id: str
    # None refunds what remains of the payment.
    amount_cents: int | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateTransfer:
    amount_cents: int
    currency: str
    destination_account: str
    # Links the transfer to the charge's group (the load) in the provider's reports.
    transfer_group: str
    # The charge (ch_...) that funds the transfer: the transfer waits for that
    # charge's funds instead of drawing on the platform balance.
    source_transaction: str
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateConnectedAccount:
    country: str = "US"
    email: str | None = None
    business_type: Literal["company", "individual"] | None = "company"
    metadata: Mapping[str, str] = field(default_factory=dict)


# --- Results ----------------------------------------------------------------


class PaymentIntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class PaymentFailure:
    """The provider's reason for the last failed payment attempt."""

    code: str | None
    decline_code: str | None
    advice_code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class PaymentIntentResult:
    id: str
    status: PaymentIntentStatus
    amount_cents: int
    amount_received_cents: int
    currency: str
    customer: str | None
    latest_charge_id: str | None
    transfer_group: str | None
    metadata: Mapping[str, str]
    last_failure: PaymentFailure | None
    # True when the provider replayed the stored response of an earlier
    # request with the same idempotency key.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class RefundResult:
    id: str
    status: str
    amount_cents: int
    currency: str
    payment_intent_id: str | None
    charge_id: str | None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class TransferResult:
    id: str
    amount_cents: int
    currency: str
    destination_account: str | None
    transfer_group: str | None
    source_transaction: str | None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ConnectedAccountResult:
    id: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    # Status of the account's transfers capability: active, inactive or pending.
    transfers_capability: str | None
    replayed: bool = False


# --- Errors -----------------------------------------------------------------


class PaymentProviderError(Exception):
    """Base of the errors a :class:`PaymentProvider` raises.

    ``retryable`` is true when the same request with the same idempotency key
    may succeed later.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id


class CardDeclinedError(PaymentProviderError):
    """The card issuer or the provider declined the payment.

    ``payment_intent`` is the PaymentIntent as left by the decline (status
    ``requires_payment_method``) when the provider returned it. ``hard`` is true
    when retrying the same payment method cannot succeed (see
    :func:`is_hard_decline`).
    """

    def __init__(
        self,
        message: str,
        *,
        decline_code: str | None,
        advice_code: str | None,
        payment_intent: PaymentIntentResult | None,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, request_id=request_id)
        self.decline_code = decline_code
        self.advice_code = advice_code
        self.payment_intent = payment_intent
        self.hard = is_hard_decline(decline_code, advice_code, code)


class IdempotencyKeyReusedError(PaymentProviderError):
    """The idempotency key was first used with other parameters or another endpoint.

    A programming error: the key does not name one operation. Never retried.
    """


class IdempotencyKeyInUseError(PaymentProviderError):
    """Another request with the same idempotency key is still running.

    Retry after a short wait with the same key to receive that request's result.
    """

    retryable = True


class ProviderUnavailableError(PaymentProviderError):
    """The provider could not be reached, timed out, rate-limited or failed (5xx).

    When ``outcome_unknown`` is true the request may have taken effect (a
    timeout after sending it): settle it by retrying with the same key.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        outcome_unknown: bool = False,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, request_id=request_id)
        self.outcome_unknown = outcome_unknown


class ProviderCircuitOpenError(ProviderUnavailableError):
    """The provider's circuit breaker is open, so nothing was sent.

    ``retry_in_s`` is the time until the breaker allows a trial call.
    """

    def __init__(self, message: str, *, retry_in_s: float) -> None:
        super().__init__(message, outcome_unknown=False, code="circuit_open")
        self.retry_in_s = retry_in_s


class ProviderRequestError(PaymentProviderError):
    """The provider rejected the request as invalid (bad parameter, unknown id, wrong state)."""


class ProviderAuthenticationError(PaymentProviderError):
    """The provider rejected the API key (401) or its permissions (403): a configuration error."""


# Stripe decline codes after which an automatic retry with the same payment
# method cannot succeed: the card is lost, stolen, closed, blocked or invalid,
# the issuer's response forbids a retry, or the shipper has to act (authenticate, update
# the card). Card networks penalize merchants that retry such declines.
# NOTE: this split is our reading of Stripe's decline codes, not a list Stripe
# publishes; review it against real decline data.
HARD_DECLINE_CODES: frozenset[str] = frozenset(
    {
        "authentication_required",
        "card_not_supported",
        "currency_not_supported",
        "do_not_try_again",
        "expired_card",
        "fraudulent",
        "incorrect_number",
        "invalid_account",
        "invalid_number",
        "lost_card",
        "merchant_blacklist",
        "new_account_information_available",
        "pickup_card",
        "restricted_card",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "security_violation",
        "stolen_card",
        "stop_payment_order",
        "transaction_not_allowed",
    }
)


def is_hard_decline(
    decline_code: str | None, advice_code: str | None = None, code: str | None = None
) -> bool:
    """Tell whether a decline must not be retried with the same payment method.

    Stripe's ``advice_code`` ``do_not_try_again`` wins. Otherwise the decline
    code decides, or the error code for card errors that Stripe reports without
    a decline code (``expired_card``, ``incorrect_number``). Unknown and missing
    codes (``generic_decline``, ``insufficient_funds``, ``try_again_later``...)
    count as soft.
    """
    if advice_code == "do_not_try_again":
        return True
    return decline_code in HARD_DECLINE_CODES or code in HARD_DECLINE_CODES


# --- The interface ----------------------------------------------------------


class PaymentProvider(Protocol):
    """Charges, refunds and Connect payouts at a payment provider.

    Calls raise :class:`PaymentProviderError` subclasses. No call retries by
    itself or makes up an idempotency key.
    """

    async def create_payment_intent(
        self, request: CreatePaymentIntent, *, idempotency_key: str
    ) -> PaymentIntentResult: ...

    async def confirm_payment_intent(
        self,
        payment_intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        off_session: bool | None = None,
    ) -> PaymentIntentResult: ...

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentResult: ...

    async def create_refund(
        self, request: CreateRefund, *, idempotency_key: str
    ) -> RefundResult: ...

    async def create_transfer(
        self, request: CreateTransfer, *, idempotency_key: str
    ) -> TransferResult: ...

    async def create_connected_account(
        self, request: CreateConnectedAccount, *, idempotency_key: str
    ) -> ConnectedAccountResult: ...

    async def retrieve_connected_account(self, account_id: str) -> ConnectedAccountResult: ...

    async def aclose(self) -> None: ...
