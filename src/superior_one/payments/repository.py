"""Queries of the payments domain.

Methods that serve a caller take the principal and filter by its organization:
a shipper reads its own invoices, a carrier its own payouts, a platform admin
everything. Another tenant's id reads as absent (404), never as forbidden.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.auth.principal import Principal
from superior_one.payments.models import (
    AttemptStatus,
    BillingProfile,
    Invoice,
    InvoiceStatus,
    PaymentAttempt,
    Payout,
    PayoutAccount,
    PayoutStatus,
)


@dataclass(slots=True)
class PaymentsRepository:
    session: AsyncSession

    # --- invoices ---

    def _visible_invoices(self, principal: Principal) -> Select[Invoice]:
        query = select(Invoice)
        if not principal.is_platform_admin:
            query = query.where(Invoice.shipper_organization_id == principal.organization_id)
        return query

    async def get_invoice(
        self, principal: Principal | None, invoice_id: uuid.UUID, *, for_update: bool = False
    ) -> Invoice | None:
        """Return the invoice if ``principal`` may read it (None: a job, which reads any)."""
        query = (
            self._visible_invoices(principal) if principal is not None else select(Invoice)
        ).where(Invoice.id == invoice_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.execute(query.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def get_invoice_by_load(self, load_id: uuid.UUID) -> Invoice | None:
        return (
            await self.session.execute(select(Invoice).where(Invoice.load_id == load_id))
        ).scalar_one_or_none()

    async def list_invoices(
        self,
        principal: Principal,
        *,
        statuses: Sequence[InvoiceStatus],
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Invoice]:
        """Newest first, keyset-paginated on (created_at, id)."""
        query = self._visible_invoices(principal)
        if statuses:
            query = query.where(Invoice.status.in_(statuses))
        if after is not None:
            query = query.where(tuple_(Invoice.created_at, Invoice.id) < tuple_(*after))
        query = query.order_by(Invoice.created_at.desc(), Invoice.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def attempts(self, invoice_id: uuid.UUID) -> Sequence[PaymentAttempt]:
        return (
            (
                await self.session.execute(
                    select(PaymentAttempt)
                    .where(PaymentAttempt.invoice_id == invoice_id)
                    .order_by(PaymentAttempt.attempt_number)
                )
            )
            .scalars()
            .all()
        )

    async def get_attempt(
        self, attempt_id: uuid.UUID, *, for_update: bool = False
    ) -> PaymentAttempt | None:
        query = select(PaymentAttempt).where(PaymentAttempt.id == attempt_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.execute(query.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def find_attempt(
        self, *, attempt_id: uuid.UUID | None, payment_intent_id: str | None
    ) -> PaymentAttempt | None:
        """Find the attempt named by a webhook's metadata, else the one with the PaymentIntent."""
        if attempt_id is not None:
            found = await self.get_attempt(attempt_id)
            if found is not None:
                return found
        if payment_intent_id is None:
            return None
        return (
            await self.session.execute(
                select(PaymentAttempt).where(
                    PaymentAttempt.provider_payment_intent_id == payment_intent_id
                )
            )
        ).scalar_one_or_none()

    async def stale_processing_attempts(
        self, *, older_than: datetime, limit: int
    ) -> Sequence[uuid.UUID]:
        return (
            (
                await self.session.execute(
                    select(PaymentAttempt.id)
                    .where(
                        PaymentAttempt.status == AttemptStatus.PROCESSING,
                        PaymentAttempt.created_at < older_than,
                    )
                    .order_by(PaymentAttempt.created_at)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )

    # --- billing profiles and payout accounts ---

    async def billing_profile(self, organization_id: uuid.UUID) -> BillingProfile | None:
        return await self.session.get(BillingProfile, organization_id, populate_existing=True)

    async def payout_account(self, organization_id: uuid.UUID) -> PayoutAccount | None:
        return await self.session.get(PayoutAccount, organization_id, populate_existing=True)

    async def payout_account_by_provider_id(self, account_id: str) -> PayoutAccount | None:
        return (
            await self.session.execute(
                select(PayoutAccount)
                .where(PayoutAccount.provider_account_id == account_id)
                .with_for_update()
            )
        ).scalar_one_or_none()

    # --- payouts ---

    def _visible_payouts(self, principal: Principal) -> Select[Payout]:
        query = select(Payout)
        if not principal.is_platform_admin:
            query = query.where(Payout.carrier_organization_id == principal.organization_id)
        return query

    async def get_payout(
        self, principal: Principal | None, payout_id: uuid.UUID, *, for_update: bool = False
    ) -> Payout | None:
        query = (
            self._visible_payouts(principal) if principal is not None else select(Payout)
        ).where(Payout.id == payout_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.execute(query.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def payout_for_invoice(self, invoice_id: uuid.UUID) -> Payout | None:
        return (
            await self.session.execute(select(Payout).where(Payout.invoice_id == invoice_id))
        ).scalar_one_or_none()

    async def list_payouts(
        self,
        principal: Principal,
        *,
        statuses: Sequence[PayoutStatus],
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Payout]:
        query = self._visible_payouts(principal)
        if statuses:
            query = query.where(Payout.status.in_(statuses))
        if after is not None:
            query = query.where(tuple_(Payout.created_at, Payout.id) < tuple_(*after))
        query = query.order_by(Payout.created_at.desc(), Payout.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()


def cursor_values(row: Any) -> tuple[datetime, uuid.UUID]:
    return row.created_at, row.id
