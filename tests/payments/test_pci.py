"""PCI: payment method ids only; no card data, payment details or secrets in logs."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from sqlalchemy import select

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.payments import webhook_events
from superior_one.payments.models import IdempotencyRecord, ProviderEvent
from superior_one.payments.webhooks import SIGNATURE_HEADER, build_signature_header
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import (
    DEFAULT_API_KEY,
    DEFAULT_WEBHOOK_SECRET,
    PaymentProviderSimulator,
)
from tests.payments.factories import (
    charge,
    completed_load,
    count,
    create_parties,
    issue_invoice,
    save_billing_profile,
)

CARD_NUMBER = "4242424242424242"


async def test_payment_logs_hold_no_secrets(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, invoice.id, parties.shipper)
    (event,) = [e for e in simulator.events if e["type"] == "payment_intent.succeeded"]
    payload = json.dumps(event, indent=2).encode()
    header = build_signature_header(payload, [DEFAULT_WEBHOOK_SECRET], int(time.time()))
    await client.post("/webhooks/stripe", content=payload, headers={SIGNATURE_HEADER: header})
    async with unit_of_work(resources.sessionmaker) as session:
        row_id = (await session.execute(select(ProviderEvent.id))).scalar_one()
        await webhook_events.process(session, settings, row_id)

    logged = caplog.text
    leaks = [
        s
        for s in ("pm_card_visa", "client_secret", DEFAULT_API_KEY, DEFAULT_WEBHOOK_SECRET)
        if s in logged
    ]
    assert leaks == []


async def test_charge_card_number_rejected(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))

    response = await charge(client, invoice.id, parties.shipper, body={"cardNumber": CARD_NUMBER})

    assert response.status_code == 422
    assert CARD_NUMBER not in response.text
    assert await count(resources.sessionmaker, IdempotencyRecord) == 0


async def test_billing_profile_accepts_only_payment_method_ids(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)

    response = await client.put(
        "/billing/profile",
        json={"customerId": "cus_test_A", "paymentMethodId": CARD_NUMBER},
        headers=parties.shipper.headers,
    )

    assert response.status_code == 422
    assert CARD_NUMBER not in response.text
