"""Helpers for payments tests: parties, completed loads, invoices, a worker run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.jobs.worker import run_worker
from superior_one.loads.models import Load, LoadStatus
from superior_one.payments.audit import AuditActor
from superior_one.payments.models import Invoice, PaymentAttempt
from superior_one.payments.service import create_invoice_for_load
from superior_one.resources import Resources
from tests.loads.factories import Party, create_party, insert_load

AMOUNT_CENTS = 123456


@dataclass
class Parties:
    shipper: Party
    carrier: Party


async def create_parties(resources: Resources, settings: Settings) -> Parties:
    shipper = await create_party(
        resources.sessionmaker, settings, OrganizationType.SHIPPER, Role.ORG_ADMIN
    )
    carrier = await create_party(
        resources.sessionmaker, settings, OrganizationType.CARRIER, Role.ORG_ADMIN
    )
    return Parties(shipper, carrier)


async def completed_load(
    resources: Resources,
    parties: Parties,
    *,
    rate_cents: int = AMOUNT_CENTS,
    status: LoadStatus = LoadStatus.COMPLETED,
) -> Load:
    return await insert_load(
        resources.sessionmaker,
        parties.shipper.organization,
        status=status,
        carrier=parties.carrier.organization,
        rate_cents=rate_cents,
    )


async def issue_invoice(resources: Resources, settings: Settings, load: Load) -> Invoice:
    async with unit_of_work(resources.sessionmaker) as session:
        result = await create_invoice_for_load(
            session, settings, load.id, AuditActor.system("test")
        )
    return result.invoice


async def save_billing_profile(
    client: httpx.AsyncClient, shipper: Party, payment_method: str = "pm_card_visa"
) -> None:
    response = await client.put(
        "/billing/profile",
        json={"customerId": "cus_test_A", "paymentMethodId": payment_method},
        headers=shipper.headers,
    )
    assert response.status_code == 200, response.text


async def set_up_payout_account(client: httpx.AsyncClient, carrier: Party) -> dict[str, Any]:
    response = await client.post(
        "/payouts/account", headers={**carrier.headers, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def charge(
    client: httpx.AsyncClient,
    invoice_id: uuid.UUID | str,
    shipper: Party,
    *,
    key: str | None = None,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/invoices/{invoice_id}/charge",
        json=body if body is not None else {"amountCents": AMOUNT_CENTS},
        headers={**shipper.headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


READY_JOBS = (
    "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
    "AND (scheduled_at IS NULL OR scheduled_at <= now())"
)


async def drain_jobs(settings: Settings, *, rounds: int = 10) -> None:
    """Run a worker in this process until no job is ready, then stop it.

    A worker run with ``wait=False`` may stop while a job it ran deferred another,
    so it runs again until no job in the queue is ready.
    """
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    for _ in range(rounds):
        await run_worker(settings, wait=False, install_signal_handlers=False, concurrency=4)
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            row = await (await conn.execute(READY_JOBS)).fetchone()
        if row is not None and row[0] == 0:
            return
    raise AssertionError(f"jobs still ready after {rounds} worker runs")


async def count(
    sessionmaker: async_sessionmaker[AsyncSession], model: type[Any], *conditions: Any
) -> int:
    async with sessionmaker() as session:
        query = select(func.count()).select_from(model)
        for condition in conditions:
            query = query.where(condition)
        return int((await session.execute(query)).scalar_one())


async def attempts_of(
    sessionmaker: async_sessionmaker[AsyncSession], invoice_id: uuid.UUID
) -> list[PaymentAttempt]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(PaymentAttempt)
            .where(PaymentAttempt.invoice_id == invoice_id)
            .order_by(PaymentAttempt.attempt_number)
        )
        return list(rows.scalars())


async def reload_invoice(
    sessionmaker: async_sessionmaker[AsyncSession], invoice_id: uuid.UUID
) -> Invoice:
    async with sessionmaker() as session:
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        return invoice
