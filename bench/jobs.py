"""Benchmark: the job system and the carrier checks that run on it.

Against the local PostgreSQL, Redis and the FMCSA simulator (in this process),
on a scratch database:

* the daily insurance expiry check over 10,000 carriers: seconds from the tick
  to the last batch job done, and the SQL statements the jobs issued;
* worker throughput: no-op jobs per second, and verification jobs per second
  against the simulator (budget out of the way);
* the shared FMCSA budget: two worker processes re-verify 1,000 carriers with
  the budget at 100 calls per minute, and the simulator counts the calls it
  receives in every rolling window. Bounded in time: it stops after 150 s (2.5 windows).

    .venv/bin/python -m bench.jobs            # about 4 minutes; bench/results/jobs.json
    .venv/bin/python -m bench.jobs --quick    # under a minute; bench/results/jobs-quick.json

``--quick`` checks 2,000 carriers and runs the budget part with the same rate
in a 15-second window (25 calls per 15 s) for 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from procrastinate import JobContext
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.common import RESULTS_DIR, ROOT, fresh_database, machine_description, now_iso
from superior_one.carriers.tasks import insurance_expiry_check, verify
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.jobs import Queue, defer, defer_many, job_task
from superior_one.jobs.worker import run_worker
from superior_one.observability.logging import configure_logging
from superior_one.resources import open_resources
from superior_one.simulators.fmcsa import SimulatorServer

DATABASE = "so_bench_jobs"
REDIS_URL = "redis://127.0.0.1:6379/13"
WEB_KEY = "bench-key"
DATA_DIR = ROOT.parent / "shared" / "data" / "fmcsa" / "qcmobile"
ARRIVAL_SLACKS_S = (0.25, 0.5, 1.0, 2.0)


@job_task(name="bench.noop", queue=Queue.BULK)
async def noop(context: JobContext, *, n: int) -> None:
    return None


@dataclass
class QueryCounter:
    """Counts SQL statements sent through any SQLAlchemy engine while active."""

    count: int = 0
    active: bool = False

    def __call__(self, *_args: Any) -> None:
        if self.active:
            self.count += 1


def base_settings(database_url: str, simulator: SimulatorServer) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_namespace=f"so-bench-jobs-{uuid.uuid4().hex[:8]}",
        log_level="WARNING",
        metrics_enabled=False,
        metrics_port_worker=0,
        jobs_periodic_max_delay_s=5.0,
        fmcsa_base_url=simulator.base_url,
        fmcsa_web_key=SecretStr(WEB_KEY),
        fmcsa_call_budget="1000000/minute",
        fmcsa_cache_fresh_s=0,
    )


def dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://")


def sql(settings: Settings, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn(settings), autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def seed_carriers(settings: Settings, count: int, *, first_dot: int, expiring: bool) -> None:
    """Carrier organizations, carriers and one liability policy each, in three statements.

    With ``expiring``, cover ends from 10 days ago to 59 days ahead, so every
    branch of the check (notices at 30/15/7, expired, quiet) has carriers.
    """
    sql(settings, "TRUNCATE organizations, procrastinate_jobs, job_failures CASCADE")
    sql(
        settings,
        "INSERT INTO organizations (id, name, type, is_active, is_verified) "
        "SELECT gen_random_uuid(), 'Bench carrier ' || n, 'CARRIER', true, true "
        "FROM generate_series(1, %s) AS n",
        (count,),
    )
    sql(
        settings,
        "INSERT INTO carriers (id, organization_id, dot_number, verification_status, "
        "last_result_status, last_verified_at, common_authority_status, allowed_to_operate) "
        "SELECT gen_random_uuid(), id, %s + row_number() OVER (ORDER BY id), 'VERIFIED', "
        "'VERIFIED', now(), 'A', 'Y' FROM organizations",
        (first_dot,),
    )
    if expiring:
        sql(
            settings,
            "INSERT INTO insurance_policies (id, carrier_id, coverage_type, insurer_name, "
            "policy_number, amount_cents, effective_date, expiry_date) "
            "SELECT gen_random_uuid(), id, 'AUTO_LIABILITY', 'Bench Mutual', 'AL-' || dot_number, "
            "100000000, current_date - 300, current_date + (dot_number %% 70) - 10 FROM carriers",
        )
    sql(settings, "VACUUM ANALYZE")


async def run_until_idle(
    settings: Settings, *, queues: list[str] | None = None, concurrency: int = 4
) -> None:
    """Run a worker in this process until no job of ``queues`` is waiting or running."""
    statuses = "('todo', 'doing')"
    where = " AND queue_name = ANY(%s)" if queues else ""
    params: tuple[Any, ...] = (queues,) if queues else ()
    worker = asyncio.create_task(
        run_worker(settings, queues=queues, concurrency=concurrency, install_signal_handlers=False)
    )
    try:
        while True:
            await asyncio.sleep(0.05)
            rows = sql(
                settings,
                f"SELECT count(*) FROM procrastinate_jobs WHERE status IN {statuses}{where}",
                params,
            )
            if rows[0][0] == 0:
                return
            if worker.done():
                worker.result()
                return
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def insurance_check(settings: Settings, carriers: int) -> dict[str, Any]:
    seed_carriers(settings, carriers, first_dot=5_000_000, expiring=True)
    counter = QueryCounter()
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        async with (
            open_resources(settings, pool_size=1) as resources,
            unit_of_work(resources.sessionmaker) as session,
        ):
            await defer(session, insurance_expiry_check, timestamp=int(time.time()))
        counter.active = True
        started = time.perf_counter()
        # Only the bulk queue: the notices' deliveries wait, so the figure is the check's.
        await run_until_idle(settings, queues=[Queue.BULK.value])
        elapsed = time.perf_counter() - started
        counter.active = False
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
    notices = sql(settings, "SELECT count(*) FROM carrier_notifications")[0][0]
    suspended = sql(
        settings, "SELECT count(*) FROM carriers WHERE booking_suspended_at IS NOT NULL"
    )[0][0]
    batches = sql(
        settings,
        "SELECT count(*) FROM procrastinate_jobs "
        "WHERE task_name = 'carriers.insurance_expiry_batch'",
    )[0][0]
    return {
        "carriers": carriers,
        "seconds": round(elapsed, 3),
        "batch_jobs": batches,
        "sql_statements": counter.count,
        "notices_created": notices,
        "bookings_suspended": suspended,
    }


async def throughput(settings: Settings, jobs: int, verifications: int) -> dict[str, Any]:
    sql(settings, "TRUNCATE procrastinate_jobs CASCADE")
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        await defer_many(session, noop, [{"n": n} for n in range(jobs)])
    started = time.perf_counter()
    await run_until_idle(settings, concurrency=10)
    noop_s = time.perf_counter() - started

    # The simulator serves USDOT numbers ending in 04 to 99 as active carriers.
    seed_carriers(settings, verifications, first_dot=31_000, expiring=False)
    sql(settings, "UPDATE carriers SET dot_number = dot_number * 100 + 5")
    ids = [row[0] for row in sql(settings, "SELECT id FROM carriers")]
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        await defer_many(session, verify, [{"carrier_id": str(i)} for i in ids])
    started = time.perf_counter()
    await run_until_idle(settings, concurrency=10)
    vetting_s = time.perf_counter() - started
    return {
        "noop_jobs": jobs,
        "noop_jobs_per_s": round(jobs / noop_s, 1),
        "vetting_jobs": verifications,
        "vetting_jobs_per_s": round(verifications / vetting_s, 1),
    }


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def worker_env(settings: Settings, budget: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SO_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SO_DATABASE_URL": settings.database_url,
            "SO_REDIS_URL": settings.redis_url,
            "SO_REDIS_NAMESPACE": settings.redis_namespace,
            "SO_LOG_LEVEL": "WARNING",
            "SO_METRICS_PORT_WORKER": "0",
            "SO_FMCSA_BASE_URL": settings.fmcsa_base_url,
            "SO_FMCSA_WEB_KEY": WEB_KEY,
            "SO_FMCSA_CALL_BUDGET": budget,
            "SO_FMCSA_CACHE_FRESH_S": "0",
            "SO_JOBS_PERIODIC_MAX_DELAY_S": "5",
        }
    )
    return env


def shared_budget(
    settings: Settings,
    simulator: SimulatorServer,
    *,
    carriers: int,
    budget: int,
    window_s: int,
    run_s: float,
) -> dict[str, Any]:
    seed_carriers(settings, carriers, first_dot=32_000, expiring=False)
    sql(settings, "UPDATE carriers SET dot_number = dot_number * 100 + 7")
    ids = [row[0] for row in sql(settings, "SELECT id FROM carriers")]

    async def queue_all() -> None:
        async with (
            open_resources(settings, pool_size=1) as resources,
            unit_of_work(resources.sessionmaker) as session,
        ):
            await defer_many(session, verify, [{"carrier_id": str(i)} for i in ids])

    asyncio.run(queue_all())
    simulator.state.clear_requests()
    budget_text = f"{budget}/{window_s} seconds"
    command = [str(Path(sys.executable).parent / "superior-one"), "worker", "--concurrency", "5"]
    # The workers' logs stay in the temporary directory for a look after the run.
    logs = Path(tempfile.gettempdir()) / "so-bench-jobs"
    logs.mkdir(exist_ok=True)
    workers = []
    for n in (1, 2):
        with open(Path(logs) / f"worker-{n}.log", "wb") as log_file:
            workers.append(
                subprocess.Popen(  # noqa: S603 - our own console script
                    command,
                    cwd=ROOT,
                    env=worker_env(settings, budget_text),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
    started = time.monotonic()
    verified = 0
    while time.monotonic() - started < run_s:
        time.sleep(1)
        verified = sql(
            settings, "SELECT count(*) FROM carrier_verifications WHERE source = 'FMCSA'"
        )[0][0]
        if verified >= carriers:
            break
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=30)
    times = [served.at for served in simulator.state.requests()]
    return {
        "workers": 2,
        "carriers_queued": carriers,
        "carriers_verified": verified,
        "run_s": round(time.monotonic() - started, 1),
        "budget": budget_text,
        "window_s": window_s,
        "calls": len(times),
        "max_calls_in_window": max_in_window(times, window_s),
        # A request reaches the simulator some time after its worker took the budget
        # slot (event loop, connection pool). Windows shorter by these many seconds
        # show how much of an excess that delay explains.
        "max_calls_in_window_shortened_by_s": {
            str(slack): max_in_window(times, window_s - slack) for slack in ARRIVAL_SLACKS_S
        },
        "max_calls_per_rolling_minute": max_in_window(times, 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run, under a minute")
    args = parser.parse_args()
    configure_logging(level="WARNING")

    insurance_carriers = 2_000 if args.quick else 10_000
    noop_jobs = 300 if args.quick else 2_000
    vetting_jobs = 50 if args.quick else 500
    window_s, budget, run_s = (15, 25, 30.0) if args.quick else (60, 100, 150.0)

    database_url = fresh_database(DATABASE)
    data_dir = DATA_DIR if DATA_DIR.is_dir() else None
    with SimulatorServer(web_key=WEB_KEY, data_dir=data_dir) as simulator:
        settings = base_settings(database_url, simulator)
        check = asyncio.run(insurance_check(settings, insurance_carriers))
        print("insurance check:", check, flush=True)
        rates = asyncio.run(throughput(settings, noop_jobs, vetting_jobs))
        print("throughput:", rates, flush=True)
        limited = shared_budget(
            settings, simulator, carriers=1_000, budget=budget, window_s=window_s, run_s=run_s
        )
        print("shared budget:", limited, flush=True)

    results = {
        "benchmark": "jobs",
        "quick": args.quick,
        "date": now_iso(),
        "machine": machine_description(),
        "insurance_check_10k_s": check["seconds"] if insurance_carriers == 10_000 else None,
        "insurance_check": check,
        "noop_jobs_per_s": rates["noop_jobs_per_s"],
        "vetting_jobs_per_s": rates["vetting_jobs_per_s"],
        "throughput": rates,
        "fmcsa_budget_per_minute": budget * 60 // window_s,
        "fmcsa_max_calls_per_rolling_minute": limited["max_calls_per_rolling_minute"],
        "fmcsa_budget": limited,
    }
    name = "jobs-quick.json" if args.quick else "jobs.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote bench/results/{name} at {datetime.now(UTC).isoformat(timespec='seconds')}")


if __name__ == "__main__":
    main()
