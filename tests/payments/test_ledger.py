"""The double-entry ledger: balanced, append-only, written with each change, audited."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import typer
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings, get_settings
from superior_one.db import unit_of_work
from superior_one.payments import ledger
from superior_one.payments.cli import audit_ledger_command
from superior_one.payments.ledger import Posting, UnbalancedPostingError, audit_ledger
from superior_one.payments.models import (
    Invoice,
    LedgerAccount,
    LedgerEntry,
    LedgerKind,
    LedgerTransaction,
    PaymentAuditEntry,
)
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import PaymentProviderSimulator
from superior_one.simulators.server import ServerThread
from tests.factories import auth_headers, create_organization, create_user
from tests.payments.factories import (
    charge,
    completed_load,
    count,
    create_parties,
    drain_jobs,
    issue_invoice,
    save_billing_profile,
    set_up_payout_account,
)


async def _full_cycle(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    simulator_url: str,
) -> None:
    """One invoice paid and paid out, one voided, one refunded."""
    parties = await create_parties(resources, settings)
    account = await set_up_payout_account(client, parties.carrier)
    async with httpx.AsyncClient(base_url=simulator_url) as admin:
        await admin.post(f"/__sim/accounts/{account['accountId']}/activate")
    await set_up_payout_account(client, parties.carrier)
    await save_billing_profile(client, parties.shipper)

    paid = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await charge(client, paid.id, parties.shipper)
    voided = await issue_invoice(resources, settings, await completed_load(resources, parties))
    await client.post(
        f"/invoices/{voided.id}/void", headers={**parties.shipper.headers, "Idempotency-Key": "v"}
    )
    refunded = await issue_invoice(
        resources, settings, await completed_load(resources, parties, rate_cents=5_001)
    )
    await charge(client, refunded.id, parties.shipper, body={})
    admin_org = await create_organization(resources.sessionmaker, OrganizationType.PLATFORM)
    admin_user = await create_user(resources.sessionmaker, settings, admin_org, Role.PLATFORM_ADMIN)
    response = await client.post(
        f"/invoices/{refunded.id}/refund",
        headers={**auth_headers(settings, admin_user), "Idempotency-Key": "r"},
    )
    assert response.status_code == 200, response.text
    await drain_jobs(settings)


@pytest.fixture
async def full_cycle(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    await _full_cycle(client, resources, settings, payment_simulator[1].base_url)


async def test_every_ledger_transaction_sums_to_zero(
    full_cycle: None, resources: Resources
) -> None:
    async with resources.sessionmaker() as session:
        sums = (
            await session.execute(
                select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount_cents)).group_by(
                    LedgerEntry.transaction_id
                )
            )
        ).all()
    # Issued x3, paid x2, paid out x1, voided x1, refunded x1.
    assert len(sums) == 8
    assert {total for _, total in sums} == {0}


async def test_full_cycle_ledger_audit_passes(full_cycle: None, resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        result = await audit_ledger(session)

    assert (result.ok, result.trial_balance) == (True, 0)


async def test_full_cycle_leaves_platform_with_the_fee_only(
    full_cycle: None, resources: Resources
) -> None:
    async with resources.sessionmaker() as session:
        result = await audit_ledger(session)
        paid_fee = (
            await session.execute(
                select(Invoice.platform_fee_cents).where(Invoice.status == "PAID")
            )
        ).scalar_one()

    assert result.balances == {
        "SHIPPER_RECEIVABLE": 0,
        "CASH": paid_fee,
        "PLATFORM_REVENUE": -paid_fee,
        "CARRIER_PAYABLE": 0,
    }


async def test_post_rejects_unbalanced_postings(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        with pytest.raises(UnbalancedPostingError):
            await ledger.post(
                session,
                kind=LedgerKind.PAYOUT_SENT,
                dedupe_key="unbalanced",
                description="unbalanced",
                currency="usd",
                postings=[Posting(LedgerAccount.CASH, 100)],
            )


async def test_database_rejects_unbalanced_transaction_at_commit(resources: Resources) -> None:
    with pytest.raises(DBAPIError, match="does not balance"):
        async with unit_of_work(resources.sessionmaker) as session:
            transaction_id = (
                await session.execute(
                    insert(LedgerTransaction)
                    .values(kind=LedgerKind.PAYOUT_SENT, dedupe_key="bad", description="bad")
                    .returning(LedgerTransaction.id)
                )
            ).scalar_one()
            await session.execute(
                insert(LedgerEntry).values(
                    transaction_id=transaction_id,
                    account=LedgerAccount.CASH,
                    amount_cents=100,
                    currency="usd",
                )
            )


async def test_database_rejects_changing_ledger_entries(
    full_cycle: None, resources: Resources
) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work(resources.sessionmaker) as session:
            await session.execute(update(LedgerEntry).values(amount_cents=1))


async def test_database_rejects_deleting_audit_rows(full_cycle: None, resources: Resources) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work(resources.sessionmaker) as session:
            await session.execute(text("DELETE FROM payment_audit_log"))


async def test_ledger_posting_failure_rolls_back_the_state_change(
    resources: Resources, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    parties = await create_parties(resources, settings)
    load = await completed_load(resources, parties)

    async def broken(*_args: object) -> None:
        raise RuntimeError("ledger down")

    monkeypatch.setattr(ledger, "post_invoice_issued", broken)
    with pytest.raises(RuntimeError):
        await issue_invoice(resources, settings, load)

    assert await count(resources.sessionmaker, Invoice) == 0


async def _run_cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run ``superior-one payments audit-ledger`` against the test database."""
    monkeypatch.setenv("SO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SO_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SO_REDIS_NAMESPACE", settings.redis_namespace)
    get_settings.cache_clear()
    exit_code = 0
    try:
        # The command runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(audit_ledger_command)
    except typer.Exit as exc:
        exit_code = exc.exit_code
    finally:
        get_settings.cache_clear()
    return exit_code, capsys.readouterr().out


async def test_audit_ledger_command_passes_on_balanced_ledger(
    full_cycle: None,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_code, output = await _run_cli(settings, monkeypatch, capsys)

    assert exit_code == 0, output
    assert "Ledger balances." in output


async def test_audit_ledger_command_fails_on_transaction_without_entries(
    resources: Resources,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        await session.execute(
            insert(LedgerTransaction).values(
                kind=LedgerKind.PAYOUT_SENT, dedupe_key=str(uuid.uuid4()), description="empty"
            )
        )

    exit_code, _ = await _run_cli(settings, monkeypatch, capsys)

    assert exit_code == 1


async def test_charge_audit_rows_carry_actor_and_request_id(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))

    await client.post(
        f"/invoices/{invoice.id}/charge",
        json={},
        headers={**parties.shipper.headers, "Idempotency-Key": "a", "X-Request-ID": "req-audit-1"},
    )

    async with resources.sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    PaymentAuditEntry.action,
                    PaymentAuditEntry.actor_user_id,
                    PaymentAuditEntry.request_id,
                ).where(
                    PaymentAuditEntry.invoice_id == invoice.id,
                    PaymentAuditEntry.action.in_(["charge.requested", "charge.succeeded"]),
                )
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("charge.requested", parties.shipper.user.id, "req-audit-1"),
        ("charge.succeeded", parties.shipper.user.id, "req-audit-1"),
    ]
