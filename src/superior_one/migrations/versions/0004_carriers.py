"""Carriers: vetting record, insurance policies, verification history, notices, scores.

Revision ID: 0004_carriers
Revises: 0001_foundation
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004_carriers"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARRIER_STATUSES = (
    "PENDING",
    "VERIFIED",
    "NOT_FOUND",
    "NOT_AUTHORIZED",
    "OUT_OF_SERVICE",
    "INSUFFICIENT_INSURANCE",
    "AMBIGUOUS",
    "UNAVAILABLE",
)
COVERAGE_TYPES = ("AUTO_LIABILITY", "CARGO", "GENERAL_LIABILITY")
SOURCES = ("FMCSA", "REVOCATION_FILE")
NOTIFICATION_KINDS = (
    "INSURANCE_EXPIRING",
    "INSURANCE_EXPIRED",
    "CARRIER_STATUS_CHANGED",
    "AUTHORITY_REVOKED",
)


def _one_of(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "carriers",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="RESTRICT"),
            nullable=False,
            unique=True,
        ),
        sa.Column("dot_number", sa.Integer(), nullable=False, unique=True),
        sa.Column("mc_number", sa.Integer()),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("legal_name", sa.String(200)),
        sa.Column("dba_name", sa.String(200)),
        sa.Column("common_authority_status", sa.String(1)),
        sa.Column("contract_authority_status", sa.String(1)),
        sa.Column("broker_authority_status", sa.String(1)),
        sa.Column("allowed_to_operate", sa.String(1)),
        sa.Column("out_of_service_date", sa.Date()),
        sa.Column("bipd_insurance_required", sa.String(1)),
        sa.Column("bipd_required_cents", sa.BigInteger()),
        sa.Column("bipd_on_file_cents", sa.BigInteger()),
        sa.Column("cargo_on_file_cents", sa.BigInteger()),
        sa.Column("safety_rating", sa.String(8)),
        sa.Column("verification_status", sa.String(32), nullable=False),
        sa.Column(
            "verification_reasons", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("last_result_status", sa.String(32)),
        sa.Column("last_verified_at", sa.DateTime(timezone=True)),
        sa.Column("last_checked_at", sa.DateTime(timezone=True)),
        sa.Column("unavailable_reason", sa.String(64)),
        sa.Column(
            "next_verification_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("revoked_effective_date", sa.Date()),
        sa.Column("revocation_type", sa.String(64)),
        sa.Column("booking_suspended_at", sa.DateTime(timezone=True)),
        sa.Column("booking_suspension_reason", sa.String(64)),
        *_timestamps(),
        sa.CheckConstraint(
            _one_of("verification_status", CARRIER_STATUSES), name="ck_carriers_carrier_status"
        ),
        sa.CheckConstraint(
            _one_of("last_result_status", CARRIER_STATUSES),
            name="ck_carriers_carrier_last_result_status",
        ),
        sa.CheckConstraint("dot_number > 0", name="ck_carriers_dot_number_positive"),
    )
    op.create_index("ix_carriers_mc_number", "carriers", ["mc_number"])
    # The weekly re-verification takes the active carriers that are due first.
    op.create_index(
        "ix_carriers_next_verification_at",
        "carriers",
        ["next_verification_at"],
        postgresql_where=sa.text("is_active"),
    )

    op.create_table(
        "insurance_policies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "carrier_id",
            sa.Uuid(),
            sa.ForeignKey("carriers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("coverage_type", sa.String(32), nullable=False),
        sa.Column("insurer_name", sa.String(200), nullable=False),
        sa.Column("policy_number", sa.String(64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("expiry_date", sa.Date(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            _one_of("coverage_type", COVERAGE_TYPES), name="ck_insurance_policies_coverage_type"
        ),
        sa.CheckConstraint("amount_cents > 0", name="ck_insurance_policies_amount_positive"),
        sa.CheckConstraint(
            "expiry_date >= effective_date", name="ck_insurance_policies_dates_ordered"
        ),
    )
    op.create_index(
        "ix_insurance_policies_carrier_id",
        "insurance_policies",
        ["carrier_id", "coverage_type", "expiry_date"],
    )

    op.create_table(
        "carrier_verifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "carrier_id",
            sa.Uuid(),
            sa.ForeignKey("carriers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reasons", JSONB(), nullable=False),
        sa.Column("changes", JSONB(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True)),
        sa.Column(
            "checked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            _one_of("source", SOURCES), name="ck_carrier_verifications_verification_source"
        ),
        sa.CheckConstraint(
            _one_of("status", CARRIER_STATUSES), name="ck_carrier_verifications_verification_status"
        ),
    )
    op.create_index(
        "ix_carrier_verifications_carrier_id",
        "carrier_verifications",
        ["carrier_id", sa.text("checked_at DESC")],
    )

    op.create_table(
        "carrier_notifications",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "carrier_id",
            sa.Uuid(),
            sa.ForeignKey("carriers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            _one_of("kind", NOTIFICATION_KINDS), name="ck_carrier_notifications_notification_kind"
        ),
    )
    op.create_index(
        "ix_carrier_notifications_organization_id", "carrier_notifications", ["organization_id"]
    )

    op.create_table(
        "carrier_scores",
        sa.Column(
            "carrier_id",
            sa.Uuid(),
            sa.ForeignKey("carriers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("computed_on", sa.Date(), primary_key=True),
        sa.Column("loads_considered", sa.Integer(), nullable=False),
        sa.Column("on_time_pickup_rate", sa.Numeric(5, 4)),
        sa.Column("on_time_delivery_rate", sa.Numeric(5, 4)),
        sa.Column("cancellations", sa.Integer(), nullable=False),
        sa.Column("median_response_s", sa.Integer()),
        sa.Column("fraud_flags", sa.Integer(), nullable=False),
        sa.Column("score", sa.Numeric(5, 2), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("carrier_scores")
    op.drop_table("carrier_notifications")
    op.drop_table("carrier_verifications")
    op.drop_table("insurance_policies")
    op.drop_table("carriers")
