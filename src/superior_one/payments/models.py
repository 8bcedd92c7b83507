"""Invoices, charge attempts, payouts, the webhook inbox, the ledger and the audit trail.

Money is integer cents (``*_cents`` columns, ``bigint``). Statuses are text
with a CHECK constraint, like the other domains' enums. The ledger tables and
the audit trail are append-only: triggers in migration ``0006_payments`` reject
UPDATE and DELETE, and a deferred constraint trigger rejects a commit that
leaves a ledger transaction whose entries do not sum to zero.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from superior_one.db import Base, TimestampMixin

# Numbers read INV-<year>-<n>; the sequence starts at 100001 so every number has
# at least six digits without padding (padding would truncate past 999999).
INVOICE_NUMBER_SEQUENCE = "invoice_number_seq"
INVOICE_NUMBER_DEFAULT = (
    "'INV-' || to_char(timezone('UTC', now()), 'YYYY') || '-' "
    f"|| nextval('{INVOICE_NUMBER_SEQUENCE}')::text"
)


class InvoiceStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"  # issued, waiting for payment
    PROCESSING = "PROCESSING"  # a charge attempt is running or its outcome is unknown
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    VOID = "VOID"
    REFUNDED = "REFUNDED"


class AttemptStatus(enum.StrEnum):
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ChargeTrigger(enum.StrEnum):
    USER = "USER"  # POST /invoices/{id}/charge
    AUTO = "AUTO"  # due date reached
    DUNNING = "DUNNING"  # retry after a soft decline


class SettledBy(enum.StrEnum):
    RESPONSE = "RESPONSE"  # the provider's response to our own call
    WEBHOOK = "WEBHOOK"
    RECONCILIATION = "RECONCILIATION"


class PayoutStatus(enum.StrEnum):
    PENDING = "PENDING"
    WAITING_FOR_ACCOUNT = "WAITING_FOR_ACCOUNT"  # the carrier cannot receive transfers yet
    PROCESSING = "PROCESSING"  # transfer requested; outcome not recorded yet
    PAID = "PAID"
    FAILED = "FAILED"


class EventStatus(enum.StrEnum):
    RECEIVED = "RECEIVED"
    PROCESSED = "PROCESSED"
    IGNORED = "IGNORED"  # a type the platform does not act on, or nothing left to do


class LedgerAccount(enum.StrEnum):
    """Accounts of the double-entry ledger; debits are positive, credits negative."""

    SHIPPER_RECEIVABLE = "SHIPPER_RECEIVABLE"  # asset: what shippers owe
    CASH = "CASH"  # asset: the platform's provider balance
    PLATFORM_REVENUE = "PLATFORM_REVENUE"  # income: platform fees
    CARRIER_PAYABLE = "CARRIER_PAYABLE"  # liability: what the platform owes carriers


class LedgerKind(enum.StrEnum):
    INVOICE_ISSUED = "INVOICE_ISSUED"
    PAYMENT_RECEIVED = "PAYMENT_RECEIVED"
    PAYOUT_SENT = "PAYOUT_SENT"
    INVOICE_VOIDED = "INVOICE_VOIDED"
    PAYMENT_REFUNDED = "PAYMENT_REFUNDED"


class ActorKind(enum.StrEnum):
    USER = "USER"
    SYSTEM = "SYSTEM"  # a job or an operator command
    PROVIDER = "PROVIDER"  # a webhook event from the payment provider


class Audience(enum.StrEnum):
    SHIPPER = "SHIPPER"
    CARRIER = "CARRIER"
    OPERATIONS = "OPERATIONS"


class NotificationKind(enum.StrEnum):
    PAYMENT_FAILED = "PAYMENT_FAILED"
    PAYMENT_METHOD_REQUIRED = "PAYMENT_METHOD_REQUIRED"
    DUNNING_EXHAUSTED = "DUNNING_EXHAUSTED"
    PAYOUT_ACCOUNT_REQUIRED = "PAYOUT_ACCOUNT_REQUIRED"
    PAYOUT_FAILED = "PAYOUT_FAILED"
    RECONCILIATION_REVIEW = "RECONCILIATION_REVIEW"


class IdempotencyState(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Text with a CHECK constraint, like the foundation's enums.
    return Enum(cls, name=name, native_enum=False, length=32, validate_strings=True)


class Invoice(TimestampMixin, Base):
    """One invoice per load (unique ``load_id``), billed to the shipper."""

    __tablename__ = "invoices"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    number: Mapped[str] = mapped_column(
        String(32), nullable=False, unique=True, server_default=text(INVOICE_NUMBER_DEFAULT)
    )
    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="RESTRICT"), nullable=False, unique=True
    )
    shipper_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    carrier_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    status: Mapped[InvoiceStatus] = mapped_column(
        _enum(InvoiceStatus, "invoice_status"), nullable=False, default=InvoiceStatus.DRAFT
    )
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="usd")
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    platform_fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    carrier_payout_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_percent: Mapped[Decimal] = mapped_column(Numeric(6, 3), nullable=False)
    net_terms_days: Mapped[int] = mapped_column(Integer, nullable=False)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Charge attempts made so far; the next one is attempt_count + 1.
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # When the periodic job charges it next (due date, then the dunning schedule);
    # null when no automatic charge is planned.
    next_charge_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_code: Mapped[str | None] = mapped_column(String(64))
    # The last decline cannot succeed on a retry with the same payment method.
    hard_declined: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )


class PaymentAttempt(Base):
    """One charge of an invoice at the provider, under one idempotency key.

    The request sent to the provider is rebuilt from these columns, so a
    reconciliation resends exactly the same parameters with the same key.
    """

    __tablename__ = "payment_attempts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=False
    )
    attempt_number: Mapped[int] = mapped_column(Integer, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    status: Mapped[AttemptStatus] = mapped_column(
        _enum(AttemptStatus, "attempt_status"), nullable=False
    )
    trigger: Mapped[ChargeTrigger] = mapped_column(
        _enum(ChargeTrigger, "charge_trigger"), nullable=False
    )
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    customer_id: Mapped[str] = mapped_column(String(255), nullable=False)
    # A PaymentMethod id (pm_...): card data never reaches the platform.
    payment_method_id: Mapped[str] = mapped_column(String(255), nullable=False)
    transfer_group: Mapped[str] = mapped_column(String(100), nullable=False)
    provider_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    provider_charge_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    decline_code: Mapped[str | None] = mapped_column(String(64))
    advice_code: Mapped[str | None] = mapped_column(String(64))
    hard_decline: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    failure_message: Mapped[str | None] = mapped_column(String(500))
    reconcile_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200))
    settled_by: Mapped[SettledBy | None] = mapped_column(_enum(SettledBy, "settled_by"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a signed webhook event reported the same final outcome.
    provider_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BillingProfile(TimestampMixin, Base):
    """A shipper's customer and saved payment method at the provider (ids only)."""

    __tablename__ = "billing_profiles"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    provider_customer_id: Mapped[str] = mapped_column(String(255), nullable=False)
    default_payment_method_id: Mapped[str] = mapped_column(String(255), nullable=False)


class PayoutAccount(TimestampMixin, Base):
    """A carrier's Stripe Connect account and its onboarding state."""

    __tablename__ = "payout_accounts"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    provider_account_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    transfers_capability: Mapped[str | None] = mapped_column(String(16))
    # Time of the provider state last applied: an older event never overwrites it.
    provider_state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def can_receive_transfers(self) -> bool:
        return self.payouts_enabled and self.transfers_capability == "active"


class Payout(TimestampMixin, Base):
    """The carrier's share of one paid invoice, sent as a Connect transfer."""

    __tablename__ = "payouts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=False, unique=True
    )
    load_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("loads.id", ondelete="RESTRICT"), nullable=False
    )
    carrier_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    status: Mapped[PayoutStatus] = mapped_column(
        _enum(PayoutStatus, "payout_status"), nullable=False
    )
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    transfer_group: Mapped[str] = mapped_column(String(100), nullable=False)
    # The shipper's charge (ch_...) that funds the transfer.
    source_charge_id: Mapped[str] = mapped_column(String(255), nullable=False)
    destination_account_id: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    provider_transfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderEvent(Base):
    """The webhook inbox: one row per provider event id, however often it is delivered."""

    __tablename__ = "provider_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False, server_default="stripe")
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    object_id: Mapped[str | None] = mapped_column(String(255))
    provider_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The event with card details removed (see payments.webhook_events.redact).
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    status: Mapped[EventStatus] = mapped_column(_enum(EventStatus, "event_status"), nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LedgerTransaction(Base):
    """A balanced set of ledger entries caused by one state change (append-only)."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind, "ledger_kind"), nullable=False)
    # Names the business event ("invoice:<id>:issued"): posting it twice is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT")
    )
    payout_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payouts.id", ondelete="RESTRICT")
    )
    payment_attempt_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_attempts.id", ondelete="RESTRICT")
    )
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class LedgerEntry(Base):
    """One signed amount on one account: debits positive, credits negative (append-only)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), nullable=False
    )
    account: Mapped[LedgerAccount] = mapped_column(
        _enum(LedgerAccount, "ledger_account"), nullable=False
    )
    # The shipper or carrier a receivable or payable line belongs to.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)


class PaymentAuditEntry(Base):
    """A payment action with its actor, its object and its request or job (append-only)."""

    __tablename__ = "payment_audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    actor_kind: Mapped[ActorKind] = mapped_column(
        _enum(ActorKind, "payment_actor_kind"), nullable=False
    )
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_organization_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_description: Mapped[str] = mapped_column(String(200), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    payout_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    attempt_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Ids, statuses and amounts only: never card data, secrets or request bodies.
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class IdempotencyRecord(Base):
    """An ``Idempotency-Key`` of one caller: its request fingerprint and stored response."""

    __tablename__ = "idempotency_keys"

    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    method: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(String(500), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[IdempotencyState] = mapped_column(
        _enum(IdempotencyState, "idempotency_state"), nullable=False
    )
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # A RUNNING key whose lock has passed belongs to a request that died: the
    # next request with the key takes it over.
    locked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PaymentNotification(Base):
    """A notice to a shipper, a carrier or operations; created once per dedupe key."""

    __tablename__ = "payment_notifications"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    audience: Mapped[Audience] = mapped_column(_enum(Audience, "audience"), nullable=False)
    # Null for operations.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    kind: Mapped[NotificationKind] = mapped_column(
        _enum(NotificationKind, "payment_notification_kind"), nullable=False
    )
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    payout_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
