"""Request and response bodies of the payments API (camelCase on the wire).

Amounts go out twice: ``amountCents`` (an integer, what the platform stores)
and ``amount`` (decimal text in currency units, for people).
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import orjson
from pydantic import Field

from superior_one.errors import UnprocessableError
from superior_one.payments.models import (
    AttemptStatus,
    BillingProfile,
    ChargeTrigger,
    Invoice,
    InvoiceStatus,
    PaymentAttempt,
    Payout,
    PayoutAccount,
    PayoutStatus,
    SettledBy,
)
from superior_one.payments.money import format_cents
from superior_one.schemas import RequestSchema, Schema

# Provider ids only: a PaymentMethod (pm_...) or Customer (cus_...) id, never card data.
PAYMENT_METHOD_ID = r"^pm_[A-Za-z0-9_]{1,250}$"
CUSTOMER_ID = r"^cus_[A-Za-z0-9_]{1,250}$"


class AttemptOut(Schema):
    id: uuid.UUID
    attempt_number: int
    status: AttemptStatus
    trigger: ChargeTrigger
    amount_cents: int
    currency: str
    payment_intent_id: str | None = Field(
        description="The provider's PaymentIntent id (pi_...), once known."
    )
    failure_code: str | None
    decline_code: str | None
    hard_decline: bool
    settled_by: SettledBy | None
    created_at: datetime
    settled_at: datetime | None
    provider_confirmed_at: datetime | None = Field(
        description="When a signed webhook event from the provider confirmed the outcome."
    )

    @classmethod
    def of(cls, attempt: PaymentAttempt) -> AttemptOut:
        return cls(
            id=attempt.id,
            attempt_number=attempt.attempt_number,
            status=attempt.status,
            trigger=attempt.trigger,
            amount_cents=attempt.amount_cents,
            currency=attempt.currency,
            payment_intent_id=attempt.provider_payment_intent_id,
            failure_code=attempt.failure_code,
            decline_code=attempt.decline_code,
            hard_decline=attempt.hard_decline,
            settled_by=attempt.settled_by,
            created_at=attempt.created_at,
            settled_at=attempt.settled_at,
            provider_confirmed_at=attempt.provider_confirmed_at,
        )


class PayoutOut(Schema):
    id: uuid.UUID
    invoice_id: uuid.UUID
    load_id: uuid.UUID
    carrier_organization_id: uuid.UUID
    status: PayoutStatus
    amount_cents: int
    amount: str
    currency: str
    transfer_group: str
    transfer_id: str | None
    failure_code: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, payout: Payout) -> PayoutOut:
        return cls(
            id=payout.id,
            invoice_id=payout.invoice_id,
            load_id=payout.load_id,
            carrier_organization_id=payout.carrier_organization_id,
            status=payout.status,
            amount_cents=payout.amount_cents,
            amount=format_cents(payout.amount_cents),
            currency=payout.currency,
            transfer_group=payout.transfer_group,
            transfer_id=payout.provider_transfer_id,
            failure_code=payout.failure_code,
            created_at=payout.created_at,
            sent_at=payout.sent_at,
        )


class InvoiceOut(Schema):
    id: uuid.UUID
    number: str
    load_id: uuid.UUID
    shipper_organization_id: uuid.UUID
    carrier_organization_id: uuid.UUID | None
    status: InvoiceStatus
    currency: str
    amount_cents: int
    amount: str
    platform_fee_cents: int
    carrier_payout_cents: int
    fee_percent: str
    net_terms_days: int
    issued_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    refunded_at: datetime | None
    attempt_count: int
    next_charge_at: datetime | None = Field(
        description="When the invoice is charged automatically next (due date or dunning)."
    )
    last_failure_code: str | None
    hard_declined: bool
    created_at: datetime
    attempts: list[AttemptOut] | None = None
    payout: PayoutOut | None = None

    @classmethod
    def of(
        cls,
        invoice: Invoice,
        attempts: list[PaymentAttempt] | None = None,
        payout: Payout | None = None,
    ) -> InvoiceOut:
        return cls(
            id=invoice.id,
            number=invoice.number,
            load_id=invoice.load_id,
            shipper_organization_id=invoice.shipper_organization_id,
            carrier_organization_id=invoice.carrier_organization_id,
            status=invoice.status,
            currency=invoice.currency,
            amount_cents=invoice.amount_cents,
            amount=format_cents(invoice.amount_cents),
            platform_fee_cents=invoice.platform_fee_cents,
            carrier_payout_cents=invoice.carrier_payout_cents,
            fee_percent=str(invoice.fee_percent.normalize()),
            net_terms_days=invoice.net_terms_days,
            issued_at=invoice.issued_at,
            due_at=invoice.due_at,
            paid_at=invoice.paid_at,
            voided_at=invoice.voided_at,
            refunded_at=invoice.refunded_at,
            attempt_count=invoice.attempt_count,
            next_charge_at=invoice.next_charge_at,
            last_failure_code=invoice.last_failure_code,
            hard_declined=invoice.hard_declined,
            created_at=invoice.created_at,
            attempts=[AttemptOut.of(a) for a in attempts] if attempts is not None else None,
            payout=PayoutOut.of(payout) if payout is not None else None,
        )


class InvoicePageOut(Schema):
    items: list[InvoiceOut]
    next_cursor: str | None


class PayoutPageOut(Schema):
    items: list[PayoutOut]
    next_cursor: str | None


class ChargeIn(RequestSchema):
    amount_cents: int | None = Field(
        default=None,
        ge=1,
        description="The amount you expect to pay, in cents; must equal the invoice's amount. "
        "Leave it out to pay whatever the invoice says.",
    )
    payment_method_id: str | None = Field(
        default=None,
        pattern=PAYMENT_METHOD_ID,
        description="A saved PaymentMethod id (pm_...) to use instead of the default.",
    )


class ChargeOut(Schema):
    invoice: InvoiceOut
    attempt: AttemptOut


class BillingProfileIn(RequestSchema):
    customer_id: str = Field(pattern=CUSTOMER_ID, description="Provider customer id (cus_...).")
    payment_method_id: str = Field(
        pattern=PAYMENT_METHOD_ID,
        description="Provider PaymentMethod id (pm_...), collected by the provider's own form; "
        "card numbers are never sent to this API.",
    )


class BillingProfileOut(Schema):
    organization_id: uuid.UUID
    customer_id: str
    payment_method_id: str
    updated_at: datetime

    @classmethod
    def of(cls, profile: BillingProfile) -> BillingProfileOut:
        return cls(
            organization_id=profile.organization_id,
            customer_id=profile.provider_customer_id,
            payment_method_id=profile.default_payment_method_id,
            updated_at=profile.updated_at,
        )


class PayoutAccountOut(Schema):
    organization_id: uuid.UUID
    account_id: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    transfers_capability: str | None
    can_receive_transfers: bool
    updated_at: datetime

    @classmethod
    def of(cls, account: PayoutAccount) -> PayoutAccountOut:
        return cls(
            organization_id=account.organization_id,
            account_id=account.provider_account_id,
            charges_enabled=account.charges_enabled,
            payouts_enabled=account.payouts_enabled,
            details_submitted=account.details_submitted,
            transfers_capability=account.transfers_capability,
            can_receive_transfers=account.can_receive_transfers,
            updated_at=account.updated_at,
        )


class WebhookAck(Schema):
    received: bool = True
    event_id: str
    duplicate: bool


class LedgerAuditOut(Schema):
    ok: bool
    transactions: int
    entries: int
    unbalanced_transactions: list[int]
    empty_transactions: list[int]
    mismatched_invoices: list[str]
    balances_cents: dict[str, int]
    trial_balance_cents: int


# --- list cursors -------------------------------------------------------------------


class InvalidPaymentsCursorError(UnprocessableError):
    code = "invalid_cursor"


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    payload = orjson.dumps([created_at.isoformat(), row_id.hex])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(value: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, id_hex = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        return datetime.fromisoformat(created), uuid.UUID(hex=id_hex)
    except (ValueError, TypeError) as exc:
        raise InvalidPaymentsCursorError(
            "The cursor is not one this API issued. Start again without 'cursor'.",
            field="cursor",
        ) from exc
