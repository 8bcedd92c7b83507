"""Charges through the simulator: one charge per invoice, whatever the retries."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.jobs import defer
from superior_one.payments.audit import AuditActor
from superior_one.payments.models import (
    AttemptStatus,
    ChargeTrigger,
    Invoice,
    InvoiceStatus,
    PaymentAttempt,
    PaymentNotification,
    SettledBy,
)
from superior_one.payments.runtime import open_provider
from superior_one.payments.service import call_create_intent, start_charge
from superior_one.payments.tasks import schedule
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import ApiFault, FaultPlan, PaymentProviderSimulator
from tests.payments.conftest import STRIPE_TIMEOUT_S
from tests.payments.factories import (
    AMOUNT_CENTS,
    Parties,
    attempts_of,
    charge,
    completed_load,
    count,
    create_parties,
    drain_jobs,
    issue_invoice,
    reload_invoice,
    save_billing_profile,
)

SAME_KEY = "7b0c6a52-2f7e-4c55-9a0e-1d2f3a4b5c6d"


async def _open_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> tuple[Parties, Invoice]:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    return parties, invoice


def _intent_creates(simulator: PaymentProviderSimulator) -> list[str | None]:
    return [
        r["idempotency_key"] for r in simulator.request_log if r["path"] == "/v1/payment_intents"
    ]


async def test_charge_pays_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    response = await charge(client, invoice.id, parties.shipper)

    assert response.status_code == 200, response.text
    assert (response.json()["invoice"]["status"], response.json()["attempt"]["status"]) == (
        "PAID",
        "SUCCEEDED",
    )


async def test_charge_sends_key_derived_from_invoice_and_attempt(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    await charge(client, invoice.id, parties.shipper)

    assert _intent_creates(simulator) == [f"inv:{invoice.id}:charge:1"]


async def test_charge_reports_provider_time_in_server_timing(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    response = await charge(client, invoice.id, parties.shipper)

    assert response.headers["server-timing"].startswith("provider;dur=")


async def test_charge_holds_no_connection_during_provider_call(
    app: FastAPI,
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="latency", delay_s=1.0)])

    request = asyncio.create_task(charge(client, invoice.id, parties.shipper))
    while not simulator.request_log:  # noqa: ASYNC110 - polling another thread's state
        await asyncio.sleep(0.02)
    during_call = app.state.engine.pool.checkedout()
    await request

    assert during_call == 0


async def test_charge_concurrent_same_key_charges_once(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    first = await asyncio.gather(
        *(charge(client, invoice.id, parties.shipper, key=SAME_KEY) for _ in range(50))
    )
    # Callers that got 409 (still running) retry with the same key.
    retried = [await charge(client, invoice.id, parties.shipper, key=SAME_KEY) for _ in range(2)]

    assert simulator.stats["payment_intents_created"] == 1
    assert {r.status_code for r in first} <= {200, 409}
    intents = {r.json()["attempt"]["paymentIntentId"] for r in [*first, *retried] if r.is_success}
    assert len(intents) == 1
    assert await count(resources.sessionmaker, PaymentAttempt) == 1


async def test_charge_retry_replays_stored_response(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    first = await charge(client, invoice.id, parties.shipper, key=SAME_KEY)

    again = await charge(client, invoice.id, parties.shipper, key=SAME_KEY)

    assert (again.status_code, again.headers.get("idempotent-replayed"), again.json()) == (
        200,
        "true",
        first.json(),
    )


async def test_charge_concurrent_new_keys_charges_once(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    responses = await asyncio.gather(
        *(charge(client, invoice.id, parties.shipper) for _ in range(50))
    )

    assert simulator.stats["payment_intents_created"] == 1
    assert sorted(r.status_code for r in responses) == [200] + [409] * 49


async def test_charge_key_reused_with_other_amount_is_422(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    await charge(client, invoice.id, parties.shipper, key=SAME_KEY)
    calls_before = simulator.stats["requests"]

    response = await charge(
        client, invoice.id, parties.shipper, key=SAME_KEY, body={"amount_cents": 123457}
    )

    assert (response.status_code, response.json()["code"]) == (422, "idempotency_key_reused")
    assert simulator.stats["requests"] == calls_before


async def test_charge_amount_mismatch_is_422_without_provider_call(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    response = await charge(client, invoice.id, parties.shipper, body={"amountCents": 1})

    assert (response.status_code, response.json()["code"]) == (422, "amount_mismatch")
    assert simulator.stats["requests"] == 0


async def test_charge_without_payment_method_is_422(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))

    response = await charge(client, invoice.id, parties.shipper)

    assert (response.status_code, response.json()["code"]) == (422, "payment_method_required")


async def test_charge_lost_response_reconciled_same_key(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="timeout", delay_s=STRIPE_TIMEOUT_S + 1.5)])

    response = await charge(client, invoice.id, parties.shipper)
    await asyncio.sleep(settings.payments_reconcile_after_s)
    await drain_jobs(settings)

    assert (response.status_code, response.json()["invoice"]["status"]) == (202, "PROCESSING")
    attempt = (await attempts_of(resources.sessionmaker, invoice.id))[0]
    assert (attempt.status, attempt.settled_by) == (
        AttemptStatus.SUCCEEDED,
        SettledBy.RECONCILIATION,
    )
    assert _intent_creates(simulator) == [f"inv:{invoice.id}:charge:1"] * 2
    assert simulator.stats["payment_intents_created"] == 1


async def test_charge_crash_before_write_reconciled_once(
    resources: Resources,
    client: httpx.AsyncClient,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    _, invoice = await _open_invoice(client, resources, settings)
    # The request's first two steps, then the process "dies": the outcome is never written.
    plan = await start_charge(
        resources.sessionmaker,
        settings,
        invoice.id,
        AuditActor.system("test"),
        principal=None,
        trigger=ChargeTrigger.USER,
    )
    async with open_provider(settings) as provider:
        await call_create_intent(provider, plan.request, plan.idempotency_key)

    await asyncio.sleep(settings.payments_reconcile_after_s)
    await drain_jobs(settings)

    assert (await reload_invoice(resources.sessionmaker, invoice.id)).status is InvoiceStatus.PAID
    assert simulator.stats["payment_intents_created"] == 1
    assert simulator.stats["idempotent_replays"] == 1


async def test_soft_decline_answers_402_and_schedules_dunning(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline", decline_code="insufficient_funds")])

    response = await charge(client, invoice.id, parties.shipper)

    body = response.json()
    assert (response.status_code, body["code"], body["hardDecline"]) == (
        402,
        "payment_declined",
        False,
    )
    stored = await reload_invoice(resources.sessionmaker, invoice.id)
    assert stored.status is InvoiceStatus.PAYMENT_FAILED
    assert stored.next_charge_at is not None


async def test_decline_notifies_shipper_and_operations(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline")])

    await charge(client, invoice.id, parties.shipper)

    async with resources.sessionmaker() as session:
        audiences = (
            await session.execute(
                select(PaymentNotification.audience).where(
                    PaymentNotification.invoice_id == invoice.id
                )
            )
        ).scalars()
        assert sorted(a.value for a in audiences) == ["OPERATIONS", "SHIPPER"]


async def test_hard_decline_is_not_retried(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper, "pm_card_chargeDeclinedStolenCard")
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))

    response = await charge(client, invoice.id, parties.shipper)

    stored = await reload_invoice(resources.sessionmaker, invoice.id)
    assert (response.status_code, stored.hard_declined, stored.next_charge_at) == (402, True, None)


async def test_dunning_retries_soft_decline_with_next_attempt_key(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline", decline_code="insufficient_funds")])
    await charge(client, invoice.id, parties.shipper)
    async with unit_of_work(resources.sessionmaker) as session:
        # The retry is due now rather than in 24 h.
        await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice.id)
            .values(next_charge_at=Invoice.created_at)
        )
        await defer(session, schedule, timestamp=0)

    await drain_jobs(settings)

    attempts = await attempts_of(resources.sessionmaker, invoice.id)
    assert [(a.attempt_number, a.trigger, a.status) for a in attempts] == [
        (1, ChargeTrigger.USER, AttemptStatus.FAILED),
        (2, ChargeTrigger.DUNNING, AttemptStatus.SUCCEEDED),
    ]
    assert _intent_creates(simulator) == [
        f"inv:{invoice.id}:charge:1",
        f"inv:{invoice.id}:charge:2",
    ]


async def test_schedule_skips_hard_declined_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper, "pm_card_chargeDeclinedLostCard")
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, invoice.id, parties.shipper)
    async with unit_of_work(resources.sessionmaker) as session:
        await defer(session, schedule, timestamp=0)

    await drain_jobs(settings)

    assert len(await attempts_of(resources.sessionmaker, invoice.id)) == 1


async def test_paid_invoice_cannot_be_charged_again(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    await charge(client, invoice.id, parties.shipper)

    response = await charge(client, invoice.id, parties.shipper)

    assert (response.status_code, response.json()["invoiceStatus"]) == (409, "PAID")


async def test_charge_amount_matches_invoice_at_provider(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    await charge(client, invoice.id, parties.shipper)

    (intent,) = simulator.payment_intents.values()
    assert (intent["amount"], intent["transfer_group"]) == (
        AMOUNT_CENTS,
        f"load_{invoice.load_id}",
    )
