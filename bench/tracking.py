"""Benchmark: GPS ingest as built (stream + consumer) against the replaced synchronous ping.

Runs the api under granian on 127.0.0.1 with one gps-consumer process, and
drives it with wrk (Lua scripts that give every request its own driver and fix
time):

1. single pings, ``POST /loads/{id}/gps-ping``, at saturation (``--connections``),
   before the gps-consumer starts: the api's ingest alone, the stream buffering;
2. accept latency: the same route with a few connections (``--latency-connections``);
3. runs 1 and 2 again with the consumer working beside the api (``*_with_consumer``),
   then batches of 500 fixes, ``POST /tracking/pings``;
4. lag: pings paced at a steady rate from Python; the lag of a fix is the time
   from the api accepting it to the consumer's transaction that stores it and
   decides its geofences (``stored_at - received_at`` in ``geo_events``), after
   the consumer has drained everything;
5. the replaced approach (``bench/tracking_apps.py``): load lookup, row insert,
   hand-written distance and status update inside each request, same wrk load.

    .venv/bin/python -m bench.tracking            # about 4 minutes; bench/results/tracking.json
    .venv/bin/python -m bench.tracking --quick    # 3 s phases, 46 s on an idle two-core
                                                  # machine; bench/results/tracking-quick.json

Migrating a fresh database and starting two servers take most of a quick run.
On a machine busy with other work, a quick run can take over a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis as redis_sync

from bench.common import (
    RESULTS_DIR,
    _errors,
    _percentile,
    free_port,
    fresh_database,
    load_average,
    machine_description,
    now_iso,
    server,
)
from bench.tracking_apps import LEGACY_TABLE
from superior_one.auth.tokens import issue_access_token
from superior_one.config import Settings

CLI = Path(sys.executable).with_name("superior-one")
# Seattle, spread over a few kilometres: each bench truck is parked at its pickup.
BASE_LAT, BASE_LNG = 47.60, -122.33

SINGLE_LUA = r"""
local trucks = {}
local counter = 0
function init(args)
  for line in io.lines(args[1]) do
    local load, token, lat, lng = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)")
    trucks[#trucks + 1] = {load, token, lat, lng}
  end
  prefix = args[2] or ""
end
function request()
  counter = counter + 1
  local t = trucks[(counter % #trucks) + 1]
  -- A distinct fix time per request: the second now, the counter as microseconds.
  local stamp = os.date("!%Y-%m-%dT%H:%M:%S", os.time()) ..
                string.format(".%06dZ", counter % 1000000)
  local body = string.format(
    '{"latitude":%s,"longitude":%s,"fixTime":"%s","accuracyM":10,"speedMps":0}',
    t[3], t[4], stamp)
  return wrk.format("POST", prefix .. "/loads/" .. t[1] .. "/gps-ping",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. t[2]}, body)
end
"""

BATCH_LUA = r"""
local trucks = {}
local counter = 0
function init(args)
  for line in io.lines(args[1]) do
    local load, token, lat, lng = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)")
    trucks[#trucks + 1] = {load, token, lat, lng}
  end
end
function request()
  counter = counter + 1
  local t = trucks[(counter % #trucks) + 1]
  local round = math.floor(counter / #trucks)
  -- 500 fixes a second apart from 60 h ago (ingest accepts up to 72 h), a new
  -- stretch each time the truck comes round again.
  local base = os.time() - 60 * 3600 + round * 500
  local fixes = {}
  for i = 0, 499 do
    fixes[#fixes + 1] = string.format(
      '{"latitude":%s,"longitude":%s,"fixTime":"%s","accuracyM":10,"speedMps":0}',
      t[3], t[4], os.date("!%Y-%m-%dT%H:%M:%SZ", base + i))
  end
  local body = '{"loadId":"' .. t[1] .. '","fixes":[' .. table.concat(fixes, ",") .. ']}'
  return wrk.format("POST", "/tracking/pings",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. t[2]}, body)
end
"""


@dataclass(frozen=True)
class Truck:
    load_id: uuid.UUID
    driver_id: uuid.UUID
    lat: float
    lng: float


def _setup(dsn: str, settings: Settings, count: int) -> tuple[uuid.UUID, list[Truck]]:
    """Shipper, carrier, ``count`` drivers and RELEASED loads, parked at their pickups."""
    now = datetime.now(UTC)
    shipper, carrier = uuid.uuid4(), uuid.uuid4()
    trucks = []
    with psycopg.connect(dsn) as conn:
        conn.execute(LEGACY_TABLE)
        conn.execute(
            "INSERT INTO organizations (id, name, type, is_verified) VALUES "
            "(%s, 'Bench Shipper', 'SHIPPER', true), (%s, 'Bench Carrier', 'CARRIER', true)",
            (shipper, carrier),
        )
        users, loads = [], []
        for i in range(count):
            driver, load = uuid.uuid4(), uuid.uuid4()
            lat = BASE_LAT + (i % 50) * 0.002
            lng = BASE_LNG + (i // 50) * 0.002
            trucks.append(Truck(load, driver, lat, lng))
            users.append((driver, carrier, f"bench-driver-{i}@example.com", "x", "DRIVER"))
            loads.append((load, shipper, carrier, driver, lng, lat, now))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO users (id, organization_id, email, password_hash, role) "
                "VALUES (%s, %s, %s, %s, %s)",
                users,
            )
            cur.executemany(
                """
                INSERT INTO loads (id, shipper_organization_id, status, pickup_city,
                    pickup_state, pickup_zip, pickup_time_zone, pickup_point,
                    pickup_window_start, pickup_window_end, delivery_city, delivery_state,
                    delivery_zip, delivery_time_zone, delivery_point, delivery_window_start,
                    delivery_window_end, equipment_type, haul_type, load_type, commodity,
                    weight_lbs, rate_cents, rate_mode, miles, gross_revenue_cents,
                    assigned_carrier_organization_id, assigned_driver_user_id, released_at)
                VALUES (%s, %s, 'RELEASED', 'Seattle', 'WA', '98101', 'America/Los_Angeles',
                    ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                    %s - interval '1 hour', now() + interval '3 hours', 'Tacoma', 'WA', '98402',
                    'America/Los_Angeles', ST_SetSRID(ST_MakePoint(-122.4443, 47.2529), 4326),
                    now(), now() + interval '8 hours', 'DRY_VAN', 'LOCAL', 'FULL_TRUCKLOAD',
                    'Bench freight', 30000, 50000, 'FLAT', 34.2, 50000, %s, %s, now())
                """,
                [
                    (load, shipper, lng, lat, ts, car, drv)
                    for load, shipper, car, drv, lng, lat, ts in loads
                ],
            )
    return carrier, trucks


def _trucks_file(settings: Settings, carrier: uuid.UUID, trucks: list[Truck]) -> Path:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - wrk reads it by name
        "w", suffix=".tsv", delete=False, prefix="so-bench-trucks-"
    )
    with handle:
        for truck in trucks:
            token = issue_access_token(
                settings,
                user_id=truck.driver_id,
                organization_id=carrier,
                role="DRIVER",
                token_version=1,
            )
            handle.write(f"{truck.load_id}\t{token}\t{truck.lat}\t{truck.lng}\n")
    return Path(handle.name)


def _lua(source: str) -> Path:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - wrk reads it by name
        "w", suffix=".lua", delete=False, prefix="so-bench-"
    )
    with handle:
        handle.write(source)
    return Path(handle.name)


def run_wrk_script(
    url: str, script: Path, args: list[str], *, seconds: int, connections: int
) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    command = [wrk, "--latency", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
               "-s", str(script), url, "--", *args]  # fmt: skip
    output = subprocess.run(  # noqa: S603 - fixed command line
        command, capture_output=True, text=True, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _percentile(output, "50%"),
        "p99_ms": _percentile(output, "99%"),
        "errors": float(_errors(output)),
    }


@contextlib.contextmanager
def consumer_process(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [str(CLI), "gps-consumer", "--name", "bench-1"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_drained(settings: Settings, timeout_s: float) -> float:
    """Seconds until the stream is empty and nothing is pending."""
    client = redis_sync.Redis.from_url(settings.redis_url)
    stream = f"{settings.redis_namespace}:gps:stream"
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            if client.xlen(stream) == 0:
                return time.monotonic() - started
            time.sleep(0.2)
    finally:
        client.close()
    raise RuntimeError(f"the consumer did not drain the stream in {timeout_s} s")


async def _paced(
    url: str, settings: Settings, carrier: uuid.UUID, trucks: list[Truck], rate: int, seconds: int
) -> dict[str, float]:
    """Send ``rate`` single pings a second for ``seconds``, tagged for the lag query."""
    headers = {
        t.driver_id: {
            "Authorization": "Bearer "
            + issue_access_token(
                settings,
                user_id=t.driver_id,
                organization_id=carrier,
                role="DRIVER",
                token_version=1,
            )
        }
        for t in trucks
    }
    latencies: list[float] = []
    errors = 0

    async def send(http: httpx.AsyncClient, truck: Truck) -> None:
        nonlocal errors
        body = {
            "latitude": truck.lat,
            "longitude": truck.lng,
            "fixTime": datetime.now(UTC).isoformat(),
            "accuracyM": 10,
            "speedMps": 0,
            "source": "lag-probe",
        }
        started = time.perf_counter()
        response = await http.post(
            f"/loads/{truck.load_id}/gps-ping", json=body, headers=headers[truck.driver_id]
        )
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 202:
            errors += 1

    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as http:
        tasks = []
        start = time.monotonic()
        for n in range(rate * seconds):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(http, trucks[n % len(trucks)])))
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    latencies.sort()
    return {
        "sent": float(len(latencies)),
        "achieved_per_s": round(len(latencies) / elapsed, 1),
        "errors": float(errors),
        "client_p50_ms": round(latencies[len(latencies) // 2], 2),
        "client_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


def _lag(dsn: str, since: datetime) -> dict[str, float]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM stored_at - received_at)) "
            "FROM geo_events WHERE source = 'lag-probe' AND received_at > %s",
            (since,),
        ).fetchone()
    assert row is not None
    count, (p50, p99) = row
    return {"fixes": float(count), "p50_ms": round(p50 * 1000, 1), "p99_ms": round(p99 * 1000, 1)}


def _decision_histogram(port: int) -> dict[str, float]:
    """The consumer's own ping-to-decision histogram (cumulative counts by bucket)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    buckets = {}
    for match in re.finditer(r'so_gps_ping_to_decision_seconds_bucket\{le="([^"]+)"\} (\S+)', text):
        buckets[match.group(1)] = float(match.group(2))
    return buckets


def _stored(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM geo_events").fetchone()
    return int(row[0]) if row else 0


def _flush_namespace(settings: Settings) -> None:
    client = redis_sync.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{settings.redis_namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, under a minute")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (saturation)")
    parser.add_argument("--latency-connections", type=int, default=8)
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="granian worker processes")
    parser.add_argument("--rate", type=int, default=333, help="pings/s of the lag phase")
    parser.add_argument("--wrk-trucks", type=int, default=200, help="trucks wrk cycles through")
    args = parser.parse_args()
    seconds = 3 if args.quick else 15
    lag_seconds = 3 if args.quick else 20
    warm_up = 2 if args.quick else 5
    truck_count = 500 if args.quick else 2000

    load_before = load_average()
    database_url = fresh_database("so_bench_tracking")
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    namespace = f"so-bench-tracking-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        database_url=database_url,
        redis_namespace=namespace,
        log_level="WARNING",
        access_token_ttl_s=3600,
    )
    carrier, trucks = _setup(dsn, settings, truck_count + args.rate)
    lag_trucks, trucks = trucks[: args.rate], trucks[args.rate :]
    # wrk cycles through this many trucks, so each api process's caches (principal,
    # load) are warm after the warm-up run, as they are for trucks pinging every 30 s.
    trucks = trucks[: args.wrk_trucks]
    trucks_file = _trucks_file(settings, carrier, trucks)
    single_lua, batch_lua = _lua(SINGLE_LUA), _lua(BATCH_LUA)
    metrics_port = free_port()
    env = {
        "SO_DATABASE_URL": database_url,
        "SO_REDIS_NAMESPACE": namespace,
        "SO_LOG_LEVEL": "WARNING",
        "SO_ACCESS_TOKEN_TTL_S": "3600",
        "SO_METRICS_PORT_GPS_CONSUMER": str(metrics_port),
    }
    wrk = {"seconds": seconds}
    try:
        with server("superior_one.app:create_app", env, workers=args.workers) as url:
            run_wrk_script(url, single_lua, [str(trucks_file)], seconds=warm_up, connections=8)
            # One ping from each lag-phase truck first, for the same warm caches.
            asyncio.run(_paced(url, settings, carrier, lag_trucks, args.rate, 1))
            # Ingest alone, as in a burst: the stream buffers the fixes and the consumer,
            # started next, works through them. On two shared cores a running consumer
            # takes CPU from the api, so the same runs are repeated with it below.
            single = run_wrk_script(
                url, single_lua, [str(trucks_file)], connections=args.connections, **wrk
            )
            accept = run_wrk_script(
                url, single_lua, [str(trucks_file)], connections=args.latency_connections, **wrk
            )
            with consumer_process(env):
                _wait_drained(settings, 300)
                single_consuming = run_wrk_script(
                    url, single_lua, [str(trucks_file)], connections=args.connections, **wrk
                )
                accept_consuming = run_wrk_script(
                    url,
                    single_lua,
                    [str(trucks_file)],
                    connections=args.latency_connections,
                    **wrk,
                )
                batched = run_wrk_script(
                    url, batch_lua, [str(trucks_file)], connections=args.batch_connections, **wrk
                )
                drain_s = _wait_drained(settings, 300)
                lag_started = datetime.now(UTC)
                paced = asyncio.run(
                    _paced(url, settings, carrier, lag_trucks, args.rate, lag_seconds)
                )
                _wait_drained(settings, 120)
                time.sleep(1.0)
                lag = _lag(dsn, lag_started)
                histogram = _decision_histogram(metrics_port)
                stored = _stored(dsn)
        with server("bench.tracking_apps:create_legacy_app", env, workers=args.workers) as url:
            run_wrk_script(url, single_lua, [str(trucks_file), "/legacy"], seconds=2, connections=8)
            legacy = run_wrk_script(
                url, single_lua, [str(trucks_file), "/legacy"], connections=args.connections, **wrk
            )
            legacy_accept = run_wrk_script(
                url,
                single_lua,
                [str(trucks_file), "/legacy"],
                connections=args.latency_connections,
                **wrk,
            )
    finally:
        _flush_namespace(settings)
        for path in (trucks_file, single_lua, batch_lua):
            path.unlink(missing_ok=True)

    result: dict[str, Any] = {
        "date": now_iso(),
        "machine": machine_description(),
        # Other work on the machine inflates every latency figure: check these first.
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "command": "python -m bench.tracking" + (" --quick" if args.quick else ""),
        "server": f"granian, {args.workers} workers; 1 gps-consumer process",
        "load": f"wrk, 1 thread, {seconds} s per run, cycling through {len(trucks)} trucks",
        "single_rps": round(single["rps"], 1),
        "single_p50_ms": single["p50_ms"],
        "single_p99_ms": single["p99_ms"],
        "single_connections": args.connections,
        "accept_rps": round(accept["rps"], 1),
        "accept_p50_ms": accept["p50_ms"],
        "accept_p99_ms": accept["p99_ms"],
        "accept_connections": args.latency_connections,
        # The same two runs with the gps-consumer working beside the api.
        "single_with_consumer_rps": round(single_consuming["rps"], 1),
        "single_with_consumer_p99_ms": single_consuming["p99_ms"],
        "accept_with_consumer_rps": round(accept_consuming["rps"], 1),
        "accept_with_consumer_p50_ms": accept_consuming["p50_ms"],
        "accept_with_consumer_p99_ms": accept_consuming["p99_ms"],
        "batched_requests_per_s": round(batched["rps"], 1),
        "batched_pings_per_s": round(batched["rps"] * 500, 1),
        "batched_p99_ms": batched["p99_ms"],
        "batched_connections": args.batch_connections,
        "drain_after_load_s": round(drain_s, 1),
        "lag_rate_pings_per_s": args.rate,
        "lag_seconds": lag_seconds,
        "lag_fixes": lag["fixes"],
        "lag_p50_ms": lag["p50_ms"],
        "lag_p99_ms": lag["p99_ms"],
        # The Python sender's own rate: below lag_rate_pings_per_s when it (on the same
        # two cores) could not keep up; lag is measured on the fixes it did send.
        "lag_achieved_pings_per_s": paced["achieved_per_s"],
        "lag_errors": paced["errors"],
        "consumer_decision_histogram": histogram,
        "fixes_stored": stored,
        "legacy_single_rps": round(legacy["rps"], 1),
        "legacy_single_p50_ms": legacy["p50_ms"],
        "legacy_single_p99_ms": legacy["p99_ms"],
        "legacy_accept_rps": round(legacy_accept["rps"], 1),
        "legacy_accept_p99_ms": legacy_accept["p99_ms"],
        "errors": {
            "single": single["errors"],
            "accept": accept["errors"],
            "single_with_consumer": single_consuming["errors"],
            "accept_with_consumer": accept_consuming["errors"],
            "batched": batched["errors"],
            "legacy": legacy["errors"],
            "legacy_accept": legacy_accept["errors"],
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = "tracking-quick.json" if args.quick else "tracking.json"
    (RESULTS_DIR / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
