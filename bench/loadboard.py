"""Benchmark: the load board at 1,000,000 loads (about 100,000 posted).

Measures, on one seeded database:

1. each filter combination through the board service, with the time spent in
   PostgreSQL seen from the client (the sum of its statements' round trips),
   PostgreSQL's own planning and execution time of the same statements (an
   EXPLAIN ANALYZE replay right after, so with warm caches), and in all;
2. HTTP under 200 open connections against a granian server (2 workers) on
   127.0.0.1, once with the Redis result cache and once without it, by two
   clients in turn: this script's open loop at a fixed request rate, latency
   counted from each request's scheduled send time (so a stalled server cannot
   hide its queue), and wrk (C, so the client's own CPU cannot be what limits
   the server) with a Lua script drawing the same searches, each connection
   pausing between requests to hold the same rate;
3. the replaced approach on the same rows: a JSON origin column filtered by
   path, single-column indexes, OFFSET paging and count(*) on every request.

Writes bench/results/loadboard.json, with the load averages (``/proc/loadavg``)
before and after each part: other processes on the machine inflate every figure.

    .venv/bin/python -m bench.loadboard                # seeds 1 M loads (about 4 min), then ~3 min
    .venv/bin/python -m bench.loadboard --reuse        # keeps an already seeded database
    .venv/bin/python -m bench.loadboard --quick        # 5,000 loads (seeded once), under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event, select

from bench.common import (
    RESULTS_DIR,
    ROOT,
    free_port,
    fresh_database,
    load_average,
    machine_description,
    now_iso,
)
from superior_one.accounts.models import Role, User
from superior_one.auth.tokens import issue_access_token
from superior_one.config import Settings
from superior_one.loads.board import BoardSearch, BoardSort, Cursor, GeoCircle
from superior_one.loads.cache import BoardCache
from superior_one.loads.models import HaulType
from superior_one.loads.repository import LoadsRepository
from superior_one.loads.seed import SeedOptions, seed
from superior_one.loads.service import BoardService
from superior_one.migrate import upgrade_to_heads
from superior_one.resources import Resources, open_resources

JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256-signing"  # noqa: S105 - bench only
REDIS_URL = "redis://127.0.0.1:6379/14"
PAGE = 25
REQUEST_TIMEOUT_S = 10.0
# Rows before the deep page: page 2,001 of 25 on the whole board (half the board if smaller).
DEEP_OFFSET = 50_000

STATES = ["TX", "CA", "IL", "GA", "PA", "OH", "FL", "NY", "WA", "CO", "NC", "MO"]
METROS = {
    "dallas": (32.7767, -96.7970),
    "chicago": (41.8781, -87.6298),
    "atlanta": (33.7490, -84.3880),
    "denver": (39.7392, -104.9903),
    "seattle": (47.6062, -122.3321),
    "houston": (29.7604, -95.3698),
    "philadelphia": (39.9526, -75.1652),
    "phoenix": (33.4484, -112.0740),
    "casper_wy": (42.8666, -106.3131),  # sparse: few loads within 50 miles
}
COMMODITY_WORDS = ["gravel", "steel", "lumber", "asphalt", "excavator", "produce", "cement"]


def _metro(rng: random.Random, radius: float) -> GeoCircle:
    lat, lng = rng.choice(list(METROS.values()))
    return GeoCircle(lat, lng, radius)


def _combinations(deep: Cursor | None) -> dict[str, Callable[[random.Random], BoardSearch]]:
    """Each named combination draws a concrete search per iteration."""
    now = datetime.now(UTC)
    return {
        "all, by pickup date": lambda r: BoardSearch(limit=PAGE),
        "origin state": lambda r: BoardSearch(origin_state=r.choice(STATES), limit=PAGE),
        "lane (origin and destination state)": lambda r: BoardSearch(
            origin_state=r.choice(STATES), destination_state=r.choice(STATES), limit=PAGE
        ),
        "equipment + minimum rate, by rate": lambda r: BoardSearch(
            equipment_types=(r.choice(["FLATBED", "END_DUMP", "LOWBOY", "REEFER"]),),
            min_rate_cents=r.choice([50_000, 150_000, 300_000]),
            sort=BoardSort.RATE,
            limit=PAGE,
        ),
        "haul type, by rate per mile": lambda r: BoardSearch(
            haul_type=r.choice(list(HaulType)), sort=BoardSort.RATE_PER_MILE, limit=PAGE
        ),
        "pickup date range": lambda r: BoardSearch(
            pickup_from=now + timedelta(days=r.randint(0, 10)),
            pickup_to=now + timedelta(days=r.randint(11, 13)),
            limit=PAGE,
        ),
        "commodity text": lambda r: BoardSearch(commodity=r.choice(COMMODITY_WORDS), limit=PAGE),
        "radius 50 mi, by pickup date": lambda r: BoardSearch(origin=_metro(r, 50), limit=PAGE),
        "radius 250 mi, by pickup date": lambda r: BoardSearch(origin=_metro(r, 250), limit=PAGE),
        "radius 50 mi, by distance": lambda r: BoardSearch(
            origin=_metro(r, 50), sort=BoardSort.DISTANCE, limit=PAGE
        ),
        "radius 250 mi, by distance": lambda r: BoardSearch(
            origin=_metro(r, 250), sort=BoardSort.DISTANCE, limit=PAGE
        ),
        "origin radius 100 + destination state": lambda r: BoardSearch(
            origin=_metro(r, 100), destination_state=r.choice(STATES), limit=PAGE
        ),
        "deep page (cursor)": lambda r: BoardSearch(limit=PAGE, cursor=deep),
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "n": len(ordered)}


# --- 1. the board service, in process ---


async def _deep_cursor(resources: Resources, offset: int) -> Cursor | None:
    async with resources.sessionmaker() as session:
        repository = LoadsRepository(session)
        return await repository.board_key_after(BoardSearch(), None, offset)


async def _server_ms(session: Any, statements: list[tuple[str, Any]]) -> float:
    """Replay ``statements`` under EXPLAIN ANALYZE: PostgreSQL's own planning and execution."""
    connection = await session.connection()
    total = 0.0
    for statement, parameters in statements:
        result = await connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, parameters
        )
        plan = result.scalar_one()[0]
        total += plan["Planning Time"] + plan["Execution Time"]
    return total


async def _database_figures(
    resources: Resources, settings: Settings, iterations: int, deep: Cursor | None
) -> dict[str, dict[str, Any]]:
    statement_ms: list[float] = []
    statements: list[tuple[str, Any]] = []
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        started[id(cursor)] = time.perf_counter()
        statements.append((statement, parameters))

    def after(conn: Any, cursor: Any, *args: Any) -> None:
        statement_ms.append((time.perf_counter() - started.pop(id(cursor))) * 1000)

    engine = resources.engine.sync_engine
    rng = random.Random(11)
    cache = BoardCache(resources.redis, settings)
    figures: dict[str, dict[str, Any]] = {}
    for name, draw in _combinations(deep).items():
        database: list[float] = []
        server: list[float] = []
        total: list[float] = []
        for n in range(iterations + 3):
            search = draw(rng)
            async with resources.sessionmaker() as session:
                service = BoardService(session=session, settings=settings, cache=cache)
                statement_ms.clear()
                statements.clear()
                event.listen(engine, "before_cursor_execute", before)
                event.listen(engine, "after_cursor_execute", after)
                try:
                    start = time.perf_counter()
                    await service._search_database(search)
                    elapsed = (time.perf_counter() - start) * 1000
                finally:
                    event.remove(engine, "before_cursor_execute", before)
                    event.remove(engine, "after_cursor_execute", after)
                # Same transaction, so the planner options of the search apply.
                server_ms = await _server_ms(session, list(statements))
                await session.rollback()
            if n >= 3:  # the first runs warm the plan and buffer caches
                # Every round trip counts, the planner options' one included.
                database.append(sum(statement_ms))
                server.append(server_ms)
                total.append(elapsed)
        figures[name] = {
            "db": _percentiles(database),
            "server": _percentiles(server),
            "service": _percentiles(total),
        }
        print(
            f"  {name:42s} db p99 {figures[name]['db']['p99_ms']:7.2f} ms, "
            f"in server p99 {figures[name]['server']['p99_ms']:7.2f} ms"
        )
    return figures


# --- 3. the replaced approach ---

LEGACY_TABLE = """
DROP TABLE IF EXISTS legacy_loads;
CREATE TABLE legacy_loads AS
SELECT id, status,
       jsonb_build_object('city', pickup_city, 'state', pickup_state, 'zip', pickup_zip,
                          'lat', ST_Y(pickup_point::geometry), 'lng', ST_X(pickup_point::geometry))
           AS origin,
       jsonb_build_object('city', delivery_city, 'state', delivery_state, 'zip', delivery_zip)
           AS destination,
       equipment_type, haul_type, commodity, gross_revenue_cents / 100.0 AS rate, miles,
       pickup_window_start AS pickup_date
FROM loads;
CREATE INDEX ON legacy_loads (status);
CREATE INDEX ON legacy_loads (equipment_type);
CREATE INDEX ON legacy_loads (haul_type);
CREATE INDEX ON legacy_loads (rate);
CREATE INDEX ON legacy_loads (pickup_date);
VACUUM ANALYZE legacy_loads;
"""


def _legacy_figures(dsn: str, iterations: int, deep_offset: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(13)
    figures: dict[str, dict[str, Any]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in LEGACY_TABLE.split(";"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[call-overload]
        conn.execute("SET jit = off")
        queries = {
            "origin state, first page": lambda: (
                "AND origin->>'state' = %s",
                [rng.choice(STATES)],
                0,
            ),
            "all, deep page": lambda: ("", [], deep_offset),
            "origin state, deep page (OFFSET 2,500)": lambda: (
                "AND origin->>'state' = %s",
                [rng.choice(STATES[:4])],
                2_500,
            ),
        }
        for name, draw in queries.items():
            samples = []
            for n in range(iterations + 2):
                where, params, offset = draw()
                start = time.perf_counter()
                conn.execute(
                    f"SELECT * FROM legacy_loads WHERE status = 'POSTED' {where} "
                    "ORDER BY pickup_date OFFSET %s LIMIT %s",
                    [*params, offset, PAGE],
                ).fetchall()
                conn.execute(
                    f"SELECT count(*) FROM legacy_loads WHERE status = 'POSTED' {where}",
                    params,
                ).fetchone()
                if n >= 2:
                    samples.append((time.perf_counter() - start) * 1000)
            figures[name] = _percentiles(samples)
            print(f"  legacy {name:36s} p99 {figures[name]['p99_ms']:8.2f} ms")
    return figures


# --- 2. HTTP ---


def _query_string(search: BoardSearch) -> str:
    params: dict[str, str] = {"limit": str(search.limit), "sort": search.sort.value}
    if search.origin_state:
        params["originState"] = search.origin_state
    if search.destination_state:
        params["destinationState"] = search.destination_state
    if search.equipment_types:
        params["equipmentType"] = ",".join(search.equipment_types)
    if search.haul_type:
        params["haulType"] = search.haul_type.value
    if search.min_rate_cents:
        params["minRate"] = str(search.min_rate_cents // 100)
    if search.commodity:
        params["commodity"] = search.commodity
    if search.origin:
        params["originLat"], params["originLng"] = str(search.origin.lat), str(search.origin.lng)
        if search.origin.radius_mi:
            params["originRadiusMi"] = str(search.origin.radius_mi)
    return "/loads?" + urllib.parse.urlencode(params)


def _http_paths(count: int) -> list[str]:
    rng = random.Random(17)
    draws = [
        d for name, d in _combinations(None).items() if not name.startswith(("deep", "pickup date"))
    ]
    return [_query_string(rng.choice(draws)(rng)) for _ in range(count)]


async def _open_loop(
    base_url: str, token: str, paths: list[str], *, rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """Send ``rate`` requests/s for ``seconds`` over ``connections`` keep-alive connections."""
    host, port = base_url.removeprefix("http://").split(":")
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0
    rng = random.Random(19)

    async def exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> bool:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return head.startswith(b"HTTP/1.1 200")

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (item := await queue.get()) is not None:
                scheduled, path = item
                try:
                    ok = await asyncio.wait_for(exchange(reader, writer, path), REQUEST_TIMEOUT_S)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                latencies.append((time.perf_counter() - scheduled) * 1000)
                errors += 0 if ok else 1
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    client_cpu_start = time.process_time()
    # Zipf-like popularity: a few searches are run by many carriers at once.
    weights = [1 / (i + 1) for i in range(len(paths))]
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((scheduled, rng.choices(paths, weights)[0]))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {
        **_percentiles(latencies),
        "requests": len(latencies),
        "errors": errors,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        # Share of one core this client used: near 1.0 it, not the server, sets the pace.
        "client_cpu_share": round((time.process_time() - client_cpu_start) / elapsed, 2),
    }


WRK_SCRIPT = """
local paths = {%(paths)s}
local cumulative = {%(cumulative)s}
local think_ms = %(think_ms)f
wrk.headers["Authorization"] = "Bearer %(token)s"

function init(args)
  math.randomseed(os.time())
end

function request()
  local r = math.random() * cumulative[#cumulative]
  local lo, hi = 1, #cumulative
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cumulative[mid] < r then lo = mid + 1 else hi = mid end
  end
  return wrk.format("GET", paths[lo])
end

-- Each connection pauses between requests so that all of them together send
-- about the target rate (a closed loop with think time).
function delay()
  return think_ms * (0.5 + math.random())
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "status_errors": %%d, '
    .. '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _wrk(
    base_url: str, token: str, paths: list[str], *, rate: float, seconds: float, connections: int
) -> dict[str, Any] | None:
    """The same searches and rate from wrk; None when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print("  wrk not found (apt-get install -y wrk): skipping the wrk client")
        return None
    weights = [1 / (i + 1) for i in range(len(paths))]
    cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
    script = WRK_SCRIPT % {
        "paths": ", ".join(json.dumps(p) for p in paths),
        "cumulative": ", ".join(f"{c:.6f}" for c in cumulative),
        "think_ms": 1000 * connections / rate,
        "token": token,
    }
    with tempfile.TemporaryDirectory() as scratch:
        script_path = Path(scratch) / "board.lua"
        script_path.write_text(script)
        command = [
            wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s",
            "--timeout", f"{REQUEST_TIMEOUT_S:g}s", "-s", str(script_path), base_url,
        ]  # fmt: skip
        output = subprocess.run(  # noqa: S603 - fixed command line
            command, capture_output=True, text=True, check=True, timeout=seconds + 60
        ).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK "))
    raw = json.loads(line.removeprefix("WRK "))
    return {
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "errors": raw["socket_errors"] + raw["status_errors"],
        "achieved_rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
    }


def _group_cpu_seconds(group: int) -> float:
    """User and system CPU seconds of the live processes of process group ``group``."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _carrier_token(resources: Resources, settings: Settings) -> str:
    async with resources.sessionmaker() as session:
        user = (
            await session.execute(
                select(User)
                .where(User.role == Role.DISPATCHER)
                .where(User.email.like("dispatch-%"))
                .limit(1)
            )
        ).scalar_one()
    return issue_access_token(
        settings,
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role.value,
        token_version=user.token_version,
    )


@contextmanager
def _server(env: dict[str, str], workers: int) -> Iterator[tuple[str, int]]:
    """Run the api under granian in its own process group; yield its URL and group id."""
    port = free_port()
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "superior_one.app:create_app",
    ]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603 - fixed command line
        command,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the api server did not start")
            time.sleep(0.2)
        yield base_url, process.pid
    finally:
        # Workers outlive a killed granian parent; signal the whole group.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _http_figures(
    database_url: str,
    token: str,
    *,
    rate: float,
    seconds: float,
    connections: int,
    workers: int,
    quick: bool,
) -> dict[str, Any]:
    paths = _http_paths(400)
    figures: dict[str, Any] = {}
    # Without the cache every request runs its queries; that phase runs at a
    # quarter of the rate, which is what two api processes on two cores sustain.
    # A quick run starts one server only (the start alone takes 5 to 20 s here).
    phases = [("cached", "10", rate), ("uncached", "0", rate / 4)][: 1 if quick else 2]
    for label, ttl, phase_rate in phases:
        env = {
            "SO_DATABASE_URL": database_url,
            "SO_REDIS_URL": REDIS_URL,
            "SO_REDIS_NAMESPACE": f"so-bench-loadboard-{label}",
            "SO_JWT_SECRET": JWT_SECRET,
            "SO_LOG_LEVEL": "WARNING",
            "SO_BOARD_CACHE_TTL_S": ttl,
            "SO_DB_POOL_SIZE": "20",
        }
        with _server(env, workers) as (base_url, group):
            # Warm-up: the first request of each process loads the principal.
            asyncio.run(
                _open_loop(base_url, token, paths, rate=50, seconds=2, connections=workers * 4)
            )
            figures[label] = {"load_average_before": load_average()}
            cpu_before = _group_cpu_seconds(group)
            figures[label] |= asyncio.run(
                _open_loop(
                    base_url,
                    token,
                    paths,
                    rate=phase_rate,
                    seconds=seconds,
                    connections=connections,
                )
            )
            # CPU the api processes spent per request: what bounds their throughput
            # when other processes take the cores.
            figures[label]["api_cpu_ms_per_request"] = round(
                (_group_cpu_seconds(group) - cpu_before) * 1000 / figures[label]["requests"], 3
            )
            # In a quick run's 2 s most wrk connections would still be in their first pause.
            figures[label]["wrk"] = (
                None
                if quick
                else _wrk(
                    base_url,
                    token,
                    paths,
                    rate=phase_rate,
                    seconds=seconds,
                    connections=connections,
                )
            )
            figures[label]["load_average_after"] = load_average()
        figures[label]["rate_rps"] = phase_rate
        print(f"  http {label:9s} {figures[label]}")
    return figures


# --- the run ---


def _prepare(settings: Settings, loads: int, reuse: bool, database: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if reuse:
        dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
        try:
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT count(*) FROM loads").fetchone()
                existing = int(row[0]) if row else 0
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            existing = 0
        if existing >= loads:
            # New board indexes reach a reused database too.
            upgrade_to_heads(settings)
            info["seed_seconds"] = None
            return info
    fresh_database(database)
    start = time.perf_counter()
    report = asyncio.run(seed(settings, SeedOptions(loads=loads, seed=2026)))
    info["seed_seconds"] = round(time.perf_counter() - start, 1)
    print(f"seeded {report.loads:,} loads in {info['seed_seconds']} s")
    return info


async def _counts(resources: Resources) -> tuple[int, int]:
    async with resources.engine.connect() as conn:
        result = await conn.exec_driver_sql(
            "SELECT count(*), count(*) FILTER (WHERE status = 'POSTED') FROM loads"
        )
        total, posted = result.one()
    return int(total), int(posted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 loads, short runs")
    parser.add_argument("--loads", type=int, help="loads to seed (default 1,000,000)")
    parser.add_argument("--reuse", action="store_true", help="keep a seeded database")
    parser.add_argument("--rate", type=float, help="HTTP requests per second (open loop)")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="api processes")
    args = parser.parse_args()

    loads = args.loads or (5_000 if args.quick else 1_000_000)
    iterations = 5 if args.quick else 100
    seconds = 2.0 if args.quick else 30.0
    rate = args.rate or (200.0 if args.quick else 400.0)
    database = "so_bench_loadboard_quick" if args.quick else "so_bench_loadboard"
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_namespace="so-bench-loadboard",
        jwt_secret=JWT_SECRET,
        log_level="WARNING",
        board_cache_ttl_s=0,
    )
    started = time.perf_counter()
    load_averages = {"start": load_average()}

    # A quick run keeps its own small database once seeded.
    info = _prepare(settings, loads, args.reuse or args.quick, database)

    async def in_process() -> tuple[Any, ...]:
        async with open_resources(settings) as resources:
            total, posted = await _counts(resources)
            deep = await _deep_cursor(resources, min(DEEP_OFFSET, posted // 2))
            print(f"{total:,} loads, {posted:,} posted; board service:")
            db = await _database_figures(resources, settings, iterations, deep)
            token = await _carrier_token(resources, settings)
        return total, posted, db, token

    load_averages["database_before"] = load_average()
    total, posted, db, token = asyncio.run(in_process())
    load_averages["database_after"] = load_average()
    deep_offset = min(DEEP_OFFSET, posted // 2)
    print("replaced approach:")
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    legacy = _legacy_figures(dsn, max(5, iterations // 5), deep_offset)
    print(f"HTTP, {args.connections} connections, {rate:g} requests/s, {seconds:g} s each:")
    http = _http_figures(
        database_url,
        token,
        rate=rate,
        seconds=seconds,
        connections=args.connections,
        workers=args.workers,
        quick=args.quick,
    )

    new_deep = db["deep page (cursor)"]["db"]["p99_ms"]
    legacy_deep = legacy["all, deep page"]["p99_ms"]
    result = {
        "benchmark": "loadboard",
        "date": now_iso(),
        "machine": machine_description(),
        "quick": args.quick,
        "loads": total,
        "posted": posted,
        "seed_seconds": info.get("seed_seconds"),
        "db_iterations": iterations,
        "db": db,
        "db_p99_ms_max": max(v["db"]["p99_ms"] for v in db.values()),
        "db_server_p99_ms_max": max(v["server"]["p99_ms"] for v in db.values()),
        "service_p99_ms_max": max(v["service"]["p99_ms"] for v in db.values()),
        "legacy": legacy,
        "legacy_deep_page_p99_ms": legacy_deep,
        "new_deep_page_p99_ms": new_deep,
        "deep_page_offset": deep_offset,
        "deep_page_speedup": round(legacy_deep / new_deep, 1) if new_deep else None,
        "http": http,
        "http_p99_ms": http["cached"]["p99_ms"],
        "http_uncached_p99_ms": http["uncached"]["p99_ms"] if "uncached" in http else None,
        "http_concurrency": args.connections,
        "http_rate_rps": rate,
        "http_seconds": seconds,
        "http_workers": args.workers,
        "http_wrk_p99_ms": (http["cached"]["wrk"] or {}).get("p99_ms"),
        "load_averages": {**load_averages, "end": load_average()},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = "loadboard-quick.json" if args.quick else "loadboard.json"
    (RESULTS_DIR / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in result if k not in ("db", "legacy", "http")}, indent=2))


if __name__ == "__main__":
    main()
