"""Business steps of payments: invoicing, charging, settling, voiding and refunding.

Two rules shape every function that talks to the provider:

* No database connection or transaction is held during a provider call. The
  intent is recorded and committed first (the attempt, PROCESSING), then the
  provider is called, then the outcome is recorded in a new transaction.
* Every provider call that creates something carries an idempotency key
  derived from the business operation (``inv:<invoice id>:charge:<n>``), so a
  retry, a reconciliation or a redelivered job reaches the provider with the
  same key and cannot charge twice.

An attempt is settled once, by whichever comes first: the provider's response
to our call, its webhook, or the reconciliation job. Settling is conditional on
the attempt still being PROCESSING, so the later ones change nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import OrganizationType, Role
from superior_one.auth.principal import Principal
from superior_one.config import Settings
from superior_one.db import after_commit, unit_of_work
from superior_one.jobs import TransientJobError, defer
from superior_one.loads.errors import LoadNotFoundError
from superior_one.loads.models import Load, LoadStatus
from superior_one.observability import metrics
from superior_one.payments import audit, ledger, payouts
from superior_one.payments.audit import AuditActor
from superior_one.payments.errors import (
    AmountMismatchError,
    InvoiceNotChargeableError,
    InvoiceNotFoundError,
    LoadNotInvoiceableError,
    PaymentMethodRequiredError,
    PaymentProviderUnavailableError,
    PaymentRejectedError,
    PaymentsRoleError,
)
from superior_one.payments.lifecycle import CHARGEABLE, transition_invoice
from superior_one.payments.models import (
    AttemptStatus,
    Audience,
    BillingProfile,
    ChargeTrigger,
    Invoice,
    InvoiceStatus,
    NotificationKind,
    PaymentAttempt,
    SettledBy,
)
from superior_one.payments.money import split_platform_fee
from superior_one.payments.notifications import Notice, notify, shipper_and_operations
from superior_one.payments.provider import (
    CardDeclinedError,
    CreatePaymentIntent,
    CreateRefund,
    IdempotencyKeyInUseError,
    PaymentIntentResult,
    PaymentIntentStatus,
    PaymentProvider,
    PaymentProviderError,
    ProviderUnavailableError,
    charge_idempotency_key,
    is_hard_decline,
    refund_idempotency_key,
)
from superior_one.payments.repository import PaymentsRepository
from superior_one.payments.runtime import timed_call

log = structlog.get_logger(__name__)

BILLING_ROLES = frozenset({Role.ORG_ADMIN, Role.PLATFORM_ADMIN})
INVOICING_ROLES = frozenset({Role.ORG_ADMIN, Role.DISPATCHER, Role.PLATFORM_ADMIN})


def transfer_group_for(load_id: uuid.UUID) -> str:
    """Return the ``transfer_group`` that links a load's charge and its carrier transfer."""
    return f"load_{load_id}"


def _require_shipper_role(principal: Principal, roles: frozenset[Role], action: str) -> None:
    if principal.is_platform_admin:
        return
    if principal.organization_type not in (OrganizationType.SHIPPER, OrganizationType.BROKER) or (
        principal.role not in roles
    ):
        names = ", ".join(sorted(r.value for r in roles))
        raise PaymentsRoleError(
            f"Only a shipper's {names} can {action}; you are a "
            f"{principal.organization_type.value.lower()} {principal.role.value}."
        )


# --- invoices -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceCreated:
    invoice: Invoice
    created: bool


async def create_invoice_for_load(
    session: AsyncSession,
    settings: Settings,
    load_id: uuid.UUID,
    actor: AuditActor,
    *,
    principal: Principal | None = None,
) -> InvoiceCreated:
    """Invoice a COMPLETED load once; return the existing invoice when there is one.

    Exactly one invoice per load, however many callers race: the insert meets
    the unique ``load_id`` and the losers read the winner's row. The invoice is
    issued (OPEN) at once, with its ledger entries, in the caller's transaction.
    """
    query = select(Load).where(Load.id == load_id)
    if principal is not None and not principal.is_platform_admin:
        query = query.where(Load.shipper_organization_id == principal.organization_id)
    load = (await session.execute(query)).scalar_one_or_none()
    if load is None:
        raise LoadNotFoundError(f"Load {load_id} does not exist.")
    if principal is not None:
        _require_shipper_role(principal, INVOICING_ROLES, "invoice loads")

    repository = PaymentsRepository(session)
    existing = await repository.get_invoice_by_load(load_id)
    if existing is not None:
        return InvoiceCreated(existing, created=False)
    if load.status is not LoadStatus.COMPLETED:
        raise LoadNotInvoiceableError(
            f"Load {load_id} is {load.status}; only a COMPLETED load (delivery confirmed) "
            "can be invoiced. Confirm delivery with POST /loads/{id}/complete first.",
            loadStatus=load.status.value,
        )
    if load.gross_revenue_cents <= 0:
        raise LoadNotInvoiceableError(f"Load {load_id} has no amount to invoice.")

    split = split_platform_fee(load.gross_revenue_cents, settings.platform_fee_percent)
    invoice_id = uuid.uuid4()
    inserted = (
        await session.execute(
            insert(Invoice)
            .values(
                id=invoice_id,
                load_id=load.id,
                shipper_organization_id=load.shipper_organization_id,
                carrier_organization_id=load.assigned_carrier_organization_id,
                status=InvoiceStatus.DRAFT,
                currency=settings.payments_currency,
                amount_cents=split.gross_cents,
                platform_fee_cents=split.fee_cents,
                carrier_payout_cents=split.payout_cents,
                fee_percent=settings.platform_fee_percent,
                net_terms_days=settings.payments_net_terms_days,
            )
            .on_conflict_do_nothing(index_elements=[Invoice.load_id])
            .returning(Invoice.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        winner = await repository.get_invoice_by_load(load_id)
        assert winner is not None, "the conflicting invoice is committed"
        return InvoiceCreated(winner, created=False)

    await audit.record(
        session,
        actor,
        "invoice.created",
        invoice_id=invoice_id,
        load_id=load.id,
        amount_cents=split.gross_cents,
        platform_fee_cents=split.fee_cents,
        carrier_payout_cents=split.payout_cents,
    )
    now = datetime.now(UTC)
    due_at = now + timedelta(days=settings.payments_net_terms_days)
    invoice = await transition_invoice(
        session,
        invoice_id,
        InvoiceStatus.OPEN,
        actor,
        expected_from={InvoiceStatus.DRAFT},
        current=InvoiceStatus.DRAFT,
        changes={
            "issued_at": now,
            "due_at": due_at,
            "next_charge_at": due_at if settings.payments_auto_charge else None,
        },
        reason="issued",
    )
    await ledger.post_invoice_issued(session, invoice)
    log.info(
        "invoice.issued",
        invoice_id=str(invoice.id),
        load_id=str(load.id),
        amount_cents=invoice.amount_cents,
    )
    return InvoiceCreated(invoice, created=True)


async def void_invoice(
    session: AsyncSession, principal: Principal, invoice_id: uuid.UUID, actor: AuditActor
) -> Invoice:
    """Cancel an unpaid invoice and reverse its ledger entries."""
    repository = PaymentsRepository(session)
    invoice = await repository.get_invoice(principal, invoice_id, for_update=True)
    if invoice is None:
        raise InvoiceNotFoundError(f"Invoice {invoice_id} does not exist.")
    _require_shipper_role(principal, BILLING_ROLES, "void invoices")

    was_issued = invoice.issued_at is not None
    invoice = await transition_invoice(
        session,
        invoice_id,
        InvoiceStatus.VOID,
        actor,
        current=invoice.status,
        changes={"voided_at": datetime.now(UTC), "next_charge_at": None},
        reason="voided",
    )
    if was_issued:
        await ledger.post_invoice_voided(session, invoice)
    return invoice


# --- charges: plan, provider call, settlement ----------------------------------------


@dataclass(frozen=True, slots=True)
class ChargePlan:
    invoice_id: uuid.UUID
    attempt_id: uuid.UUID
    idempotency_key: str
    request: CreatePaymentIntent


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    """The provider's outcome of an attempt, or ``unknown`` while it cannot be known."""

    kind: Literal["succeeded", "failed", "unknown"]
    intent: PaymentIntentResult | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    advice_code: str | None = None
    hard: bool = False
    message: str | None = None

    @classmethod
    def from_intent(cls, intent: PaymentIntentResult) -> ChargeOutcome:
        status = intent.status
        if status is PaymentIntentStatus.SUCCEEDED:
            return cls("succeeded", intent)
        if status is PaymentIntentStatus.REQUIRES_ACTION:
            # Off-session charges cannot authenticate: the shipper must act.
            return cls(
                "failed",
                intent,
                failure_code="authentication_required",
                hard=True,
                message="The payment needs the customer's authentication.",
            )
        if status in (PaymentIntentStatus.REQUIRES_PAYMENT_METHOD, PaymentIntentStatus.CANCELED):
            failure = intent.last_failure
            code = failure.code if failure else status.value
            decline = failure.decline_code if failure else None
            advice = failure.advice_code if failure else None
            return cls(
                "failed",
                intent,
                failure_code=code,
                decline_code=decline,
                advice_code=advice,
                hard=is_hard_decline(decline, advice, code),
                message=failure.message if failure else None,
            )
        # processing (asynchronous methods), requires_confirmation, requires_capture
        return cls("unknown", intent, message=f"payment intent is {status.value}")

    @classmethod
    def from_decline(cls, exc: CardDeclinedError) -> ChargeOutcome:
        return cls(
            "failed",
            exc.payment_intent,
            failure_code=exc.code or "card_declined",
            decline_code=exc.decline_code,
            advice_code=exc.advice_code,
            hard=exc.hard,
            message=exc.message,
        )


def intent_request(attempt: PaymentAttempt, invoice_number: str) -> CreatePaymentIntent:
    """Build an attempt's PaymentIntent from its row, identical on every call."""
    return CreatePaymentIntent(
        amount_cents=attempt.amount_cents,
        currency=attempt.currency,
        customer=attempt.customer_id,
        payment_method=attempt.payment_method_id,
        confirm=True,
        off_session=True,
        transfer_group=attempt.transfer_group,
        description=f"Superior One invoice {invoice_number}",
        metadata={
            "invoice_id": str(attempt.invoice_id),
            "invoice_number": invoice_number,
            "attempt_id": str(attempt.id),
            "attempt_number": str(attempt.attempt_number),
        },
    )


async def start_charge(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    invoice_id: uuid.UUID,
    actor: AuditActor,
    *,
    principal: Principal | None,
    trigger: ChargeTrigger,
    expected_amount_cents: int | None = None,
    payment_method_id: str | None = None,
) -> ChargePlan:
    """Record a new PROCESSING attempt and commit it; return what to send to the provider.

    The invoice row is locked for the few milliseconds of this transaction, so of
    concurrent charge requests one records an attempt and the others find the
    invoice PROCESSING (409). A reconciliation job is deferred in the same
    transaction: if this process dies before recording the outcome, the job
    settles the attempt with the same key.
    """
    from superior_one.payments.tasks import reconcile_attempt

    async with unit_of_work(sessionmaker) as session:
        repository = PaymentsRepository(session)
        invoice = await repository.get_invoice(principal, invoice_id, for_update=True)
        if invoice is None:
            raise InvoiceNotFoundError(f"Invoice {invoice_id} does not exist.")
        if principal is not None:
            _require_shipper_role(principal, BILLING_ROLES, "pay invoices")
        if expected_amount_cents is not None and expected_amount_cents != invoice.amount_cents:
            raise AmountMismatchError(
                f"amountCents {expected_amount_cents} does not match invoice {invoice.number}, "
                f"which is for {invoice.amount_cents} cents. Send the invoice's amount or "
                "leave amountCents out.",
                invoiceAmountCents=invoice.amount_cents,
            )
        if invoice.status not in CHARGEABLE:
            raise _not_chargeable(invoice)

        profile = await repository.billing_profile(invoice.shipper_organization_id)
        if profile is None:
            raise PaymentMethodRequiredError(
                f"The shipper of invoice {invoice.number} has no payment method on file. "
                "Save one with PUT /billing/profile (a PaymentMethod id, pm_...), then retry."
            )

        attempt_number = invoice.attempt_count + 1
        key = charge_idempotency_key(str(invoice.id), attempt_number)
        await transition_invoice(
            session,
            invoice.id,
            InvoiceStatus.PROCESSING,
            actor,
            expected_from=CHARGEABLE,
            current=invoice.status,
            changes={"attempt_count": attempt_number, "next_charge_at": None},
            reason=f"charge attempt {attempt_number}",
        )
        attempt = PaymentAttempt(
            id=uuid.uuid4(),
            invoice_id=invoice.id,
            attempt_number=attempt_number,
            idempotency_key=key,
            status=AttemptStatus.PROCESSING,
            trigger=trigger,
            amount_cents=invoice.amount_cents,
            currency=invoice.currency,
            customer_id=profile.provider_customer_id,
            payment_method_id=payment_method_id or profile.default_payment_method_id,
            transfer_group=transfer_group_for(invoice.load_id),
        )
        session.add(attempt)
        await session.flush()
        await audit.record(
            session,
            actor,
            "charge.requested",
            invoice_id=invoice.id,
            attempt_id=attempt.id,
            attempt_number=attempt_number,
            amount_cents=attempt.amount_cents,
            trigger=trigger.value,
        )
        await defer(
            session,
            reconcile_attempt,
            schedule_at=datetime.now(UTC) + timedelta(seconds=settings.payments_reconcile_after_s),
            lock=f"payment-attempt:{attempt.id}",
            attempt_id=str(attempt.id),
        )
        request = intent_request(attempt, invoice.number)
    log.info(
        "payments.charge_started",
        invoice_id=str(invoice_id),
        attempt_id=str(attempt.id),
        attempt_number=attempt_number,
        trigger=trigger.value,
    )
    return ChargePlan(invoice.id, attempt.id, key, request)


def _not_chargeable(invoice: Invoice) -> InvoiceNotChargeableError:
    reasons = {
        InvoiceStatus.PAID: "it is already paid",
        InvoiceStatus.PROCESSING: "a payment is already in progress; check its outcome with "
        "GET /invoices/{id} before trying again",
        InvoiceStatus.VOID: "it is void",
        InvoiceStatus.REFUNDED: "it was refunded",
        InvoiceStatus.DRAFT: "it is not issued yet",
    }
    return InvoiceNotChargeableError(
        f"Invoice {invoice.number} cannot be charged: {reasons.get(invoice.status, 'see status')}.",
        invoiceStatus=invoice.status.value,
    )


async def call_create_intent(
    provider: PaymentProvider, request: CreatePaymentIntent, idempotency_key: str
) -> ChargeOutcome:
    """Send the PaymentIntent to the provider; turn every response into an outcome.

    Only errors that prove nothing was charged become ``failed``; anything that
    may have taken effect (timeouts, 5xx, a concurrent request with the key) is
    ``unknown`` and settled later with the same key.
    """
    try:
        intent = await timed_call(
            "create_payment_intent",
            provider.create_payment_intent(request, idempotency_key=idempotency_key),
        )
    except CardDeclinedError as exc:
        return ChargeOutcome.from_decline(exc)
    except (ProviderUnavailableError, IdempotencyKeyInUseError) as exc:
        return ChargeOutcome("unknown", message=f"{type(exc).__name__}: {exc.code or ''}")
    except PaymentProviderError as exc:
        # Rejected before anything happened: bad parameters, unknown customer,
        # authentication. Not retried automatically.
        log.error(
            "payments.charge_rejected",
            error_type=type(exc).__name__,
            code=exc.code,
            http_status=exc.http_status,
        )
        return ChargeOutcome(
            "failed",
            failure_code=exc.code or "provider_rejected",
            hard=True,
            message=exc.message[:500],
        )
    return ChargeOutcome.from_intent(intent)


@dataclass(frozen=True, slots=True)
class Settlement:
    invoice: Invoice
    attempt: PaymentAttempt
    # False when the attempt had been settled already (by a webhook, the job...).
    applied: bool


async def settle_attempt(
    session: AsyncSession,
    settings: Settings,
    attempt_id: uuid.UUID,
    outcome: ChargeOutcome,
    actor: AuditActor,
    settled_by: SettledBy,
    *,
    invoice_id: uuid.UUID | None = None,
) -> Settlement:
    """Record an attempt's outcome once: the invoice, the ledger, the payout, notices.

    ``invoice_id`` (the attempt's invoice, when the caller knows it) saves a read.
    """
    repository = PaymentsRepository(session)
    if invoice_id is None:
        found = await repository.get_attempt(attempt_id)
        if found is None:
            raise InvoiceNotFoundError(f"Payment attempt {attempt_id} does not exist.")
        invoice_id = found.invoice_id
    # Lock order everywhere: the invoice, then its attempt.
    invoice = await repository.get_invoice(None, invoice_id, for_update=True)
    assert invoice is not None
    attempt = await repository.get_attempt(attempt_id, for_update=True)
    assert attempt is not None
    if attempt.status is not AttemptStatus.PROCESSING or outcome.kind == "unknown":
        if attempt.status is AttemptStatus.PROCESSING:
            await _record_unknown(session, attempt, outcome, actor)
        return Settlement(invoice, attempt, applied=False)

    now = datetime.now(UTC)
    intent = outcome.intent
    attempt.settled_at = now
    attempt.settled_by = settled_by
    if intent is not None:
        attempt.provider_payment_intent_id = intent.id
        attempt.provider_charge_id = intent.latest_charge_id or attempt.provider_charge_id
    elapsed_s = (now - attempt.created_at).total_seconds()

    if outcome.kind == "succeeded":
        assert intent is not None
        attempt.status = AttemptStatus.SUCCEEDED
        await session.flush()
        if intent.amount_received_cents != attempt.amount_cents:
            log.error(
                "payments.amount_mismatch",
                attempt_id=str(attempt.id),
                expected_cents=attempt.amount_cents,
                received_cents=intent.amount_received_cents,
            )
        invoice = await transition_invoice(
            session,
            invoice.id,
            InvoiceStatus.PAID,
            actor,
            expected_from={InvoiceStatus.PROCESSING},
            current=invoice.status,
            changes={
                "paid_at": now,
                "next_charge_at": None,
                "last_failure_code": None,
                "hard_declined": False,
            },
            reason=f"attempt {attempt.attempt_number} succeeded ({settled_by.value.lower()})",
        )
        await ledger.post_payment_received(session, invoice, attempt.id)
        await audit.record(
            session,
            actor,
            "charge.succeeded",
            invoice_id=invoice.id,
            attempt_id=attempt.id,
            payment_intent_id=intent.id,
            charge_id=intent.latest_charge_id,
            amount_cents=attempt.amount_cents,
            settled_by=settled_by.value,
        )
        await payouts.create_for_paid_invoice(session, invoice, attempt, actor)
        _count_after_commit(session, "succeeded", elapsed_s)
        log.info(
            "payments.charge_succeeded",
            invoice_id=str(invoice.id),
            attempt_id=str(attempt.id),
            settled_by=settled_by.value,
        )
        return Settlement(invoice, attempt, applied=True)

    attempt.status = AttemptStatus.FAILED
    attempt.failure_code = outcome.failure_code
    attempt.decline_code = outcome.decline_code
    attempt.advice_code = outcome.advice_code
    attempt.hard_decline = outcome.hard
    attempt.failure_message = (outcome.message or "")[:500] or None
    await session.flush()
    next_charge_at = _next_dunning_charge(settings, attempt, now)
    invoice = await transition_invoice(
        session,
        invoice.id,
        InvoiceStatus.PAYMENT_FAILED,
        actor,
        expected_from={InvoiceStatus.PROCESSING},
        current=invoice.status,
        changes={
            "next_charge_at": next_charge_at,
            "last_failure_code": outcome.decline_code or outcome.failure_code,
            "hard_declined": outcome.hard,
        },
        reason=f"attempt {attempt.attempt_number} failed ({settled_by.value.lower()})",
    )
    await audit.record(
        session,
        actor,
        "charge.failed",
        invoice_id=invoice.id,
        attempt_id=attempt.id,
        failure_code=outcome.failure_code,
        decline_code=outcome.decline_code,
        hard_decline=outcome.hard,
        next_charge_at=next_charge_at,
        settled_by=settled_by.value,
    )
    await notify(session, _failure_notices(invoice, attempt, next_charge_at))
    _count_after_commit(session, "failed", elapsed_s)
    log.info(
        "payments.charge_failed",
        invoice_id=str(invoice.id),
        attempt_id=str(attempt.id),
        decline_code=outcome.decline_code,
        hard_decline=outcome.hard,
        settled_by=settled_by.value,
    )
    return Settlement(invoice, attempt, applied=True)


def _count_after_commit(
    session: AsyncSession, outcome: Literal["succeeded", "failed"], elapsed_s: float
) -> None:
    # Count the outcome only once the settlement commits, so a rolled-back one is not counted.
    async def count() -> None:
        metrics.PAYMENTS.labels(outcome).inc()
        metrics.PAYMENT_PROCESSING.observe(elapsed_s)

    after_commit(session, count)


async def _record_unknown(
    session: AsyncSession, attempt: PaymentAttempt, outcome: ChargeOutcome, actor: AuditActor
) -> None:
    attempt.last_error = (outcome.message or "outcome unknown")[:200]
    if outcome.intent is not None:
        attempt.provider_payment_intent_id = outcome.intent.id
    await session.flush()
    await audit.record(
        session,
        actor,
        "charge.outcome_unknown",
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
        error=attempt.last_error,
    )
    log.warning(
        "payments.charge_outcome_unknown", attempt_id=str(attempt.id), error=attempt.last_error
    )


def _next_dunning_charge(
    settings: Settings, attempt: PaymentAttempt, now: datetime
) -> datetime | None:
    """When to retry after a failed attempt: never after a hard decline or the last step."""
    if attempt.hard_decline:
        return None
    schedule = settings.payments_dunning_retry_h
    if attempt.attempt_number > len(schedule):
        return None
    return now + timedelta(hours=schedule[attempt.attempt_number - 1])


def _failure_notices(
    invoice: Invoice, attempt: PaymentAttempt, next_charge_at: datetime | None
) -> list[Notice]:
    details = {
        "invoiceNumber": invoice.number,
        "attemptNumber": attempt.attempt_number,
        "declineCode": attempt.decline_code,
        "failureCode": attempt.failure_code,
        "hardDecline": attempt.hard_decline,
        "nextChargeAt": next_charge_at.isoformat() if next_charge_at else None,
    }
    if attempt.hard_decline:
        message = (
            f"Payment of invoice {invoice.number} was declined and will not be retried "
            "automatically. Update the payment method and pay the invoice."
        )
    elif next_charge_at is None:
        message = (
            f"Payment of invoice {invoice.number} failed {attempt.attempt_number} times; "
            "automatic retries have stopped. Update the payment method and pay the invoice."
        )
    else:
        message = (
            f"Payment of invoice {invoice.number} failed; it is retried automatically at "
            f"{next_charge_at.isoformat(timespec='minutes')}."
        )
    kind = NotificationKind.PAYMENT_FAILED
    notices = shipper_and_operations(
        invoice.shipper_organization_id,
        kind,
        f"attempt:{attempt.id}:failed",
        message,
        invoice_id=invoice.id,
        details=details,
    )
    if next_charge_at is None and not attempt.hard_decline:
        notices += shipper_and_operations(
            invoice.shipper_organization_id,
            NotificationKind.DUNNING_EXHAUSTED,
            f"invoice:{invoice.id}:dunning-exhausted",
            message,
            invoice_id=invoice.id,
            details=details,
        )
    return notices


@dataclass(frozen=True, slots=True)
class ChargeResult:
    invoice: Invoice
    attempt: PaymentAttempt
    # Time spent waiting for the provider, for the Server-Timing header.
    provider_ms: float


async def charge_invoice(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    provider: PaymentProvider,
    invoice_id: uuid.UUID,
    actor: AuditActor,
    *,
    principal: Principal | None,
    trigger: ChargeTrigger,
    expected_amount_cents: int | None = None,
    payment_method_id: str | None = None,
) -> ChargeResult:
    """Charge an invoice: record the attempt, call the provider, record the outcome."""
    plan = await start_charge(
        sessionmaker,
        settings,
        invoice_id,
        actor,
        principal=principal,
        trigger=trigger,
        expected_amount_cents=expected_amount_cents,
        payment_method_id=payment_method_id,
    )

    started = time.perf_counter()
    outcome = await call_create_intent(provider, plan.request, plan.idempotency_key)
    provider_ms = (time.perf_counter() - started) * 1000

    async with unit_of_work(sessionmaker) as session:
        settlement = await settle_attempt(
            session,
            settings,
            plan.attempt_id,
            outcome,
            actor,
            SettledBy.RESPONSE,
            invoice_id=plan.invoice_id,
        )
    return ChargeResult(settlement.invoice, settlement.attempt, provider_ms)


async def reconcile_attempt(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    provider: PaymentProvider,
    attempt_id: uuid.UUID,
) -> AttemptStatus:
    """Settle an attempt left PROCESSING by resending it with the same idempotency key.

    The provider replays the stored result if the first request reached it, and
    runs it if it did not: either way one charge at most. Raises
    :class:`TransientJobError` while the outcome stays unknown.
    """
    actor = AuditActor.system("payment reconciliation")
    async with unit_of_work(sessionmaker) as session:
        repository = PaymentsRepository(session)
        attempt = await repository.get_attempt(attempt_id, for_update=True)
        if attempt is None or attempt.status is not AttemptStatus.PROCESSING:
            return attempt.status if attempt is not None else AttemptStatus.FAILED
        invoice = await repository.get_invoice(None, attempt.invoice_id)
        assert invoice is not None
        attempt.reconcile_count += 1
        age = datetime.now(UTC) - attempt.created_at
        request = intent_request(attempt, invoice.number)
        key = attempt.idempotency_key
        known_intent = attempt.provider_payment_intent_id
        too_old = age > timedelta(hours=settings.payments_reconcile_max_age_h)
        if too_old and known_intent is None:
            # NOTE: past the provider's 24 h key retention a resend could charge
            # again. Finding the PaymentIntent by its metadata (search API) is not
            # built, so a person checks the provider's dashboard.
            await notify(
                session,
                [
                    Notice(
                        Audience.OPERATIONS,
                        NotificationKind.RECONCILIATION_REVIEW,
                        f"attempt:{attempt.id}:review",
                        f"Payment attempt {attempt.attempt_number} of invoice {invoice.number} "
                        "still has an unknown outcome after the provider's key retention; "
                        "check it in the provider's dashboard.",
                        invoice_id=invoice.id,
                    )
                ],
            )
            log.error("payments.reconciliation_needs_review", attempt_id=str(attempt.id))
            return AttemptStatus.PROCESSING

    if too_old and known_intent is not None:
        try:
            intent = await timed_call(
                "retrieve_payment_intent", provider.retrieve_payment_intent(known_intent)
            )
            outcome = ChargeOutcome.from_intent(intent)
        except PaymentProviderError as exc:
            outcome = ChargeOutcome("unknown", message=f"{type(exc).__name__}")
    else:
        outcome = await call_create_intent(provider, request, key)

    async with unit_of_work(sessionmaker) as session:
        settlement = await settle_attempt(
            session, settings, attempt_id, outcome, actor, SettledBy.RECONCILIATION
        )
    status = settlement.attempt.status
    if status is AttemptStatus.PROCESSING:
        raise TransientJobError(
            f"The outcome of payment attempt {attempt_id} is still unknown; reconciling later."
        )
    log.info("payments.attempt_reconciled", attempt_id=str(attempt_id), status=status.value)
    return status


async def charge_from_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    provider: PaymentProvider,
    invoice_id: uuid.UUID,
    trigger: ChargeTrigger,
) -> str:
    """Charge an invoice automatically (due date or dunning); a business refusal ends it."""
    actor = AuditActor.system(f"automatic charge ({trigger.value.lower()})")
    try:
        result = await charge_invoice(
            sessionmaker, settings, provider, invoice_id, actor, principal=None, trigger=trigger
        )
    except InvoiceNotChargeableError as exc:
        log.info("payments.auto_charge_skipped", invoice_id=str(invoice_id), reason=exc.code)
        return "skipped"
    except PaymentMethodRequiredError:
        async with unit_of_work(sessionmaker) as session:
            invoice = await PaymentsRepository(session).get_invoice(None, invoice_id)
            if invoice is not None:
                await notify(
                    session,
                    shipper_and_operations(
                        invoice.shipper_organization_id,
                        NotificationKind.PAYMENT_METHOD_REQUIRED,
                        f"invoice:{invoice.id}:payment-method-required",
                        f"Invoice {invoice.number} is due but no payment method is on file. "
                        "Add one and pay the invoice.",
                        invoice_id=invoice.id,
                    ),
                )
        return "payment_method_required"
    return result.attempt.status.value


# --- refunds ------------------------------------------------------------------------


async def refund_invoice(
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    principal: Principal,
    invoice_id: uuid.UUID,
    actor: AuditActor,
) -> Invoice:
    """Refund a paid invoice in full (platform admins).

    The refund's key is derived from the invoice (one full refund per invoice),
    so a retry after a lost response replays the same refund.
    """
    if not principal.is_platform_admin:
        raise PaymentsRoleError("Only platform administrators can refund invoices.")
    async with unit_of_work(sessionmaker) as session:
        repository = PaymentsRepository(session)
        invoice = await repository.get_invoice(principal, invoice_id)
        if invoice is None:
            raise InvoiceNotFoundError(f"Invoice {invoice_id} does not exist.")
        if invoice.status is not InvoiceStatus.PAID:
            raise InvoiceNotChargeableError(
                f"Invoice {invoice.number} is {invoice.status}; only a PAID invoice can be "
                "refunded.",
                invoiceStatus=invoice.status.value,
            )
        paid = [
            a for a in await repository.attempts(invoice.id) if a.status is AttemptStatus.SUCCEEDED
        ]
        if not paid or paid[-1].provider_payment_intent_id is None:
            raise PaymentRejectedError(f"Invoice {invoice.number} has no recorded payment.")
        intent_id = paid[-1].provider_payment_intent_id
        await audit.record(
            session, actor, "refund.requested", invoice_id=invoice.id, payment_intent_id=intent_id
        )

    try:
        refund = await timed_call(
            "create_refund",
            provider.create_refund(
                CreateRefund(
                    payment_intent_id=intent_id,
                    reason="requested_by_customer",
                    metadata={"invoice_id": str(invoice_id)},
                ),
                idempotency_key=refund_idempotency_key(str(invoice_id), 1),
            ),
        )
    except (ProviderUnavailableError, IdempotencyKeyInUseError) as exc:
        raise PaymentProviderUnavailableError(
            "The payment provider did not confirm the refund. Retry the request with the "
            "same Idempotency-Key; the refund cannot happen twice.",
            headers={"Retry-After": "5"},
        ) from exc
    except PaymentProviderError as exc:
        raise PaymentRejectedError(
            f"The payment provider rejected the refund: {exc.message}", providerCode=exc.code
        ) from exc

    async with unit_of_work(sessionmaker) as session:
        return await apply_refund(session, invoice_id, refund.id, actor)


async def apply_refund(
    session: AsyncSession, invoice_id: uuid.UUID, refund_id: str | None, actor: AuditActor
) -> Invoice:
    """Mark a paid invoice REFUNDED with its ledger entries; a no-op when it already is."""
    repository = PaymentsRepository(session)
    invoice = await repository.get_invoice(None, invoice_id, for_update=True)
    if invoice is None:
        raise InvoiceNotFoundError(f"Invoice {invoice_id} does not exist.")
    if invoice.status is InvoiceStatus.REFUNDED:
        return invoice
    invoice = await transition_invoice(
        session,
        invoice_id,
        InvoiceStatus.REFUNDED,
        actor,
        expected_from={InvoiceStatus.PAID},
        current=invoice.status,
        changes={"refunded_at": datetime.now(UTC)},
        reason="refunded",
    )
    await ledger.post_payment_refunded(session, invoice)
    await audit.record(
        session, actor, "refund.succeeded", invoice_id=invoice.id, refund_id=refund_id
    )
    return invoice


# --- billing profiles ---------------------------------------------------------------


async def save_billing_profile(
    session: AsyncSession,
    principal: Principal,
    customer_id: str,
    payment_method_id: str,
    actor: AuditActor,
) -> BillingProfile:
    """Store the shipper's provider customer and default PaymentMethod (ids only)."""
    if principal.is_platform_admin or principal.organization_type not in (
        OrganizationType.SHIPPER,
        OrganizationType.BROKER,
    ):
        raise PaymentsRoleError("Only a shipper organization has a billing profile.")
    _require_shipper_role(principal, frozenset({Role.ORG_ADMIN}), "change the billing profile")

    values = {
        "provider_customer_id": customer_id,
        "default_payment_method_id": payment_method_id,
        "updated_at": datetime.now(UTC),
    }
    statement = insert(BillingProfile).values(organization_id=principal.organization_id, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[BillingProfile.organization_id], set_=values
        )
    )
    # Ids are not card data, but the trail only needs to know that it changed.
    await audit.record(session, actor, "billing_profile.updated")
    profile = await PaymentsRepository(session).billing_profile(principal.organization_id)
    assert profile is not None
    return profile
