"""Commands: ``superior-one payments audit-ledger`` and ``superior-one payments demo``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from superior_one.config import Settings, get_settings
from superior_one.db import unit_of_work
from superior_one.payments.ledger import LedgerAudit, audit_ledger
from superior_one.payments.money import format_cents
from superior_one.resources import open_resources

console = Console()
payments_cli = typer.Typer(
    help="Payments: ledger audit and the end-to-end demo.", no_args_is_help=True
)


@payments_cli.command("audit-ledger")
def audit_ledger_command() -> None:
    """Check the whole ledger: every transaction sums to zero and matches its invoice.

    Exits with status 1 when a check fails.
    """
    result = asyncio.run(_audit(get_settings()))
    table = Table("account", "balance (debit +)")
    for account, cents in sorted(result.balances.items()):
        table.add_row(account, format_cents(cents))
    console.print(table)
    console.print(
        f"{result.transactions} transactions, {result.entries} entries, "
        f"trial balance {format_cents(result.trial_balance)}"
    )
    if result.unbalanced:
        console.print(f"[red]Unbalanced transactions:[/red] {result.unbalanced}")
    if result.empty_transactions:
        console.print(f"[red]Transactions without entries:[/red] {result.empty_transactions}")
    if result.mismatched_invoices:
        console.print(
            f"[red]Invoices whose postings do not match their status:[/red] "
            f"{', '.join(result.mismatched_invoices[:50])}"
        )
    if not result.ok:
        raise typer.Exit(1)
    console.print("[green]Ledger balances.[/green]")


async def _audit(settings: Settings) -> LedgerAudit:
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        return await audit_ledger(session)


# --- the demo -------------------------------------------------------------------------

SHIPPER_EMAIL = "shipper@demo.example"
CARRIER_ADMIN_EMAIL = "carrier-admin@demo.example"
ADMIN_EMAIL = "admin@superior-one.example"
DEMO_CUSTOMER = "cus_demo_granite_state"
DEMO_PAYMENT_METHOD = "pm_card_visa"


class DemoError(Exception):
    pass


@payments_cli.command("demo")
def demo_command(
    api: Annotated[
        str, typer.Option(help="Base URL of the running api.")
    ] = "http://127.0.0.1:8000",
    timeout_s: Annotated[
        float, typer.Option(help="Seconds to wait for each background step.")
    ] = 60.0,
) -> None:
    """Run a delivered demo load through payments on the running platform (scripts/run.sh).

    The demo shipper confirms delivery, so the load becomes COMPLETED and a job
    invoices it. The shipper pays the invoice through the payment provider and
    the provider's signed webhook confirms the charge. The carrier is paid out
    less the platform fee, and the ledger audit passes.
    """
    settings = get_settings()
    # One line per step is the point here, not the HTTP client's request log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        _run_demo(api.rstrip("/"), settings.demo_password.get_secret_value(), timeout_s)
    except DemoError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _run_demo(api: str, password: str, timeout_s: float) -> None:
    with httpx.Client(base_url=api, timeout=30.0) as http:
        shipper = _login(http, SHIPPER_EMAIL, password)
        carrier = _login(http, CARRIER_ADMIN_EMAIL, password)
        admin = _login(http, ADMIN_EMAIL, password)
        carrier_org = _call(http, "GET", "/auth/whoami", carrier)["organizationId"]

        account = _call(
            http, "POST", "/payouts/account", carrier, key=f"demo-payout-account-{carrier_org}"
        )
        console.print(
            f"1. Carrier payout account {account['accountId']}: "
            f"payouts enabled {account['payoutsEnabled']}"
        )
        _call(
            http,
            "PUT",
            "/billing/profile",
            shipper,
            json={"customerId": DEMO_CUSTOMER, "paymentMethodId": DEMO_PAYMENT_METHOD},
        )
        console.print(f"2. Shipper billing profile: {DEMO_CUSTOMER}, {DEMO_PAYMENT_METHOD}")

        load = _delivered_load(http, shipper, carrier_org)
        _call(http, "POST", f"/loads/{load['id']}/complete", shipper)
        console.print(f"3. Load {load['reference'] or load['id']} confirmed delivered: COMPLETED")

        invoice = _wait(
            lambda: _maybe(http, f"/loads/{load['id']}/invoice", shipper),
            timeout_s,
            "the invoice job (is 'superior-one worker' running?)",
        )
        console.print(
            f"4. Invoice {invoice['number']} {invoice['status']}: {invoice['amount']} "
            f"(fee {format_cents(invoice['platformFeeCents'])}, "
            f"carrier {format_cents(invoice['carrierPayoutCents'])}), due {invoice['dueAt']}"
        )

        charge = _call(
            http,
            "POST",
            f"/invoices/{invoice['id']}/charge",
            shipper,
            key=str(uuid.uuid4()),
            json={"amountCents": invoice["amountCents"]},
        )
        console.print(
            f"5. Charged: invoice {charge['invoice']['status']}, "
            f"payment intent {charge['attempt']['paymentIntentId']}"
        )

        def settled() -> dict[str, Any] | None:
            detail = _call(http, "GET", f"/invoices/{invoice['id']}", shipper)
            attempt = detail["attempts"][-1]
            payout = _maybe(http, "/payouts?limit=100", carrier)
            mine = [p for p in (payout or {}).get("items", []) if p["invoiceId"] == invoice["id"]]
            if attempt["providerConfirmedAt"] and mine and mine[0]["status"] == "PAID":
                return {"attempt": attempt, "payout": mine[0]}
            return None

        done = _wait(settled, timeout_s, "the webhook and the payout job")
        console.print(
            f"6. Signed webhook confirmed the charge at {done['attempt']['providerConfirmedAt']}"
        )
        console.print(
            f"7. Carrier paid out {done['payout']['amount']} by transfer "
            f"{done['payout']['transferId']} (transfer group {done['payout']['transferGroup']})"
        )

        audit = _call(http, "GET", "/ledger/audit", admin)
        balances = ", ".join(f"{k} {format_cents(v)}" for k, v in audit["balancesCents"].items())
        console.print(f"8. Ledger audit ok={audit['ok']}: {balances}")
        if not audit["ok"]:
            raise DemoError(f"The ledger audit failed: {audit}")
    console.print("[green]Payments demo complete.[/green]")


def _login(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = http.post("/auth/login", json={"email": email, "password": password})
    if response.status_code != 200:
        raise DemoError(
            f"Login as {email} failed ({response.status_code}); run "
            "'superior-one seed-demo-accounts' and check SO_DEMO_PASSWORD."
        )
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def _call(
    http: httpx.Client,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    key: str | None = None,
    json: dict[str, Any] | None = None,
) -> Any:
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    response = http.request(method, path, headers=sent, json=json)
    if response.status_code >= 400:
        raise DemoError(f"{method} {path} returned {response.status_code}: {response.text}")
    return response.json()


def _maybe(http: httpx.Client, path: str, headers: dict[str, str]) -> Any:
    response = http.get(path, headers=headers)
    return response.json() if response.status_code == 200 else None


def _delivered_load(http: httpx.Client, shipper: dict[str, str], carrier_org: str) -> Any:
    page = _call(http, "GET", "/loads/mine?status=DELIVERED&limit=100", shipper)
    for load in page["items"]:
        if load.get("assignedCarrierOrganizationId") == carrier_org:
            return load
    raise DemoError(
        "The demo shipper has no DELIVERED load carried by the demo carrier. Seed demo "
        "loads with 'superior-one seed --loads 5000 --demo-share 1' on an empty database."
    )


def _wait(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise DemoError(f"Timed out after {timeout_s:.0f} s waiting for {what}.")
        time.sleep(0.5)
