"""Idempotency-Key on the payments API: replay, mismatch, in progress, scope, retention."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import insert, select

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.payments.idempotency import request_fingerprint
from superior_one.payments.models import IdempotencyRecord, IdempotencyState, Invoice
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import ApiFault, FaultPlan, PaymentProviderSimulator
from tests.payments.factories import (
    AMOUNT_CENTS,
    Parties,
    charge,
    completed_load,
    create_parties,
    issue_invoice,
    save_billing_profile,
)


async def _open_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> tuple[Parties, Invoice]:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    return parties, invoice


def test_request_fingerprint_ignores_json_spacing_and_key_order() -> None:
    assert request_fingerprint("POST", "/x", b'{"a": 1, "b": 2}') == request_fingerprint(
        "POST", "/x", b'{"b":2,"a":1}'
    )


def test_request_fingerprint_differs_by_path() -> None:
    assert request_fingerprint("POST", "/x", b"{}") != request_fingerprint("POST", "/y", b"{}")


def test_idempotency_retention_below_24_hours_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(payments_idempotency_ttl_h=23)


async def test_charge_without_idempotency_key_is_400(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    response = await client.post(f"/invoices/{invoice.id}/charge", headers=parties.shipper.headers)

    assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_required")


async def test_idempotency_key_with_spaces_is_400(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)

    response = await charge(client, invoice.id, parties.shipper, key="two words")

    assert response.json()["code"] == "idempotency_key_invalid"


async def test_idempotency_key_in_progress_is_409(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="latency", delay_s=3.0)])
    key = str(uuid.uuid4())

    first = asyncio.create_task(charge(client, invoice.id, parties.shipper, key=key))
    # Once the provider sees the first request, its key is claimed and still running.
    while not simulator.request_log:  # noqa: ASYNC110 - polling another thread's state
        await asyncio.sleep(0.02)
    during = await charge(client, invoice.id, parties.shipper, key=key)
    finished = await first
    after = await charge(client, invoice.id, parties.shipper, key=key)

    assert (during.status_code, during.json()["code"], during.headers["retry-after"]) == (
        409,
        "idempotency_key_in_progress",
        "1",
    )
    assert (after.status_code, after.json()) == (finished.status_code, finished.json())


async def test_declined_charge_is_replayed_not_retried(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    simulator.faults = FaultPlan(api=[ApiFault(kind="decline")])
    key = str(uuid.uuid4())
    first = await charge(client, invoice.id, parties.shipper, key=key)

    again = await charge(client, invoice.id, parties.shipper, key=key)

    assert (again.status_code, again.headers.get("idempotent-replayed")) == (402, "true")
    assert again.json() == first.json()
    assert simulator.stats["payment_intents_created"] == 1


async def test_same_key_on_another_invoice_is_422(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    other = await issue_invoice(resources, settings, await completed_load(resources, parties))
    key = str(uuid.uuid4())
    await charge(client, invoice.id, parties.shipper, key=key)

    response = await charge(client, other.id, parties.shipper, key=key)

    assert response.status_code == 422


async def test_idempotency_keys_are_scoped_to_the_caller(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator: PaymentProviderSimulator,
) -> None:
    first_parties, first = await _open_invoice(client, resources, settings)
    second_parties, second = await _open_invoice(client, resources, settings)

    responses = [
        await charge(client, first.id, first_parties.shipper, key="shared-key"),
        await charge(client, second.id, second_parties.shipper, key="shared-key"),
    ]

    assert [r.status_code for r in responses] == [200, 200]
    assert simulator.stats["payment_intents_created"] == 2


async def test_idempotency_record_kept_24_hours(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    await charge(client, invoice.id, parties.shipper, key="kept-key")

    async with resources.sessionmaker() as session:
        record = (
            await session.execute(
                select(IdempotencyRecord).where(IdempotencyRecord.key == "kept-key")
            )
        ).scalar_one()
    assert (record.organization_id, record.user_id, record.state, record.response_status) == (
        parties.shipper.organization.id,
        parties.shipper.user.id,
        IdempotencyState.COMPLETED,
        200,
    )
    assert record.expires_at - record.created_at >= timedelta(hours=24)


async def test_idempotency_dead_request_key_taken_over(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties, invoice = await _open_invoice(client, resources, settings)
    path = f"/invoices/{invoice.id}/charge"
    body = orjson.dumps({"amountCents": AMOUNT_CENTS})
    now = datetime.now(UTC)
    async with unit_of_work(resources.sessionmaker) as session:
        await session.execute(
            insert(IdempotencyRecord).values(
                organization_id=parties.shipper.organization.id,
                key="orphan-key",
                method="POST",
                path=path,
                fingerprint=request_fingerprint("POST", path, body),
                state=IdempotencyState.RUNNING,
                locked_until=now - timedelta(seconds=1),
                expires_at=now + timedelta(hours=48),
            )
        )

    response = await charge(client, invoice.id, parties.shipper, key="orphan-key")

    assert response.status_code == 200, response.text
