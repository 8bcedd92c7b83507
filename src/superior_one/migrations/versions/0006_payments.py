"""Payments: invoices, charge attempts, payouts, webhook inbox, ledger, audit, idempotency keys.

The ledger (``ledger_transactions``, ``ledger_entries``) and the audit trail
(``payment_audit_log``) are append-only: a trigger rejects UPDATE and DELETE.
A deferred constraint trigger checks at commit that the entries of every
ledger transaction touched sum to zero, so an unbalanced transaction never
commits whatever the code does.

Revision ID: 0006_payments
Revises: 0002_loads, 0003_jobs
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006_payments"
down_revision: str | Sequence[str] | None = ("0002_loads", "0003_jobs")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INVOICE_STATUSES = (
    "DRAFT",
    "OPEN",
    "PROCESSING",
    "PAID",
    "PAYMENT_FAILED",
    "VOID",
    "REFUNDED",
)
ATTEMPT_STATUSES = ("PROCESSING", "SUCCEEDED", "FAILED")
CHARGE_TRIGGERS = ("USER", "AUTO", "DUNNING")
SETTLED_BY = ("RESPONSE", "WEBHOOK", "RECONCILIATION")
PAYOUT_STATUSES = ("PENDING", "WAITING_FOR_ACCOUNT", "PROCESSING", "PAID", "FAILED")
EVENT_STATUSES = ("RECEIVED", "PROCESSED", "IGNORED")
LEDGER_ACCOUNTS = ("SHIPPER_RECEIVABLE", "CASH", "PLATFORM_REVENUE", "CARRIER_PAYABLE")
LEDGER_KINDS = (
    "INVOICE_ISSUED",
    "PAYMENT_RECEIVED",
    "PAYOUT_SENT",
    "INVOICE_VOIDED",
    "PAYMENT_REFUNDED",
)
ACTOR_KINDS = ("USER", "SYSTEM", "PROVIDER")
AUDIENCES = ("SHIPPER", "CARRIER", "OPERATIONS")
NOTIFICATION_KINDS = (
    "PAYMENT_FAILED",
    "PAYMENT_METHOD_REQUIRED",
    "DUNNING_EXHAUSTED",
    "PAYOUT_ACCOUNT_REQUIRED",
    "PAYOUT_FAILED",
    "RECONCILIATION_REVIEW",
)
IDEMPOTENCY_STATES = ("RUNNING", "COMPLETED")

INVOICE_NUMBER_DEFAULT = (
    "'INV-' || to_char(timezone('UTC', now()), 'YYYY') || '-' "
    "|| nextval('invoice_number_seq')::text"
)
APPEND_ONLY_TABLES = ("ledger_transactions", "ledger_entries", "payment_audit_log")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check(column: str, values: Sequence[str], *, nullable: bool = False) -> str:
    condition = _in(column, values)
    return f"{column} IS NULL OR {condition}" if nullable else condition


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _organization(
    name: str, *, nullable: bool = False, ondelete: str = "RESTRICT"
) -> sa.Column[Any]:
    return sa.Column(
        name, sa.Uuid(), sa.ForeignKey("organizations.id", ondelete=ondelete), nullable=nullable
    )


def upgrade() -> None:
    op.execute("CREATE SEQUENCE invoice_number_seq START WITH 100001")
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "number", sa.String(32), server_default=sa.text(INVOICE_NUMBER_DEFAULT), nullable=False
        ),
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="RESTRICT"), nullable=False
        ),
        _organization("shipper_organization_id"),
        _organization("carrier_organization_id", nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), server_default="usd", nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("carrier_payout_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_percent", sa.Numeric(6, 3), nullable=False),
        sa.Column("net_terms_days", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True)),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        sa.Column("voided_at", sa.DateTime(timezone=True)),
        sa.Column("refunded_at", sa.DateTime(timezone=True)),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_charge_at", sa.DateTime(timezone=True)),
        sa.Column("last_failure_code", sa.String(64)),
        sa.Column("hard_declined", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("number", name="uq_invoices_number"),
        # One invoice per load: concurrent creators meet here, not in a read-then-insert.
        sa.UniqueConstraint("load_id", name="uq_invoices_load_id"),
        sa.CheckConstraint(_check("status", INVOICE_STATUSES), name="ck_invoices_status"),
        sa.CheckConstraint("amount_cents > 0", name="ck_invoices_amount_positive"),
        sa.CheckConstraint(
            "platform_fee_cents >= 0 AND carrier_payout_cents >= 0", name="ck_invoices_split_sign"
        ),
        sa.CheckConstraint(
            "platform_fee_cents + carrier_payout_cents = amount_cents", name="ck_invoices_split_sum"
        ),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name="ck_invoices_currency"),
    )
    op.create_index(
        "ix_invoices_shipper_created", "invoices", ["shipper_organization_id", "created_at", "id"]
    )
    op.create_index("ix_invoices_created", "invoices", ["created_at", "id"])
    op.create_index(
        "ix_invoices_next_charge_at",
        "invoices",
        ["next_charge_at"],
        postgresql_where=sa.text("next_charge_at IS NOT NULL"),
    )

    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "invoice_id",
            sa.Uuid(),
            sa.ForeignKey("invoices.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("payment_method_id", sa.String(255), nullable=False),
        sa.Column("transfer_group", sa.String(100), nullable=False),
        sa.Column("provider_payment_intent_id", sa.String(255)),
        sa.Column("provider_charge_id", sa.String(255)),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("decline_code", sa.String(64)),
        sa.Column("advice_code", sa.String(64)),
        sa.Column("hard_decline", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("failure_message", sa.String(500)),
        sa.Column("reconcile_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(200)),
        sa.Column("settled_by", sa.String(32)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.Column("provider_confirmed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint(
            "invoice_id", "attempt_number", name="uq_payment_attempts_invoice_number"
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_payment_attempts_idempotency_key"),
        sa.UniqueConstraint(
            "provider_payment_intent_id", name="uq_payment_attempts_provider_payment_intent_id"
        ),
        sa.CheckConstraint(
            _check("status", ATTEMPT_STATUSES),
            name="ck_payment_attempts_status",
        ),
        sa.CheckConstraint(
            _check("trigger", CHARGE_TRIGGERS),
            name="ck_payment_attempts_trigger",
        ),
        sa.CheckConstraint(
            _check("settled_by", SETTLED_BY, nullable=True),
            name="ck_payment_attempts_settled_by",
        ),
        sa.CheckConstraint("amount_cents > 0", name="ck_payment_attempts_amount_positive"),
        sa.CheckConstraint("attempt_number >= 1", name="ck_payment_attempts_number_positive"),
    )
    # At most one attempt of an invoice is in flight, whatever the invoice row says.
    op.create_index(
        "uq_payment_attempts_one_processing",
        "payment_attempts",
        ["invoice_id"],
        unique=True,
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )
    op.create_index(
        "ix_payment_attempts_processing_created",
        "payment_attempts",
        ["created_at"],
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )

    op.create_table(
        "billing_profiles",
        _organization("organization_id", ondelete="CASCADE"),
        sa.Column("provider_customer_id", sa.String(255), nullable=False),
        sa.Column("default_payment_method_id", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("organization_id", name="pk_billing_profiles"),
    )

    op.create_table(
        "payout_accounts",
        _organization("organization_id", ondelete="CASCADE"),
        sa.Column("provider_account_id", sa.String(255), nullable=False),
        sa.Column("charges_enabled", sa.Boolean(), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("details_submitted", sa.Boolean(), nullable=False),
        sa.Column("transfers_capability", sa.String(16)),
        sa.Column("provider_state_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("organization_id", name="pk_payout_accounts"),
        sa.UniqueConstraint("provider_account_id", name="uq_payout_accounts_provider_account_id"),
    )

    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "invoice_id",
            sa.Uuid(),
            sa.ForeignKey("invoices.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "load_id", sa.Uuid(), sa.ForeignKey("loads.id", ondelete="RESTRICT"), nullable=False
        ),
        _organization("carrier_organization_id"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("transfer_group", sa.String(100), nullable=False),
        sa.Column("source_charge_id", sa.String(255), nullable=False),
        sa.Column("destination_account_id", sa.String(255)),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("provider_transfer_id", sa.String(255)),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("failure_message", sa.String(500)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.UniqueConstraint("invoice_id", name="uq_payouts_invoice_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_payouts_idempotency_key"),
        sa.UniqueConstraint("provider_transfer_id", name="uq_payouts_provider_transfer_id"),
        sa.CheckConstraint(_check("status", PAYOUT_STATUSES), name="ck_payouts_status"),
        sa.CheckConstraint("amount_cents > 0", name="ck_payouts_amount_positive"),
    )
    op.create_index(
        "ix_payouts_carrier_created", "payouts", ["carrier_organization_id", "created_at", "id"]
    )
    op.create_index(
        "ix_payouts_waiting",
        "payouts",
        ["carrier_organization_id"],
        postgresql_where=sa.text("status = 'WAITING_FOR_ACCOUNT'"),
    )

    op.create_table(
        "provider_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("provider", sa.String(16), server_default="stripe", nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("object_id", sa.String(255)),
        sa.Column("provider_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(200)),
        sa.Column("request_id", sa.String(64)),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        # A redelivered event (same id) is stored once and processed once.
        sa.UniqueConstraint("provider", "event_id", name="uq_provider_events_provider_event_id"),
        sa.CheckConstraint(_check("status", EVENT_STATUSES), name="ck_provider_events_status"),
    )
    op.create_index(
        "ix_provider_events_unprocessed",
        "provider_events",
        ["received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )

    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), sa.ForeignKey("invoices.id", ondelete="RESTRICT")),
        sa.Column("payout_id", sa.Uuid(), sa.ForeignKey("payouts.id", ondelete="RESTRICT")),
        sa.Column(
            "payment_attempt_id",
            sa.Uuid(),
            sa.ForeignKey("payment_attempts.id", ondelete="RESTRICT"),
        ),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("dedupe_key", name="uq_ledger_transactions_dedupe_key"),
        sa.CheckConstraint(_check("kind", LEDGER_KINDS), name="ck_ledger_transactions_kind"),
    )
    op.create_index("ix_ledger_transactions_invoice_id", "ledger_transactions", ["invoice_id"])

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "transaction_id",
            sa.BigInteger(),
            sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("account", sa.String(32), nullable=False),
        _organization("organization_id", nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.CheckConstraint(_check("account", LEDGER_ACCOUNTS), name="ck_ledger_entries_account"),
        sa.CheckConstraint("amount_cents <> 0", name="ck_ledger_entries_amount_nonzero"),
    )
    op.create_index("ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"])
    op.create_index(
        "ix_ledger_entries_account_organization", "ledger_entries", ["account", "organization_id"]
    )

    op.create_table(
        "payment_audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor_kind", sa.String(32), nullable=False),
        sa.Column("actor_user_id", sa.Uuid()),
        sa.Column("actor_organization_id", sa.Uuid()),
        sa.Column("actor_description", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("job_id", sa.BigInteger()),
        sa.Column("invoice_id", sa.Uuid()),
        sa.Column("payout_id", sa.Uuid()),
        sa.Column("attempt_id", sa.Uuid()),
        sa.Column("details", JSONB(), server_default="{}", nullable=False),
        sa.CheckConstraint(
            _check("actor_kind", ACTOR_KINDS),
            name="ck_payment_audit_log_actor_kind",
        ),
    )
    op.create_index("ix_payment_audit_log_invoice_id", "payment_audit_log", ["invoice_id"])
    op.create_index("ix_payment_audit_log_payout_id", "payment_audit_log", ["payout_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("response_status", sa.Integer()),
        sa.Column("response_body", sa.LargeBinary()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "key", name="pk_idempotency_keys"),
        sa.CheckConstraint(
            _check("state", IDEMPOTENCY_STATES),
            name="ck_idempotency_keys_state",
        ),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])

    op.create_table(
        "payment_notifications",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("audience", sa.String(32), nullable=False),
        _organization("organization_id", nullable=True, ondelete="CASCADE"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", JSONB(), server_default="{}", nullable=False),
        sa.Column("invoice_id", sa.Uuid()),
        sa.Column("payout_id", sa.Uuid()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("dedupe_key", name="uq_payment_notifications_dedupe_key"),
        sa.CheckConstraint(
            _check("audience", AUDIENCES),
            name="ck_payment_notifications_audience",
        ),
        sa.CheckConstraint(
            _check("kind", NOTIFICATION_KINDS),
            name="ck_payment_notifications_kind",
        ),
    )

    op.execute(
        """
        CREATE FUNCTION payments_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only; record a new entry instead', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION payments_reject_change()"
        )

    # Checked at commit, once per inserted entry: by then every entry of the
    # transaction is in, so a partial set cannot commit.
    op.execute(
        """
        CREATE FUNCTION ledger_check_balance() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE total bigint;
        BEGIN
            SELECT sum(amount_cents) INTO total
              FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
            IF total <> 0 THEN
                RAISE EXCEPTION 'ledger transaction % does not balance: entries sum to %',
                    NEW.transaction_id, total USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balance()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_balanced ON ledger_entries")
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.drop_table("payment_notifications")
    op.drop_table("idempotency_keys")
    op.drop_table("payment_audit_log")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_transactions")
    op.drop_table("provider_events")
    op.drop_table("payouts")
    op.drop_table("payout_accounts")
    op.drop_table("billing_profiles")
    op.drop_table("payment_attempts")
    op.drop_table("invoices")
    op.execute("DROP FUNCTION IF EXISTS ledger_check_balance()")
    op.execute("DROP FUNCTION IF EXISTS payments_reject_change()")
    op.execute("DROP SEQUENCE IF EXISTS invoice_number_seq")
