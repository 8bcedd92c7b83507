"""The double-entry ledger: balanced postings written with each state change, and its audit.

Sign convention: debits are positive, credits negative, so the entries of one
transaction sum to zero. The four accounts and what moves them:

==================  ===========================  ==========================================
event               debit                        credit
==================  ===========================  ==========================================
invoice issued      shipper receivable (gross)   platform revenue (fee),
                                                 carrier payable (payout)
payment received    cash (gross)                 shipper receivable (gross)
payout sent         carrier payable (payout)     cash (payout)
invoice voided      platform revenue (fee),      shipper receivable (gross)
                    carrier payable (payout)
payment refunded    platform revenue (fee),      cash (gross)
                    carrier payable (payout)
==================  ===========================  ==========================================

Each posting has a dedupe key naming its business event, so writing it twice
(a job run again) is a no-op. The database rejects an unbalanced transaction
at commit and any UPDATE or DELETE (migration ``0006_payments``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.payments.models import (
    Invoice,
    InvoiceStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerKind,
    LedgerTransaction,
    Payout,
)


@dataclass(frozen=True, slots=True)
class Posting:
    account: LedgerAccount
    amount_cents: int  # debit > 0, credit < 0
    organization_id: uuid.UUID | None = None


class UnbalancedPostingError(ValueError):
    """Postings that do not sum to zero, or that contain a zero amount."""


async def post(
    session: AsyncSession,
    *,
    kind: LedgerKind,
    dedupe_key: str,
    description: str,
    currency: str,
    postings: Sequence[Posting],
    invoice_id: uuid.UUID | None = None,
    payout_id: uuid.UUID | None = None,
    payment_attempt_id: uuid.UUID | None = None,
) -> int | None:
    """Write one balanced transaction; return its id, or None if ``dedupe_key`` was posted.

    Zero postings (a fee of 0) are dropped; the rest must sum to zero.
    """
    lines = [p for p in postings if p.amount_cents != 0]
    if not lines or sum(p.amount_cents for p in lines) != 0:
        raise UnbalancedPostingError(
            f"ledger transaction {dedupe_key} does not balance: "
            f"{[(p.account.value, p.amount_cents) for p in postings]}"
        )

    transaction_id = (
        await session.execute(
            pg_insert(LedgerTransaction)
            .values(
                kind=kind,
                dedupe_key=dedupe_key,
                description=description[:200],
                invoice_id=invoice_id,
                payout_id=payout_id,
                payment_attempt_id=payment_attempt_id,
            )
            .on_conflict_do_nothing(index_elements=[LedgerTransaction.dedupe_key])
            .returning(LedgerTransaction.id)
        )
    ).scalar_one_or_none()
    if transaction_id is None:
        return None
    await session.execute(
        insert(LedgerEntry),
        [
            {
                "transaction_id": transaction_id,
                "account": p.account,
                "organization_id": p.organization_id,
                "amount_cents": p.amount_cents,
                "currency": currency,
            }
            for p in lines
        ],
    )
    return int(transaction_id)


# --- the postings of each business event ----------------------------------------


async def post_invoice_issued(session: AsyncSession, invoice: Invoice) -> int | None:
    return await post(
        session,
        kind=LedgerKind.INVOICE_ISSUED,
        dedupe_key=f"invoice:{invoice.id}:issued",
        description=f"invoice {invoice.number} issued",
        currency=invoice.currency,
        invoice_id=invoice.id,
        postings=[
            Posting(
                LedgerAccount.SHIPPER_RECEIVABLE,
                invoice.amount_cents,
                invoice.shipper_organization_id,
            ),
            Posting(LedgerAccount.PLATFORM_REVENUE, -invoice.platform_fee_cents),
            Posting(
                LedgerAccount.CARRIER_PAYABLE,
                -invoice.carrier_payout_cents,
                invoice.carrier_organization_id,
            ),
        ],
    )


async def post_payment_received(
    session: AsyncSession, invoice: Invoice, attempt_id: uuid.UUID
) -> int | None:
    return await post(
        session,
        kind=LedgerKind.PAYMENT_RECEIVED,
        dedupe_key=f"invoice:{invoice.id}:paid",
        description=f"payment of invoice {invoice.number}",
        currency=invoice.currency,
        invoice_id=invoice.id,
        payment_attempt_id=attempt_id,
        postings=[
            Posting(LedgerAccount.CASH, invoice.amount_cents),
            Posting(
                LedgerAccount.SHIPPER_RECEIVABLE,
                -invoice.amount_cents,
                invoice.shipper_organization_id,
            ),
        ],
    )


async def post_payout_sent(session: AsyncSession, payout: Payout) -> int | None:
    return await post(
        session,
        kind=LedgerKind.PAYOUT_SENT,
        dedupe_key=f"payout:{payout.id}:sent",
        description=f"payout to carrier for load {payout.load_id}",
        currency=payout.currency,
        invoice_id=payout.invoice_id,
        payout_id=payout.id,
        postings=[
            Posting(
                LedgerAccount.CARRIER_PAYABLE, payout.amount_cents, payout.carrier_organization_id
            ),
            Posting(LedgerAccount.CASH, -payout.amount_cents),
        ],
    )


async def post_invoice_voided(session: AsyncSession, invoice: Invoice) -> int | None:
    return await post(
        session,
        kind=LedgerKind.INVOICE_VOIDED,
        dedupe_key=f"invoice:{invoice.id}:voided",
        description=f"invoice {invoice.number} voided",
        currency=invoice.currency,
        invoice_id=invoice.id,
        postings=[
            Posting(
                LedgerAccount.SHIPPER_RECEIVABLE,
                -invoice.amount_cents,
                invoice.shipper_organization_id,
            ),
            Posting(LedgerAccount.PLATFORM_REVENUE, invoice.platform_fee_cents),
            Posting(
                LedgerAccount.CARRIER_PAYABLE,
                invoice.carrier_payout_cents,
                invoice.carrier_organization_id,
            ),
        ],
    )


async def post_payment_refunded(session: AsyncSession, invoice: Invoice) -> int | None:
    # NOTE: a refund after the payout was sent leaves the carrier's payable in
    # debit, because the carrier then owes the platform. Reversing the Connect
    # transfer (a transfer reversal) is not built.
    return await post(
        session,
        kind=LedgerKind.PAYMENT_REFUNDED,
        dedupe_key=f"invoice:{invoice.id}:refunded",
        description=f"refund of invoice {invoice.number}",
        currency=invoice.currency,
        invoice_id=invoice.id,
        postings=[
            Posting(LedgerAccount.CASH, -invoice.amount_cents),
            Posting(LedgerAccount.PLATFORM_REVENUE, invoice.platform_fee_cents),
            Posting(
                LedgerAccount.CARRIER_PAYABLE,
                invoice.carrier_payout_cents,
                invoice.carrier_organization_id,
            ),
        ],
    )


# --- audit --------------------------------------------------------------------------


@dataclass(slots=True)
class LedgerAudit:
    """The result of :func:`audit_ledger`; ``ok`` when every check passed."""

    transactions: int = 0
    entries: int = 0
    # (transaction id, sum of its entries) for every transaction that does not balance.
    unbalanced: list[tuple[int, int]] = field(default_factory=list)
    empty_transactions: list[int] = field(default_factory=list)
    # Account balances (debit positive) over the whole ledger.
    balances: dict[str, int] = field(default_factory=dict)
    # Invoices whose status disagrees with the ledger (paid but no payment posted...).
    mismatched_invoices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unbalanced or self.empty_transactions or self.mismatched_invoices)

    @property
    def trial_balance(self) -> int:
        return sum(self.balances.values())


# The ledger kinds each invoice status must have posted, and no others.
_EXPECTED_KINDS: dict[InvoiceStatus, set[LedgerKind]] = {
    InvoiceStatus.DRAFT: set(),
    InvoiceStatus.OPEN: {LedgerKind.INVOICE_ISSUED},
    InvoiceStatus.PROCESSING: {LedgerKind.INVOICE_ISSUED},
    InvoiceStatus.PAYMENT_FAILED: {LedgerKind.INVOICE_ISSUED},
    InvoiceStatus.PAID: {LedgerKind.INVOICE_ISSUED, LedgerKind.PAYMENT_RECEIVED},
    InvoiceStatus.VOID: {LedgerKind.INVOICE_ISSUED, LedgerKind.INVOICE_VOIDED},
    InvoiceStatus.REFUNDED: {
        LedgerKind.INVOICE_ISSUED,
        LedgerKind.PAYMENT_RECEIVED,
        LedgerKind.PAYMENT_REFUNDED,
    },
}


async def audit_ledger(session: AsyncSession) -> LedgerAudit:
    """Check the whole ledger: every transaction balances and matches its invoice's status."""
    result = LedgerAudit()
    result.transactions = (
        await session.execute(select(func.count()).select_from(LedgerTransaction))
    ).scalar_one()
    result.entries = (
        await session.execute(select(func.count()).select_from(LedgerEntry))
    ).scalar_one()

    rows = await session.execute(
        select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount_cents))
        .group_by(LedgerEntry.transaction_id)
        .having(func.sum(LedgerEntry.amount_cents) != 0)
        .order_by(LedgerEntry.transaction_id)
    )
    result.unbalanced = [(int(t), int(s)) for t, s in rows]

    rows = await session.execute(
        text(
            "SELECT t.id FROM ledger_transactions AS t WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_entries AS e WHERE e.transaction_id = t.id) ORDER BY t.id"
        )
    )
    result.empty_transactions = [int(r[0]) for r in rows]

    balances = await session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount_cents)).group_by(
            LedgerEntry.account
        )
    )
    result.balances = {LedgerAccount(a).value: int(s) for a, s in balances.all()}

    invoices = await session.execute(
        text(
            """
            SELECT i.number, i.status,
                   coalesce(array_agg(t.kind) FILTER (WHERE t.kind IS NOT NULL), '{}') AS kinds
              FROM invoices AS i
              LEFT JOIN ledger_transactions AS t ON t.invoice_id = i.id AND t.payout_id IS NULL
             GROUP BY i.id
            """
        )
    )
    for number, status, kinds in invoices.all():
        posted = [LedgerKind(k) for k in kinds]
        if len(posted) != len(set(posted)) or set(posted) != _EXPECTED_KINDS[InvoiceStatus(status)]:
            result.mismatched_invoices.append(str(number))
    return result
