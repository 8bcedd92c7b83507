"""Carrier payouts: Connect transfers after payment and delivery, onboarding, IDOR."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from superior_one.config import Settings
from superior_one.payments.models import (
    Audience,
    Invoice,
    NotificationKind,
    PaymentNotification,
    Payout,
    PayoutAccount,
    PayoutStatus,
)
from superior_one.payments.webhooks import SIGNATURE_HEADER, build_signature_header
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import (
    DEFAULT_WEBHOOK_SECRET,
    PaymentProviderSimulator,
)
from superior_one.simulators.server import ServerThread
from tests.payments.factories import (
    Parties,
    charge,
    completed_load,
    create_parties,
    drain_jobs,
    issue_invoice,
    save_billing_profile,
    set_up_payout_account,
)


async def _paid_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> tuple[Parties, Invoice]:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    response = await charge(client, invoice.id, parties.shipper)
    assert response.status_code == 200, response.text
    return parties, invoice


async def _payout(resources: Resources, invoice_id: uuid.UUID) -> Payout:
    async with resources.sessionmaker() as session:
        return (
            await session.execute(select(Payout).where(Payout.invoice_id == invoice_id))
        ).scalar_one()


async def _activate(base_url: str, account_id: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as admin:
        response = await admin.post(f"/__sim/accounts/{account_id}/activate")
    assert response.status_code == 200


async def _active_account(client: httpx.AsyncClient, parties: Parties, simulator_url: str) -> str:
    account = await set_up_payout_account(client, parties.carrier)
    await _activate(simulator_url, account["accountId"])
    # Refreshing reads the account's new state from the provider.
    refreshed = await set_up_payout_account(client, parties.carrier)
    assert refreshed["canReceiveTransfers"] is True
    return str(account["accountId"])


async def test_payout_transfers_gross_less_fee_to_carrier(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    parties = await create_parties(resources, settings)
    account_id = await _active_account(client, parties, payment_simulator[1].base_url)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, invoice.id, parties.shipper)

    await drain_jobs(settings)

    (transfer,) = simulator.transfers.values()
    (intent,) = simulator.payment_intents.values()
    assert (
        transfer["amount"],
        transfer["destination"],
        transfer["transfer_group"],
        transfer["source_transaction"],
    ) == (
        invoice.carrier_payout_cents,
        account_id,
        f"load_{invoice.load_id}",
        intent["latest_charge"],
    )
    assert (await _payout(resources, invoice.id)).status is PayoutStatus.PAID


async def test_payout_transfer_key_derived_from_payout(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    parties = await create_parties(resources, settings)
    await _active_account(client, parties, payment_simulator[1].base_url)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, invoice.id, parties.shipper)

    await drain_jobs(settings)

    payout = await _payout(resources, invoice.id)
    keys = [r["idempotency_key"] for r in simulator.request_log if r["path"] == "/v1/transfers"]
    assert keys == [f"payout:{payout.id}:transfer"]


async def test_payout_waits_for_carrier_account_and_notifies_carrier(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _paid_invoice(client, resources, settings)

    await drain_jobs(settings)

    assert (await _payout(resources, invoice.id)).status is PayoutStatus.WAITING_FOR_ACCOUNT
    async with resources.sessionmaker() as session:
        notice = (
            await session.execute(
                select(PaymentNotification.audience, PaymentNotification.organization_id).where(
                    PaymentNotification.kind == NotificationKind.PAYOUT_ACCOUNT_REQUIRED
                )
            )
        ).one()
    assert tuple(notice) == (Audience.CARRIER, parties.carrier.organization.id)


async def test_account_updated_webhook_releases_waiting_payout(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    parties, invoice = await _paid_invoice(client, resources, settings)
    await drain_jobs(settings)
    account = await set_up_payout_account(client, parties.carrier)
    await _activate(payment_simulator[1].base_url, account["accountId"])
    (event,) = [e for e in simulator.events if e["type"] == "account.updated"]
    payload = json.dumps(event, indent=2).encode()
    header = build_signature_header(payload, [DEFAULT_WEBHOOK_SECRET], int(time.time()))

    await client.post("/webhooks/stripe", content=payload, headers={SIGNATURE_HEADER: header})
    await drain_jobs(settings)

    assert (await _payout(resources, invoice.id)).status is PayoutStatus.PAID


async def test_older_account_event_does_not_overwrite_newer_state(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    parties = await create_parties(resources, settings)
    account_id = await _active_account(client, parties, payment_simulator[1].base_url)
    stale = {**simulator.accounts[account_id], "payouts_enabled": False}
    body = {
        "id": "evt_stale_account",
        "object": "event",
        "type": "account.updated",
        "created": int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()),
        "data": {"object": stale},
    }
    payload = json.dumps(body).encode()
    header = build_signature_header(payload, [DEFAULT_WEBHOOK_SECRET], int(time.time()))

    await client.post("/webhooks/stripe", content=payload, headers={SIGNATURE_HEADER: header})
    await drain_jobs(settings)

    async with resources.sessionmaker() as session:
        stored = await session.get(PayoutAccount, parties.carrier.organization.id)
    assert stored is not None and stored.payouts_enabled is True


async def test_payout_account_set_up_twice_keeps_one_account(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties = await create_parties(resources, settings)

    first = await set_up_payout_account(client, parties.carrier)
    second = await set_up_payout_account(client, parties.carrier)

    assert first["accountId"] == second["accountId"]
    assert simulator.stats["accounts_created"] == 1


async def test_shipper_cannot_set_up_payout_account(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)

    response = await client.post(
        "/payouts/account", headers={**parties.shipper.headers, "Idempotency-Key": "k-1"}
    )

    assert response.status_code == 403


async def test_another_carriers_payout_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, invoice = await _paid_invoice(client, resources, settings)
    other = await create_parties(resources, settings)
    await drain_jobs(settings)
    payout = await _payout(resources, invoice.id)

    response = await client.get(f"/payouts/{payout.id}", headers=other.carrier.headers)

    assert response.status_code == 404


async def test_invoice_probe_by_other_tenant_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _paid_invoice(client, resources, settings)
    other = await create_parties(resources, settings)

    statuses = [
        (await client.get(f"/invoices/{invoice.id}", headers=other.shipper.headers)).status_code,
        (await client.get(f"/invoices/{invoice.id}", headers=parties.carrier.headers)).status_code,
        (await charge(client, invoice.id, other.shipper)).status_code,
        (
            await client.post(
                f"/invoices/{invoice.id}/void",
                headers={**other.shipper.headers, "Idempotency-Key": "probe"},
            )
        ).status_code,
    ]

    assert statuses == [404, 404, 404, 404]
