"""POST /webhooks/stripe: signature over the raw body, the inbox, duplicates and order."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import func, select

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.payments import webhook_events
from superior_one.payments.ledger import audit_ledger
from superior_one.payments.models import (
    EventStatus,
    InvoiceStatus,
    PaymentAuditEntry,
    ProviderEvent,
    SettledBy,
)
from superior_one.payments.webhooks import SIGNATURE_HEADER, build_signature_header
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import (
    DEFAULT_WEBHOOK_SECRET,
    ApiFault,
    FaultPlan,
    PaymentProviderSimulator,
    WebhookFaults,
)
from superior_one.simulators.server import ServerThread
from tests.payments.conftest import STRIPE_TIMEOUT_S
from tests.payments.factories import (
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

WAIT_LIMIT_S = 20.0


def _event(event_id: str, event_type: str, data_object: dict[str, Any], created: object) -> bytes:
    # Pretty-printed like Stripe's deliveries: the signature covers these exact bytes.
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "data": {"object": data_object},
    }
    return json.dumps(body, indent=2).encode()


def _signed(payload: bytes, secret: str = DEFAULT_WEBHOOK_SECRET) -> dict[str, str]:
    header = build_signature_header(payload, [secret], int(time.time()))
    return {SIGNATURE_HEADER: header, "Content-Type": "application/json"}


async def _post(client: httpx.AsyncClient, payload: bytes) -> httpx.Response:
    return await client.post("/webhooks/stripe", content=payload, headers=_signed(payload))


async def _process_all(resources: Resources, settings: Settings) -> None:
    async with resources.sessionmaker() as session:
        ids = (await session.execute(select(ProviderEvent.id).order_by(ProviderEvent.id))).scalars()
        pending = list(ids)
    for row_id in pending:
        async with unit_of_work(resources.sessionmaker) as session:
            await webhook_events.process(session, settings, row_id)


def _intent_event(simulator: PaymentProviderSimulator, event_type: str) -> dict[str, Any]:
    (event,) = [e for e in simulator.events if e["type"] == event_type]
    return event


# --- the endpoint -------------------------------------------------------------------


async def test_webhook_valid_signature_is_stored_and_queued(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    payload = _event("evt_1", "payment_intent.created", {"id": "pi_1"}, int(time.time()))

    response = await _post(client, payload)

    assert (response.status_code, response.json()) == (
        200,
        {"received": True, "eventId": "evt_1", "duplicate": False},
    )
    assert await count(resources.sessionmaker, ProviderEvent) == 1


async def test_webhook_reserialized_body_is_rejected(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    payload = _event("evt_1", "payment_intent.created", {"id": "pi_1"}, int(time.time()))
    reserialized = json.dumps(json.loads(payload)).encode()

    response = await client.post("/webhooks/stripe", content=reserialized, headers=_signed(payload))

    assert (response.status_code, response.json()["code"]) == (400, "invalid_webhook_signature")
    assert await count(resources.sessionmaker, ProviderEvent) == 0


async def test_webhook_duplicate_event_is_stored_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    payload = _event("evt_dup", "payment_intent.created", {"id": "pi_1"}, int(time.time()))
    await _post(client, payload)

    again = await _post(client, payload)

    assert again.json()["duplicate"] is True
    assert await count(resources.sessionmaker, ProviderEvent) == 1


async def test_webhook_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await _post(client, b"not json")

    assert response.json()["code"] == "invalid_webhook_payload"


@pytest.mark.parametrize(
    "created",
    [1e30, 99_999_999_999_999, -1, True, 1.5, "2024-07-01"],
    ids=["1e30", "year-3-million", "negative", "bool", "float", "string"],
)
async def test_webhook_absurd_created_is_400(client: httpx.AsyncClient, created: object) -> None:
    payload = _event("evt_1", "payment_intent.created", {"id": "pi_1"}, created)

    response = await _post(client, payload)

    assert response.status_code == 400
    assert response.json()["field"] == "created"


async def test_webhook_drops_card_details_before_storing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    charge_object = {
        "id": "ch_1",
        "payment_method_details": {"card": {"last4": "4242", "brand": "visa"}},
        "billing_details": {"name": "A Shipper"},
    }
    await _post(client, _event("evt_card", "charge.succeeded", charge_object, int(time.time())))

    async with resources.sessionmaker() as session:
        stored = (await session.execute(select(ProviderEvent.payload))).scalar_one()
    assert stored["data"]["object"] == {"id": "ch_1"}


async def test_webhook_with_empty_secret_rejects_everything(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"stripe_webhook_secret": SecretStr("")})
    payload = _event("evt_1", "payment_intent.created", {"id": "pi_1"}, int(time.time()))

    # Signed with the secret a misconfigured deployment would have expected.
    response = await _post(client, payload)

    assert response.status_code == 404


# --- processing ---------------------------------------------------------------------


async def test_webhook_settles_attempt_whose_response_was_lost(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    simulator.faults = FaultPlan(api=[ApiFault(kind="timeout", delay_s=STRIPE_TIMEOUT_S + 1.0)])
    await charge(client, invoice.id, parties.shipper)
    event = _intent_event(simulator, "payment_intent.succeeded")

    await _post(
        client, _event(event["id"], event["type"], event["data"]["object"], event["created"])
    )
    await _process_all(resources, settings)

    attempt = (await attempts_of(resources.sessionmaker, invoice.id))[0]
    assert (attempt.settled_by, attempt.provider_confirmed_at is not None) == (
        SettledBy.WEBHOOK,
        True,
    )
    assert (await reload_invoice(resources.sessionmaker, invoice.id)).status is InvoiceStatus.PAID


async def test_late_failure_event_never_moves_paid_invoice_backwards(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, invoice.id, parties.shipper)
    succeeded = _intent_event(simulator, "payment_intent.succeeded")
    failed_object = {
        **succeeded["data"]["object"],
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline"},
    }

    # The success arrives first, then an older failure of the same payment intent.
    await _post(client, _event(succeeded["id"], succeeded["type"], succeeded["data"]["object"], 2))
    await _post(
        client, _event("evt_old_failure", "payment_intent.payment_failed", failed_object, 1)
    )
    await _process_all(resources, settings)

    assert (await reload_invoice(resources.sessionmaker, invoice.id)).status is InvoiceStatus.PAID
    async with resources.sessionmaker() as session:
        late = (
            await session.execute(
                select(ProviderEvent.status, ProviderEvent.outcome).where(
                    ProviderEvent.event_id == "evt_old_failure"
                )
            )
        ).one()
    assert tuple(late) == (EventStatus.IGNORED, "attempt already SUCCEEDED")


async def test_event_processed_twice_applies_once(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, invoice.id, parties.shipper)
    event = _intent_event(simulator, "payment_intent.succeeded")
    await _post(client, _event(event["id"], event["type"], event["data"]["object"], 1))

    # A job run again (retry, worker killed before its acknowledgement).
    await _process_all(resources, settings)
    await _process_all(resources, settings)

    assert (
        await count(
            resources.sessionmaker,
            PaymentAuditEntry,
            PaymentAuditEntry.action == "charge.confirmed_by_provider",
        )
        == 1
    )


# --- end to end: the simulator delivers to a live server ----------------------------


@pytest.fixture
def live_app(settings: Settings, simulator: PaymentProviderSimulator) -> Iterator[ServerThread]:
    with ServerThread(create_app(settings)) as server:
        simulator.config.webhook_url = f"{server.base_url}/webhooks/stripe"
        yield server


async def _deliveries_settled(base_url: str, copies: int) -> None:
    """Wait until the simulator has delivered ``copies`` of every event it created."""
    async with httpx.AsyncClient(base_url=base_url) as admin, asyncio.timeout(WAIT_LIMIT_S):
        await admin.post("/__sim/webhooks/flush")
        while True:
            stats = (await admin.get("/__sim/stats")).json()
            done = stats.get("webhooks_delivered", 0) + stats.get("webhooks_failed", 0)
            if not stats["webhooks_pending"] and done >= copies * stats["events_created"]:
                return
            await asyncio.sleep(0.1)


async def test_duplicated_and_reordered_deliveries_are_processed_once(
    live_app: ServerThread,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    simulator.faults = FaultPlan(webhooks=WebhookFaults(duplicates=1, reorder_window=6))
    async with httpx.AsyncClient(base_url=live_app.base_url, timeout=30) as http:
        parties = await create_parties(resources, settings)
        await save_billing_profile(http, parties.shipper)
        invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
        response = await charge(http, invoice.id, parties.shipper)
    await _deliveries_settled(payment_simulator[1].base_url, copies=2)
    await drain_jobs(settings)

    assert response.status_code == 200, response.text
    assert simulator.stats["webhooks_delivered"] == 2 * simulator.stats["events_created"]
    async with resources.sessionmaker() as session:
        stored = (await session.execute(select(func.count(ProviderEvent.id)))).scalar_one()
        unprocessed = (
            await session.execute(
                select(func.count()).where(ProviderEvent.status == EventStatus.RECEIVED)
            )
        ).scalar_one()
        audit = await audit_ledger(session)
    assert (stored, unprocessed) == (simulator.stats["events_created"], 0)
    assert audit.ok
    attempt = (await attempts_of(resources.sessionmaker, invoice.id))[0]
    assert attempt.provider_confirmed_at is not None
