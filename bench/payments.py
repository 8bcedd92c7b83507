"""Benchmark: invoice creation, charge latency without the provider, webhook processing.

Runs the api under granian, a job worker and the local payment provider
simulator on 127.0.0.1, against a fresh database, and drives them over HTTP:

1. invoices: ``POST /loads/{id}/invoice`` for completed loads, 16 at a time;
2. charges: ``POST /invoices/{id}/charge``, 2 at a time. The latency that
   counts is the response time less the provider's own time, which the api
   reports in ``Server-Timing: provider;dur=...``. Part of the invoices also
   get 5 concurrent requests with one key and 5 with different keys, and every
   PaymentIntent at the provider is counted per invoice (``duplicate_charges``);
3. webhooks: signed ``payment_intent.succeeded`` events with fresh ids, posted
   16 at a time, timed until the worker has processed the last one;
4. (between 2 and 3) charges again, one at a time through the app in this
   process (no server), with the SQL statements each one sends.

Beside it, the replaced system's approach (read the status, charge with no
idempotency key, write the outcome) runs against the same simulator with the
same concurrent duplicates, to show what the keys prevent.

    .venv/bin/python -m bench.payments            # about 6 minutes on a busy machine
    .venv/bin/python -m bench.payments --quick    # under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import stripe
from pydantic import SecretStr
from sqlalchemy import event

from bench.common import (
    RESULTS_DIR,
    ROOT,
    free_port,
    fresh_database,
    machine_description,
    now_iso,
    server,
)
from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.app import create_app
from superior_one.auth.passwords import PasswordService
from superior_one.auth.tokens import issue_access_token
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.models import HaulType, Load, LoadStatus, LoadType, RateMode
from superior_one.loads.repository import point_ewkt
from superior_one.payments.webhooks import SIGNATURE_HEADER, build_signature_header
from superior_one.resources import open_resources
from superior_one.simulators.payment_provider import DEFAULT_API_KEY, DEFAULT_WEBHOOK_SECRET

DATABASE = "so_bench_payments"
NAMESPACE = "so-bench-payments"
DUPLICATE_FANOUT = 5
# A shipper pays an invoice now and then: 100,000 loads a month is about one charge a
# minute. So charge latency is measured at low concurrency, invoices and webhooks at 16.
CHARGE_CONCURRENCY = 2


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))
    return round(ordered[index], 2)


# --- set-up -------------------------------------------------------------------------


async def _create_parties(settings: Settings, loads: int) -> tuple[str, str, list[uuid.UUID]]:
    """Create a shipper and a carrier (both admins) and ``loads`` COMPLETED loads."""
    password_hash = PasswordService(settings).hash("bench-password-123")
    start = datetime.now(UTC) - timedelta(days=2)
    async with (
        open_resources(settings, pool_size=2) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        shipper_org = Organization(name="Bench Shipper", type=OrganizationType.SHIPPER)
        carrier_org = Organization(name="Bench Carrier", type=OrganizationType.CARRIER)
        session.add_all([shipper_org, carrier_org])
        await session.flush()
        shipper = User(
            organization_id=shipper_org.id,
            email="shipper@bench.example",
            password_hash=password_hash,
            role=Role.ORG_ADMIN,
        )
        carrier = User(
            organization_id=carrier_org.id,
            email="carrier@bench.example",
            password_hash=password_hash,
            role=Role.ORG_ADMIN,
        )
        session.add_all([shipper, carrier])
        await session.flush()
        load_ids = [uuid.uuid4() for _ in range(loads)]
        session.add_all(
            Load(
                id=load_id,
                shipper_organization_id=shipper_org.id,
                status=LoadStatus.COMPLETED,
                pickup_city="Seattle",
                pickup_state="WA",
                pickup_zip="98101",
                pickup_time_zone="America/Los_Angeles",
                pickup_point=point_ewkt(47.6062, -122.3321),
                pickup_window_start=start,
                pickup_window_end=start + timedelta(hours=4),
                delivery_city="Tacoma",
                delivery_state="WA",
                delivery_zip="98402",
                delivery_time_zone="America/Los_Angeles",
                delivery_point=point_ewkt(47.2529, -122.4443),
                delivery_window_start=start + timedelta(hours=6),
                delivery_window_end=start + timedelta(hours=10),
                equipment_type="END_DUMP",
                haul_type=HaulType.LOCAL,
                load_type=LoadType.BULK,
                commodity="Crushed stone",
                weight_lbs=40_000,
                rate_cents=100_000 + n,
                rate_mode=RateMode.FLAT,
                miles=34,
                gross_revenue_cents=100_000 + n,
                assigned_carrier_organization_id=carrier_org.id,
            )
            for n, load_id in enumerate(load_ids)
        )
    tokens = [
        issue_access_token(
            settings,
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role.value,
            token_version=1,
        )
        for user in (shipper, carrier)
    ]
    return tokens[0], tokens[1], load_ids


@contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - fixed command line
            command,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not respond within 30 s")


# --- phases -------------------------------------------------------------------------


async def _gather_limited(calls: list[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def run(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(run(c) for c in calls))


async def _timed(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    started = time.perf_counter()
    response = await http.request(method, path, **kwargs)
    return response, (time.perf_counter() - started) * 1000


def _provider_ms(response: httpx.Response) -> float:
    timing = response.headers.get("server-timing", "")
    if not timing.startswith("provider;dur="):
        return 0.0
    return float(timing.removeprefix("provider;dur="))


async def _invoices(
    http: httpx.AsyncClient, shipper: dict[str, str], load_ids: list[uuid.UUID]
) -> tuple[dict[str, Any], list[str]]:
    def create(load_id: uuid.UUID) -> Callable[[], Awaitable[Any]]:
        return lambda: _timed(
            http,
            "POST",
            f"/loads/{load_id}/invoice",
            headers={**shipper, "Idempotency-Key": str(uuid.uuid4())},
        )

    calls = [create(load_id) for load_id in load_ids]
    started = time.perf_counter()
    results = await _gather_limited(calls, 16)
    elapsed = time.perf_counter() - started
    ok = [r for r, _ in results if r.status_code == 201]
    latencies = [ms for _, ms in results]
    return {
        "invoices_created": len(ok),
        "invoices_per_s": round(len(ok) / elapsed, 1),
        "invoice_p50_ms": _percentile(latencies, 0.5),
        "invoice_p99_ms": _percentile(latencies, 0.99),
    }, [r.json()["id"] for r in ok]


async def _charges(
    http: httpx.AsyncClient, shipper: dict[str, str], invoice_ids: list[str], duplicated: int
) -> dict[str, Any]:
    plain, probed = invoice_ids[duplicated:], invoice_ids[:duplicated]

    def one(invoice_id: str, key: str) -> Callable[[], Awaitable[Any]]:
        return lambda: _timed(
            http,
            "POST",
            f"/invoices/{invoice_id}/charge",
            headers={**shipper, "Idempotency-Key": key},
            json={},
        )

    started = time.perf_counter()
    results = await _gather_limited([one(i, str(uuid.uuid4())) for i in plain], CHARGE_CONCURRENCY)
    elapsed = time.perf_counter() - started

    # Concurrent duplicates: one key sent five times, and five different keys.
    probes: list[Callable[[], Awaitable[Any]]] = []
    for n, invoice_id in enumerate(probed):
        same_key = str(uuid.uuid4())
        for _ in range(DUPLICATE_FANOUT):
            key = same_key if n % 2 == 0 else str(uuid.uuid4())
            probes.append(one(invoice_id, key))
    probe_results = await _gather_limited(probes, 2 * DUPLICATE_FANOUT)

    paid = [(r, ms) for r, ms in results if r.status_code == 200]
    totals = [ms for _, ms in paid]
    provider = [_provider_ms(r) for r, _ in paid]
    own = [ms - p for ms, p in zip(totals, provider, strict=True)]
    return {
        "charges": len(results),
        "charges_paid": len(paid),
        "charges_per_s": round(len(results) / elapsed, 1),
        "charge_p50_ms": _percentile(own, 0.5),
        "charge_p99_ms": _percentile(own, 0.99),
        "charge_total_p50_ms": _percentile(totals, 0.5),
        "charge_total_p99_ms": _percentile(totals, 0.99),
        "provider_p50_ms": _percentile(provider, 0.5),
        "duplicate_probe_requests": len(probe_results),
        "duplicate_probe_statuses": dict(
            sorted(Counter(str(r.status_code) for r, _ in probe_results).items())
        ),
    }


async def _intents_per_invoice(sim: httpx.AsyncClient) -> Counter[str]:
    events = (await sim.get("/__sim/events", params={"type": "payment_intent.created"})).json()
    return Counter(e["data"]["object"]["metadata"].get("invoice_id", "?") for e in events["data"])


async def _wait_processed(dsn: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                    "AND (scheduled_at IS NULL OR scheduled_at <= now())"
                )
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            await asyncio.sleep(0.2)
    raise RuntimeError("the worker did not finish its jobs in time")


async def _webhooks(
    http: httpx.AsyncClient, sim: httpx.AsyncClient, dsn: str, count: int
) -> dict[str, Any]:
    succeeded = (await sim.get("/__sim/events", params={"type": "payment_intent.succeeded"})).json()
    objects = [e["data"]["object"] for e in succeeded["data"]]
    bodies = []
    for n in range(count):
        event = {
            "id": f"evt_bench_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {"object": objects[n % len(objects)]},
        }
        bodies.append(json.dumps(event, indent=2).encode())

    def post(body: bytes) -> Callable[[], Awaitable[httpx.Response]]:
        header = build_signature_header(body, [DEFAULT_WEBHOOK_SECRET], int(time.time()))
        return lambda: http.post(
            "/webhooks/stripe",
            content=body,
            headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
        )

    started = time.perf_counter()
    responses = await _gather_limited([post(b) for b in bodies], 16)
    ingested = time.perf_counter() - started
    await _wait_processed(dsn, timeout_s=900)
    processed = time.perf_counter() - started
    return {
        "webhook_events": count,
        "webhook_errors": sum(1 for r in responses if r.status_code != 200),
        "webhook_ingest_per_s": round(count / ingested, 1),
        "webhooks_per_s": round(count / processed, 1),
    }


async def _in_process_charges(
    settings: Settings, sim_url: str, shipper: dict[str, str], invoice_ids: list[str]
) -> dict[str, Any]:
    """Charge invoices one after another through the app in this process (no HTTP server).

    Without a server and a queue in front of it, this is the request's own cost:
    its statements and the time it takes, less the provider's.
    """
    app = create_app(
        settings.model_copy(
            update={
                "stripe_secret_key": SecretStr(DEFAULT_API_KEY),
                "stripe_api_base": sim_url,
                "stripe_webhook_secret": SecretStr(DEFAULT_WEBHOOK_SECRET),
            }
        )
    )
    statements = 0

    def count(*_args: Any) -> None:
        nonlocal statements
        statements += 1

    own: list[float] = []
    per_charge: list[int] = []
    async with app.router.lifespan_context(app):
        await app.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for invoice_id in invoice_ids:
                before = statements
                response, ms = await _timed(
                    http,
                    "POST",
                    f"/invoices/{invoice_id}/charge",
                    headers={**shipper, "Idempotency-Key": str(uuid.uuid4())},
                    json={},
                )
                if response.status_code == 200:
                    own.append(ms - _provider_ms(response))
                    per_charge.append(statements - before)
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", count)
    return {
        "in_process_charges": len(own),
        "in_process_charge_p50_ms": _percentile(own, 0.5),
        "in_process_charge_p99_ms": _percentile(own, 0.99),
        "statements_per_charge": statistics.median(per_charge),
    }


async def _replaced_approach(base_url: str, settings: Settings, invoices: int) -> int:
    """The replaced system: read, charge without a key, then write; return duplicate charges.

    Each "invoice" is charged by DUPLICATE_FANOUT concurrent callers that all
    read it as unpaid before any of them writes.
    """
    client = stripe.StripeClient(
        DEFAULT_API_KEY,
        base_addresses={"api": base_url},
        max_network_retries=0,
        http_client=stripe.HTTPXClient(),
    )
    paid: set[str] = set()
    charges = 0

    async def naive_charge(invoice: str) -> None:
        nonlocal charges
        if invoice in paid:  # the check; the other callers pass it during the call below
            return
        await client.v1.payment_intents.create_async(
            {
                "amount": 100_000,
                "currency": "usd",
                "customer": "cus_replaced",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                "metadata": {"invoice_id": invoice},
            }
        )
        charges += 1
        paid.add(invoice)  # the write, after the charge

    for n in range(invoices):
        await asyncio.gather(*(naive_charge(f"replaced-{n}") for _ in range(DUPLICATE_FANOUT)))
    return charges - invoices


# --- main ---------------------------------------------------------------------------


async def _run(
    api: str,
    sim_url: str,
    dsn: str,
    settings: Settings,
    sizes: dict[str, int],
    start_worker: Callable[[], None],
) -> dict[str, Any]:
    shipper_token, carrier_token, load_ids = await _create_parties(settings, sizes["invoices"])
    shipper = {"Authorization": f"Bearer {shipper_token}"}
    carrier = {"Authorization": f"Bearer {carrier_token}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http,
        httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
    ):
        account = await http.post(
            "/payouts/account", headers={**carrier, "Idempotency-Key": "bench-account"}
        )
        account.raise_for_status()
        profile = await http.put(
            "/billing/profile",
            headers=shipper,
            json={"customerId": "cus_bench", "paymentMethodId": "pm_card_visa"},
        )
        profile.raise_for_status()

        # Warm-up: connections, caches and the provider client.
        await _invoices(http, shipper, load_ids[:10])
        invoice_figures, invoice_ids = await _invoices(http, shipper, load_ids[10:])

        charge_ids = invoice_ids[: sizes["charges"]]
        charge_figures = await _charges(http, shipper, charge_ids, sizes["duplicated"])
        left = invoice_ids[sizes["charges"] :][: sizes["in_process"]]
        in_process = await _in_process_charges(settings, sim_url, shipper, left)
        per_invoice = await _intents_per_invoice(sim)

        # The worker starts only now, as it would run on other hosts: it takes the
        # webhooks the simulator delivered during the charges, and the payouts.
        start_worker()
        await _wait_processed(dsn, timeout_s=900)
        duplicate_charges = sum(n - 1 for n in per_invoice.values() if n > 1)

        webhook_figures = await _webhooks(http, sim, dsn, sizes["webhooks"])
        replaced_duplicates = await _replaced_approach(sim_url, settings, sizes["duplicated"])

    return {
        **invoice_figures,
        **charge_figures,
        "invoices_charged_at_provider": len(per_invoice),
        "duplicate_charges": duplicate_charges,
        **webhook_figures,
        **in_process,
        "replaced_approach_duplicate_charges": replaced_duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller run, under a minute")
    args = parser.parse_args()
    sizes = (
        {"invoices": 70, "charges": 40, "duplicated": 10, "webhooks": 120, "in_process": 20}
        if args.quick
        else {
            "invoices": 510,
            "charges": 200,
            "duplicated": 20,
            "webhooks": 1000,
            "in_process": 100,
        }
    )

    database_url = fresh_database(DATABASE)
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {
        "SO_DATABASE_URL": database_url,
        "SO_REDIS_NAMESPACE": NAMESPACE,
        "SO_LOG_LEVEL": "WARNING",
        "SO_ACCESS_TOKEN_TTL_S": "3600",
        "SO_STRIPE_SECRET_KEY": DEFAULT_API_KEY,
        "SO_STRIPE_API_BASE": sim_url,
        "SO_STRIPE_WEBHOOK_SECRET": DEFAULT_WEBHOOK_SECRET,
        "SO_METRICS_PORT_WORKER": "0",
        "SO_JOBS_CONCURRENCY": "8",
    }
    settings = Settings(database_url=database_url, redis_namespace=NAMESPACE, log_level="WARNING")
    logs = Path(tempfile.gettempdir())
    worker = [str(Path(sys.executable).parent / "superior-one"), "worker"]

    with contextlib.ExitStack() as stack:
        api = stack.enter_context(server("superior_one.app:create_app", env))
        # The api does not call the provider at start-up, so the simulator can
        # follow once the api's address (its webhook target) is known.
        simulator = [
            sys.executable, "-m", "superior_one.simulators.payment_provider",
            "--port", str(sim_port), "--accounts-active",
            "--webhook-url", f"{api}/webhooks/stripe",
        ]  # fmt: skip
        stack.enter_context(_process(simulator, env, logs / "bench-payments-simulator.log"))
        _wait_http(sim_url + "/__sim/stats")

        def start_worker() -> None:
            stack.enter_context(_process(worker, env, logs / "bench-payments-worker.log"))

        figures = asyncio.run(_run(api, sim_url, dsn, settings, sizes, start_worker))

    result = {
        "date": now_iso(),
        "machine": machine_description() + "; shared with other test and benchmark runs",
        "command": "python -m bench.payments" + (" --quick" if args.quick else ""),
        "server": "granian, 1 worker; simulator process; 1 job worker (8 jobs at a time), "
        "started after the charge phase",
        "load": f"httpx: invoices 16 at a time, charges {CHARGE_CONCURRENCY} at a time, "
        "webhooks 16 at a time",
        "charge_latency_note": "charge_p50/p99_ms exclude the provider's own time "
        "(Server-Timing provider;dur); charge_total_* include it",
        **figures,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "payments.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
