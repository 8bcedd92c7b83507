"""HTTP routes of payments: invoices, charges, billing profile, payouts, webhooks, ledger.

POST routes with effects take an ``Idempotency-Key`` header and run through
:func:`superior_one.payments.idempotency.run_idempotent`. They manage their
own short transactions instead of the request session. A charge must commit
its attempt before it calls the provider, and it holds no database connection
during the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, TypeVar

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from superior_one.auth.dependencies import CurrentPrincipal, PlatformAdmin
from superior_one.config import Settings
from superior_one.db import SessionDep, unit_of_work
from superior_one.payments import ledger, payouts, service, webhook_events
from superior_one.payments.audit import AuditActor
from superior_one.payments.errors import (
    InvoiceNotFoundError,
    PaymentDeclinedError,
    PaymentRejectedError,
    PayoutAccountMissingError,
    PayoutNotFoundError,
)
from superior_one.payments.idempotency import HEADER, run_idempotent
from superior_one.payments.models import (
    AttemptStatus,
    ChargeTrigger,
    Invoice,
    InvoiceStatus,
    Payout,
    PayoutStatus,
)
from superior_one.payments.repository import PaymentsRepository
from superior_one.payments.runtime import PaymentsRuntime
from superior_one.payments.schemas import (
    AttemptOut,
    BillingProfileIn,
    BillingProfileOut,
    ChargeIn,
    ChargeOut,
    InvoiceOut,
    InvoicePageOut,
    LedgerAuditOut,
    PayoutAccountOut,
    PayoutOut,
    PayoutPageOut,
    WebhookAck,
    decode_cursor,
    encode_cursor,
)
from superior_one.payments.webhooks import SIGNATURE_HEADER, WebhookSecretNotConfiguredError
from superior_one.query_parameters import KnownQuery

log = structlog.get_logger(__name__)

bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="Access token")
api = APIRouter(tags=["payments"], dependencies=[Depends(bearer)])
webhooks = APIRouter(tags=["webhooks"])
router = APIRouter()

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description="A unique value per operation (a UUID). Retrying with the same key and "
        "body returns the first response; the same key with another body is rejected (422).",
    ),
]
DECLINE_RESPONSES: dict[int | str, dict[str, str]] = {
    402: {"description": "The card was declined; the attempt is recorded as failed."},
    409: {"description": "The invoice cannot be charged now, or the key is in use."},
    422: {"description": "Idempotency-Key reused with another body, or amount mismatch."},
}


def get_runtime(request: Request) -> PaymentsRuntime:
    runtime: PaymentsRuntime | None = getattr(request.app.state, "payments", None)
    return runtime if runtime is not None else PaymentsRuntime(provider=None)


RuntimeDep = Annotated[PaymentsRuntime, Depends(get_runtime)]


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return str(value) if value is not None else None


def _actor(principal: CurrentPrincipal, request: Request) -> AuditActor:
    return AuditActor.from_principal(principal, _request_id(request))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _json(model: InvoiceOut | ChargeOut | PayoutAccountOut) -> bytes:
    return model.model_dump_json(by_alias=True).encode()


Row = TypeVar("Row", Invoice, Payout)


def _page(rows: Sequence[Row], limit: int) -> tuple[Sequence[Row], str | None]:
    """Cut the extra row fetched past ``limit`` into the next page's cursor."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(page[-1].created_at, page[-1].id)


# --- invoices -----------------------------------------------------------------------


@api.post(
    "/loads/{load_id}/invoice",
    response_model=InvoiceOut,
    status_code=201,
    summary="Invoice a completed load",
    responses={200: {"description": "The load's invoice already existed."}},
)
async def invoice_load(
    load_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create the invoice of a COMPLETED load, or return the one it has (one per load)."""
    settings = _settings(request)

    async def operation() -> tuple[int, bytes]:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            result = await service.create_invoice_for_load(
                session, settings, load_id, _actor(principal, request), principal=principal
            )
        return (201 if result.created else 200), _json(InvoiceOut.of(result.invoice))

    return await run_idempotent(request, principal, idempotency_key, operation)


@api.get("/loads/{load_id}/invoice", response_model=InvoiceOut, summary="A load's invoice")
async def get_load_invoice(
    load_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> InvoiceOut:
    repository = PaymentsRepository(session)
    invoice = await repository.get_invoice_by_load(load_id)
    if invoice is not None:
        invoice = await repository.get_invoice(principal, invoice.id)
    if invoice is None:
        raise InvoiceNotFoundError(f"Load {load_id} has no invoice you can see.")
    return await _invoice_detail(repository, invoice.id, principal)


@api.get("/invoices", response_model=InvoicePageOut, summary="My organization's invoices")
async def list_invoices(
    principal: CurrentPrincipal,
    _query: KnownQuery,
    session: SessionDep,
    status: Annotated[list[InvoiceStatus] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> InvoicePageOut:
    """Newest first. Shippers see their own invoices; platform admins see all."""
    after = decode_cursor(cursor) if cursor else None
    rows = await PaymentsRepository(session).list_invoices(
        principal, statuses=status or [], after=after, limit=limit + 1
    )
    page, next_cursor = _page(rows, limit)
    return InvoicePageOut(items=[InvoiceOut.of(i) for i in page], next_cursor=next_cursor)


@api.get("/invoices/{invoice_id}", response_model=InvoiceOut)
async def get_invoice(
    invoice_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> InvoiceOut:
    """Return one invoice with its charge attempts and payout; another tenant's id is 404."""
    return await _invoice_detail(PaymentsRepository(session), invoice_id, principal)


async def _invoice_detail(
    repository: PaymentsRepository, invoice_id: uuid.UUID, principal: CurrentPrincipal
) -> InvoiceOut:
    invoice = await repository.get_invoice(principal, invoice_id)
    if invoice is None:
        raise InvoiceNotFoundError(f"Invoice {invoice_id} does not exist.")
    attempts = list(await repository.attempts(invoice.id))
    payout = await repository.payout_for_invoice(invoice.id)
    return InvoiceOut.of(invoice, attempts, payout)


@api.post(
    "/invoices/{invoice_id}/charge",
    response_model=ChargeOut,
    summary="Pay an invoice with the saved payment method",
    responses={
        202: {"description": "The provider's answer is not known yet; the attempt is settled "
              "by a webhook or the reconciliation job. Poll GET /invoices/{id}."},
        **DECLINE_RESPONSES,
    },
)  # fmt: skip
async def charge_invoice(
    invoice_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
    body: ChargeIn | None = None,
) -> Response:
    """Charge the invoice once, whatever the retries (``Idempotency-Key`` required).

    200 with the PAID invoice, 402 when declined (dunning retries soft declines),
    202 when the outcome is still unknown.
    """
    provider = runtime.require_provider()
    settings = _settings(request)
    timing: dict[str, float] = {}

    async def operation() -> tuple[int, bytes]:
        result = await service.charge_invoice(
            request.app.state.sessionmaker,
            settings,
            provider,
            invoice_id,
            _actor(principal, request),
            principal=principal,
            trigger=ChargeTrigger.USER,
            expected_amount_cents=body.amount_cents if body else None,
            payment_method_id=body.payment_method_id if body else None,
        )
        timing["provider_ms"] = result.provider_ms
        attempt = result.attempt
        if attempt.status is AttemptStatus.FAILED:
            error = PaymentDeclinedError if attempt.decline_code else PaymentRejectedError
            raise error(
                f"The payment of invoice {result.invoice.number} failed "
                f"({attempt.decline_code or attempt.failure_code}). "
                + (
                    "Use another payment method."
                    if attempt.hard_decline
                    else "It is retried automatically; see nextChargeAt."
                ),
                attemptId=str(attempt.id),
                declineCode=attempt.decline_code,
                failureCode=attempt.failure_code,
                hardDecline=attempt.hard_decline,
                invoiceStatus=result.invoice.status.value,
                nextChargeAt=(
                    result.invoice.next_charge_at.isoformat()
                    if result.invoice.next_charge_at
                    else None
                ),
            )
        status = 200 if attempt.status is AttemptStatus.SUCCEEDED else 202
        return status, _json(
            ChargeOut(invoice=InvoiceOut.of(result.invoice), attempt=AttemptOut.of(attempt))
        )

    def server_timing() -> dict[str, str]:
        if "provider_ms" not in timing:
            return {}
        # The provider's share of the response time, so clients and the
        # benchmark can tell our latency from the provider's.
        return {"Server-Timing": f"provider;dur={timing['provider_ms']:.2f}"}

    return await run_idempotent(
        request, principal, idempotency_key, operation, extra_headers=server_timing
    )


@api.post("/invoices/{invoice_id}/void", response_model=InvoiceOut, responses=DECLINE_RESPONSES)
async def void_invoice(
    invoice_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cancel an unpaid invoice (DRAFT, OPEN or PAYMENT_FAILED); its ledger entries reverse."""

    async def operation() -> tuple[int, bytes]:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            invoice = await service.void_invoice(
                session, principal, invoice_id, _actor(principal, request)
            )
        return 200, _json(InvoiceOut.of(invoice))

    return await run_idempotent(request, principal, idempotency_key, operation)


@api.post("/invoices/{invoice_id}/refund", response_model=InvoiceOut)
async def refund_invoice(
    invoice_id: uuid.UUID,
    request: Request,
    principal: PlatformAdmin,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Refund a PAID invoice in full (platform admins)."""
    provider = runtime.require_provider()

    async def operation() -> tuple[int, bytes]:
        invoice = await service.refund_invoice(
            request.app.state.sessionmaker,
            provider,
            principal,
            invoice_id,
            _actor(principal, request),
        )
        return 200, _json(InvoiceOut.of(invoice))

    return await run_idempotent(request, principal, idempotency_key, operation)


# --- billing profile ----------------------------------------------------------------


@api.put("/billing/profile", response_model=BillingProfileOut)
async def put_billing_profile(
    body: BillingProfileIn, request: Request, principal: CurrentPrincipal, session: SessionDep
) -> BillingProfileOut:
    """Save the shipper's provider customer and default PaymentMethod (ids, never card data)."""
    profile = await service.save_billing_profile(
        session, principal, body.customer_id, body.payment_method_id, _actor(principal, request)
    )
    return BillingProfileOut.of(profile)


@api.get("/billing/profile", response_model=BillingProfileOut)
async def get_billing_profile(
    principal: CurrentPrincipal, session: SessionDep
) -> BillingProfileOut:
    profile = await PaymentsRepository(session).billing_profile(principal.organization_id)
    if profile is None:
        raise InvoiceNotFoundError("Your organization has no billing profile yet.")
    return BillingProfileOut.of(profile)


# --- payouts ------------------------------------------------------------------------


@api.post("/payouts/account", response_model=PayoutAccountOut, summary="Set up payouts")
async def set_up_payout_account(
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create the carrier's connected account (or refresh its onboarding state)."""
    provider = runtime.require_provider()

    async def operation() -> tuple[int, bytes]:
        account = await payouts.set_up_account(
            request.app.state.sessionmaker, provider, principal, _actor(principal, request)
        )
        return 200, _json(PayoutAccountOut.of(account))

    return await run_idempotent(request, principal, idempotency_key, operation)


@api.get("/payouts/account", response_model=PayoutAccountOut)
async def get_payout_account(principal: CurrentPrincipal, session: SessionDep) -> PayoutAccountOut:
    account = await PaymentsRepository(session).payout_account(principal.organization_id)
    if account is None:
        raise PayoutAccountMissingError(
            "Your organization has no payout account. Create it with POST /payouts/account."
        )
    return PayoutAccountOut.of(account)


@api.get("/payouts", response_model=PayoutPageOut, summary="My organization's payouts")
async def list_payouts(
    principal: CurrentPrincipal,
    _query: KnownQuery,
    session: SessionDep,
    status: Annotated[list[PayoutStatus] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> PayoutPageOut:
    after = decode_cursor(cursor) if cursor else None
    rows = await PaymentsRepository(session).list_payouts(
        principal, statuses=status or [], after=after, limit=limit + 1
    )
    page, next_cursor = _page(rows, limit)
    return PayoutPageOut(items=[PayoutOut.of(p) for p in page], next_cursor=next_cursor)


@api.get("/payouts/{payout_id}", response_model=PayoutOut)
async def get_payout(
    payout_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> PayoutOut:
    payout = await PaymentsRepository(session).get_payout(principal, payout_id)
    if payout is None:
        raise PayoutNotFoundError(f"Payout {payout_id} does not exist.")
    return PayoutOut.of(payout)


# --- ledger -------------------------------------------------------------------------


@api.get("/ledger/audit", response_model=LedgerAuditOut, summary="Audit the whole ledger")
async def audit_ledger(principal: PlatformAdmin, session: SessionDep) -> LedgerAuditOut:
    """Check that every transaction balances and every invoice's postings match its status."""
    result = await ledger.audit_ledger(session)
    return LedgerAuditOut(
        ok=result.ok,
        transactions=result.transactions,
        entries=result.entries,
        unbalanced_transactions=[t for t, _ in result.unbalanced],
        empty_transactions=result.empty_transactions,
        mismatched_invoices=result.mismatched_invoices,
        balances_cents=result.balances,
        trial_balance_cents=result.trial_balance,
    )


# --- webhooks -----------------------------------------------------------------------


@webhooks.post("/webhooks/stripe", response_model=WebhookAck, summary="Stripe events")
async def stripe_webhook(request: Request, session: SessionDep) -> WebhookAck:
    """Verify the signature over the raw body, store the event once, and respond at once.

    The event is applied by a job. A redelivered event (same id) is acknowledged
    and not stored again.
    """
    # The raw bytes, before any JSON parsing: the signature covers them exactly.
    payload = await request.body()
    try:
        received = await webhook_events.receive(
            session,
            _settings(request),
            payload,
            request.headers.get(SIGNATURE_HEADER),
            _request_id(request),
        )
    except WebhookSecretNotConfiguredError:
        # The response is 404 so the endpoint does not advertise itself, and
        # operators need this line to see why every event is rejected.
        log.error("payments.webhook_secret_missing")
        raise
    return WebhookAck(event_id=received.event_id, duplicate=received.duplicate)


router.include_router(api)
router.include_router(webhooks)
