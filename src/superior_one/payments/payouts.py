"""Carrier payouts with Stripe Connect: separate charges and transfers.

The shipper's charge lands on the platform's balance. Once it succeeded and
the load's delivery is confirmed (the load is COMPLETED), the carrier's share
(gross less the platform fee) is sent to the carrier's connected account as a
transfer with ``transfer_group`` = the load and ``source_transaction`` = the
charge, so the transfer waits for the charge's funds and the provider's
reports tie the two together. The platform keeps the fee.

A carrier that has no connected account, or one that cannot receive transfers
yet (onboarding unfinished), gets its payouts parked as WAITING_FOR_ACCOUNT.
They are released when the account can receive transfers: on its
``account.updated`` webhook, or when the carrier refreshes its account.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import OrganizationType, Role
from superior_one.auth.principal import Principal
from superior_one.db import unit_of_work
from superior_one.jobs import TransientJobError, defer, defer_many
from superior_one.loads.models import Load, LoadStatus
from superior_one.payments import audit, ledger
from superior_one.payments.audit import AuditActor
from superior_one.payments.errors import PaymentProviderUnavailableError, PaymentsRoleError
from superior_one.payments.models import (
    Audience,
    Invoice,
    InvoiceStatus,
    NotificationKind,
    PaymentAttempt,
    Payout,
    PayoutAccount,
    PayoutStatus,
)
from superior_one.payments.notifications import Notice, notify
from superior_one.payments.provider import (
    ConnectedAccountResult,
    CreateConnectedAccount,
    CreateTransfer,
    IdempotencyKeyInUseError,
    PaymentProvider,
    PaymentProviderError,
    ProviderUnavailableError,
    account_idempotency_key,
    transfer_idempotency_key,
)
from superior_one.payments.repository import PaymentsRepository
from superior_one.payments.runtime import timed_call

log = structlog.get_logger(__name__)

FINAL = frozenset({PayoutStatus.PAID, PayoutStatus.FAILED})


async def create_for_paid_invoice(
    session: AsyncSession, invoice: Invoice, attempt: PaymentAttempt, actor: AuditActor
) -> uuid.UUID | None:
    """Create the carrier's payout of a just-paid invoice and defer its transfer.

    Runs in the transaction that marks the invoice PAID; returns the new payout's
    id, or None when there is nothing to pay out (or it exists already).
    """
    from superior_one.payments.tasks import send_payout

    load = (
        await session.execute(
            select(Load.status, Load.assigned_carrier_organization_id).where(
                Load.id == invoice.load_id
            )
        )
    ).one()
    carrier_id = invoice.carrier_organization_id or load.assigned_carrier_organization_id
    if load.status is not LoadStatus.COMPLETED or carrier_id is None:
        # NOTE: invoices are made only for COMPLETED loads, so this does not
        # happen today; a load reopened after invoicing would need a manual payout.
        log.warning("payments.payout_not_due", invoice_id=str(invoice.id), load_status=load.status)
        return None
    if invoice.carrier_payout_cents <= 0:
        return None
    if attempt.provider_charge_id is None:
        log.error("payments.payout_without_charge", invoice_id=str(invoice.id))
        await notify(
            session,
            [
                Notice(
                    Audience.OPERATIONS,
                    NotificationKind.PAYOUT_FAILED,
                    f"invoice:{invoice.id}:payout-no-charge",
                    f"Invoice {invoice.number} is paid but its charge id is unknown; "
                    "create the carrier payout by hand.",
                    invoice_id=invoice.id,
                )
            ],
        )
        return None

    payout_id = uuid.uuid4()
    created = (
        await session.execute(
            insert(Payout)
            .values(
                id=payout_id,
                invoice_id=invoice.id,
                load_id=invoice.load_id,
                carrier_organization_id=carrier_id,
                status=PayoutStatus.PENDING,
                amount_cents=invoice.carrier_payout_cents,
                currency=invoice.currency,
                transfer_group=attempt.transfer_group,
                source_charge_id=attempt.provider_charge_id,
                idempotency_key=transfer_idempotency_key(str(payout_id)),
            )
            .on_conflict_do_nothing(index_elements=[Payout.invoice_id])
            .returning(Payout.id)
        )
    ).scalar_one_or_none()
    if created is None:
        return None
    await audit.record(
        session,
        actor,
        "payout.created",
        invoice_id=invoice.id,
        payout_id=payout_id,
        amount_cents=invoice.carrier_payout_cents,
        carrier_organization_id=carrier_id,
    )
    await defer(session, send_payout, lock=f"payout:{payout_id}", payout_id=str(payout_id))
    return payout_id


async def send_payout(
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    payout_id: uuid.UUID,
) -> PayoutStatus:
    """Transfer a payout to the carrier's connected account (a job; safe to run again)."""
    actor = AuditActor.system("carrier payout")
    async with unit_of_work(sessionmaker) as session:
        repository = PaymentsRepository(session)
        payout = await repository.get_payout(None, payout_id, for_update=True)
        if payout is None or payout.status in FINAL:
            return payout.status if payout is not None else PayoutStatus.FAILED
        invoice = await repository.get_invoice(None, payout.invoice_id)
        if invoice is None or invoice.status is not InvoiceStatus.PAID:
            # Refunded before the transfer went out: nothing is owed to the carrier.
            await _fail(
                session,
                payout.id,
                PaymentProviderError("The invoice is no longer paid.", code="invoice_not_paid"),
                actor,
            )
            return PayoutStatus.FAILED
        account = await repository.payout_account(payout.carrier_organization_id)
        if account is None or not account.can_receive_transfers:
            if payout.status is not PayoutStatus.WAITING_FOR_ACCOUNT:
                payout.status = PayoutStatus.WAITING_FOR_ACCOUNT
                await audit.record(
                    session, actor, "payout.waiting_for_account", payout_id=payout.id
                )
                await notify(session, [_account_required_notice(payout)])
            return PayoutStatus.WAITING_FOR_ACCOUNT

        payout.status = PayoutStatus.PROCESSING
        payout.destination_account_id = account.provider_account_id
        payout.attempt_count += 1
        await audit.record(
            session,
            actor,
            "payout.transfer_requested",
            invoice_id=payout.invoice_id,
            payout_id=payout.id,
            attempt=payout.attempt_count,
        )
        request = CreateTransfer(
            amount_cents=payout.amount_cents,
            currency=payout.currency,
            destination_account=account.provider_account_id,
            transfer_group=payout.transfer_group,
            source_transaction=payout.source_charge_id,
            description=f"Superior One payout for load {payout.load_id}",
            metadata={
                "payout_id": str(payout.id),
                "invoice_id": str(payout.invoice_id),
                "load_id": str(payout.load_id),
            },
        )
        key = payout.idempotency_key

    try:
        transfer = await timed_call(
            "create_transfer", provider.create_transfer(request, idempotency_key=key)
        )
    except (ProviderUnavailableError, IdempotencyKeyInUseError) as exc:
        # The transfer may have happened: the next run resends it with the same key.
        raise TransientJobError(
            f"The transfer of payout {payout_id} is unconfirmed ({type(exc).__name__})."
        ) from exc
    except PaymentProviderError as exc:
        async with unit_of_work(sessionmaker) as session:
            await _fail(session, payout_id, exc, actor)
        return PayoutStatus.FAILED

    async with unit_of_work(sessionmaker) as session:
        payout = await mark_sent(session, payout_id, transfer.id, actor)
    return payout.status if payout is not None else PayoutStatus.FAILED


async def mark_sent(
    session: AsyncSession, payout_id: uuid.UUID, transfer_id: str, actor: AuditActor
) -> Payout | None:
    """Record a payout's transfer with its ledger entries; a no-op when already recorded."""
    payout = await PaymentsRepository(session).get_payout(None, payout_id, for_update=True)
    if payout is None or payout.status is PayoutStatus.PAID:
        return payout
    payout.status = PayoutStatus.PAID
    payout.provider_transfer_id = transfer_id
    payout.sent_at = datetime.now(UTC)
    payout.failure_code = None
    payout.failure_message = None
    await session.flush()
    await ledger.post_payout_sent(session, payout)
    await audit.record(
        session,
        actor,
        "payout.sent",
        invoice_id=payout.invoice_id,
        payout_id=payout.id,
        transfer_id=transfer_id,
        amount_cents=payout.amount_cents,
    )
    log.info("payments.payout_sent", payout_id=str(payout.id), amount_cents=payout.amount_cents)
    return payout


async def _fail(
    session: AsyncSession, payout_id: uuid.UUID, exc: PaymentProviderError, actor: AuditActor
) -> None:
    payout = await PaymentsRepository(session).get_payout(None, payout_id, for_update=True)
    if payout is None or payout.status in FINAL:
        return
    payout.status = PayoutStatus.FAILED
    payout.failure_code = (exc.code or type(exc).__name__)[:64]
    payout.failure_message = exc.message[:500]
    await audit.record(
        session,
        actor,
        "payout.failed",
        invoice_id=payout.invoice_id,
        payout_id=payout.id,
        failure_code=payout.failure_code,
    )
    await notify(
        session,
        [
            Notice(
                Audience.OPERATIONS,
                NotificationKind.PAYOUT_FAILED,
                f"payout:{payout.id}:failed:{payout.attempt_count}",
                f"Payout {payout.id} failed ({payout.failure_code}): {payout.failure_message}",
                organization_id=None,
                invoice_id=payout.invoice_id,
                payout_id=payout.id,
                details={"failureCode": payout.failure_code},
            )
        ],
    )
    log.error("payments.payout_failed", payout_id=str(payout.id), failure_code=payout.failure_code)


def _account_required_notice(payout: Payout) -> Notice:
    return Notice(
        Audience.CARRIER,
        NotificationKind.PAYOUT_ACCOUNT_REQUIRED,
        f"payout:{payout.id}:account-required",
        "A payout is waiting for your organization: set up your payout account "
        "(POST /payouts/account) to receive it.",
        organization_id=payout.carrier_organization_id,
        invoice_id=payout.invoice_id,
        payout_id=payout.id,
        details={"amountCents": payout.amount_cents},
    )


# --- connected accounts (carrier onboarding) ----------------------------------------


def _require_carrier_admin(principal: Principal) -> None:
    if principal.organization_type is not OrganizationType.CARRIER or principal.role not in (
        Role.ORG_ADMIN,
    ):
        raise PaymentsRoleError(
            "Only a carrier organization's admin can set up its payout account; you are a "
            f"{principal.organization_type.value.lower()} {principal.role.value}."
        )


async def set_up_account(
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    principal: Principal,
    actor: AuditActor,
) -> PayoutAccount:
    """Create the carrier's connected account, or refresh its state; release waiting payouts.

    The account's key is derived from the organization, so a retry after a lost
    response gets the same account back instead of a second one.
    """
    _require_carrier_admin(principal)
    organization_id = principal.organization_id
    async with unit_of_work(sessionmaker) as session:
        existing = await PaymentsRepository(session).payout_account(organization_id)
        account_id = existing.provider_account_id if existing is not None else None

    try:
        if account_id is not None:
            result = await timed_call(
                "retrieve_account", provider.retrieve_connected_account(account_id)
            )
        else:
            result = await timed_call(
                "create_account",
                provider.create_connected_account(
                    CreateConnectedAccount(metadata={"organization_id": str(organization_id)}),
                    idempotency_key=account_idempotency_key(str(organization_id)),
                ),
            )
    except (ProviderUnavailableError, IdempotencyKeyInUseError) as exc:
        raise PaymentProviderUnavailableError(
            "The payment provider did not respond. Retry with the same Idempotency-Key.",
            headers={"Retry-After": "5"},
        ) from exc

    # Whole seconds, like event timestamps: an event of the same second still applies.
    as_of = datetime.now(UTC).replace(microsecond=0)
    async with unit_of_work(sessionmaker) as session:
        account = await store_account_state(session, organization_id, result, as_of, actor)
    assert account is not None
    return account


async def store_account_state(
    session: AsyncSession,
    organization_id: uuid.UUID,
    result: ConnectedAccountResult,
    as_of: datetime,
    actor: AuditActor,
) -> PayoutAccount | None:
    """Upsert the onboarding state unless a newer state is stored; release waiting payouts."""
    values = {
        "provider_account_id": result.id,
        "charges_enabled": result.charges_enabled,
        "payouts_enabled": result.payouts_enabled,
        "details_submitted": result.details_submitted,
        "transfers_capability": result.transfers_capability,
        "provider_state_at": as_of,
        "updated_at": datetime.now(UTC),
    }
    statement = insert(PayoutAccount).values(organization_id=organization_id, **values)
    stored = (
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[PayoutAccount.organization_id],
                set_=values,
                # An older event (delivered out of order) never overwrites a newer state.
                where=(PayoutAccount.provider_state_at.is_(None))
                | (PayoutAccount.provider_state_at <= as_of),
            ).returning(PayoutAccount.organization_id)
        )
    ).scalar_one_or_none()
    account = await PaymentsRepository(session).payout_account(organization_id)
    if stored is None:
        log.info("payments.account_state_outdated", organization_id=str(organization_id))
        return account
    await audit.record(
        session,
        actor,
        "payout_account.updated",
        account_id=result.id,
        payouts_enabled=result.payouts_enabled,
        transfers_capability=result.transfers_capability,
        organization_id=organization_id,
    )
    if account is not None and account.can_receive_transfers:
        await release_waiting_payouts(session, organization_id)
    return account


async def release_waiting_payouts(session: AsyncSession, organization_id: uuid.UUID) -> int:
    """Queue the transfers of payouts that waited for the carrier's account."""
    from superior_one.payments.tasks import send_payout

    released = list(
        (
            await session.execute(
                update(Payout)
                .where(
                    Payout.carrier_organization_id == organization_id,
                    Payout.status == PayoutStatus.WAITING_FOR_ACCOUNT,
                )
                .values(status=PayoutStatus.PENDING, updated_at=datetime.now(UTC))
                .returning(Payout.id)
            )
        ).scalars()
    )
    await defer_many(session, send_payout, [{"payout_id": str(p)} for p in released])
    if released:
        log.info(
            "payments.payouts_released", organization_id=str(organization_id), count=len(released)
        )
    return len(released)
