"""Errors of the payments domain, rendered as problem details by the app's one handler."""

from __future__ import annotations

from superior_one.errors import (
    AppError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    UnprocessableError,
)


class InvoiceNotFoundError(NotFoundError):
    code = "invoice_not_found"


class PayoutNotFoundError(NotFoundError):
    code = "payout_not_found"


class LoadNotInvoiceableError(ConflictError):
    code = "load_not_invoiceable"
    title = "Load cannot be invoiced"


class InvalidInvoiceTransitionError(ConflictError):
    code = "invalid_invoice_transition"
    title = "Invalid invoice status change"


class InvoiceNotChargeableError(ConflictError):
    """The invoice is paid, void, refunded or already being charged."""

    code = "invoice_not_chargeable"
    title = "Invoice cannot be charged now"


class AmountMismatchError(UnprocessableError):
    code = "amount_mismatch"
    title = "Amount does not match the invoice"


class PaymentMethodRequiredError(UnprocessableError):
    code = "payment_method_required"
    title = "No payment method on file"


class PaymentDeclinedError(AppError):
    """The provider declined the charge; the attempt is recorded as failed."""

    status = 402
    code = "payment_declined"
    title = "Payment declined"


class PaymentRejectedError(UnprocessableError):
    """The provider rejected the charge request itself (not a card decline)."""

    code = "payment_rejected"
    title = "Payment rejected by the provider"


class PaymentsRoleError(PermissionDeniedError):
    code = "payments_role_required"


class PaymentsNotConfiguredError(ServiceUnavailableError):
    """No payment provider is configured (empty ``SO_STRIPE_SECRET_KEY``)."""

    code = "payments_not_configured"


class PaymentProviderUnavailableError(ServiceUnavailableError):
    code = "payment_provider_unavailable"
    title = "Payment provider unavailable"


class IdempotencyKeyMissingError(AppError):
    status = 400
    code = "idempotency_key_required"
    title = "Idempotency-Key header required"


class IdempotencyKeyInvalidError(AppError):
    status = 400
    code = "idempotency_key_invalid"
    title = "Invalid Idempotency-Key header"


class IdempotencyKeyReusedError(UnprocessableError):
    """The key was first used with another request (other body, path or method)."""

    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with different parameters"


class IdempotencyKeyInProgressError(ConflictError):
    """A request with the same key is still running."""

    code = "idempotency_key_in_progress"
    title = "A request with this Idempotency-Key is in progress"


class PayoutAccountMissingError(ConflictError):
    code = "payout_account_missing"
    title = "No payout account"
