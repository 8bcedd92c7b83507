"""Invoices: created once per load (job on completion, or the endpoint), numbers, states."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.models import LoadStatus
from superior_one.payments.audit import AuditActor
from superior_one.payments.errors import InvalidInvoiceTransitionError
from superior_one.payments.lifecycle import ALLOWED_TRANSITIONS, transition_invoice
from superior_one.payments.models import Invoice, InvoiceStatus
from superior_one.resources import Resources
from tests.payments.factories import (
    completed_load,
    count,
    create_parties,
    drain_jobs,
    issue_invoice,
)

NUMBER = re.compile(r"^INV-\d{4}-\d{6,}$")


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_complete_load_defers_invoice_job_in_same_transaction(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    load = await completed_load(resources, parties, status=LoadStatus.DELIVERED)

    response = await client.post(f"/loads/{load.id}/complete", headers=parties.shipper.headers)

    assert response.status_code == 200, response.text
    async with resources.sessionmaker() as session:
        jobs = (
            await session.execute(
                text(
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE task_name = 'payments.create_invoice' AND args->>'load_id' = :id"
                ),
                {"id": str(load.id)},
            )
        ).scalar_one()
    assert jobs == 1


async def test_invoice_job_issues_invoice_with_net_terms(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    load = await completed_load(resources, parties, status=LoadStatus.DELIVERED)
    await client.post(f"/loads/{load.id}/complete", headers=parties.shipper.headers)

    await drain_jobs(settings)

    async with resources.sessionmaker() as session:
        invoice = (
            await session.execute(select(Invoice).where(Invoice.load_id == load.id))
        ).scalar_one()
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.due_at is not None and invoice.issued_at is not None
    assert invoice.due_at - invoice.issued_at == timedelta(days=settings.payments_net_terms_days)


async def test_invoice_split_follows_c10_rounding(resources: Resources, settings: Settings) -> None:
    parties = await create_parties(resources, settings)
    # 1233.50 at 3 %: the exact fee 3700.5 cents rounds half-up to 3701.
    load = await completed_load(resources, parties, rate_cents=123350)

    invoice = await issue_invoice(resources, settings, load)

    assert (invoice.amount_cents, invoice.platform_fee_cents, invoice.carrier_payout_cents) == (
        123350,
        3701,
        119649,
    )


async def test_invoice_numbers_unique_and_readable(
    resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    numbers = []
    for _ in range(3):
        load = await completed_load(resources, parties)
        numbers.append((await issue_invoice(resources, settings, load)).number)

    assert len(set(numbers)) == 3
    assert all(NUMBER.match(n) for n in numbers), numbers


async def test_invoice_endpoint_concurrent_requests_make_one_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    load = await completed_load(resources, parties)

    responses = await asyncio.gather(
        *(
            client.post(f"/loads/{load.id}/invoice", headers={**parties.shipper.headers, **_key()})
            for _ in range(20)
        )
    )

    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(resources.sessionmaker, Invoice, Invoice.load_id == load.id) == 1


async def test_invoice_endpoint_rejects_load_not_completed(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    load = await completed_load(resources, parties, status=LoadStatus.DELIVERED)

    response = await client.post(
        f"/loads/{load.id}/invoice", headers={**parties.shipper.headers, **_key()}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "load_not_invoiceable"


async def test_invoice_endpoint_for_another_shippers_load_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    other = await create_parties(resources, settings)
    load = await completed_load(resources, parties)

    response = await client.post(
        f"/loads/{load.id}/invoice", headers={**other.shipper.headers, **_key()}
    )

    assert response.status_code == 404


def test_invoice_transitions_final_statuses_have_no_exit() -> None:
    assert ALLOWED_TRANSITIONS[InvoiceStatus.VOID] == frozenset()
    assert ALLOWED_TRANSITIONS[InvoiceStatus.REFUNDED] == frozenset()


def test_invoice_transitions_paid_only_to_refunded() -> None:
    assert ALLOWED_TRANSITIONS[InvoiceStatus.PAID] == {InvoiceStatus.REFUNDED}


async def test_transition_invoice_refuses_unlisted_change(
    resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))

    with pytest.raises(InvalidInvoiceTransitionError):
        async with unit_of_work(resources.sessionmaker) as session:
            await transition_invoice(
                session, invoice.id, InvoiceStatus.PAID, AuditActor.system("test")
            )


async def test_void_open_invoice_reverses_issue(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))

    response = await client.post(
        f"/invoices/{invoice.id}/void", headers={**parties.shipper.headers, **_key()}
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "VOID"


async def test_list_invoices_shows_only_own(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    other = await create_parties(resources, settings)
    mine = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await issue_invoice(resources, settings, await completed_load(resources, other))

    response = await client.get("/invoices", headers=parties.shipper.headers)

    assert [i["id"] for i in response.json()["items"]] == [str(mine.id)]
