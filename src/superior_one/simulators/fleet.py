"""Fleet simulator and recorded-drive replay: GPS traffic for a running platform.

``superior-one simulate-fleet`` prepares, directly in the database, a shipper,
a carrier and one driver with one RELEASED load per truck (pickup window open
now), then drives every truck in real time and posts its fixes to the api over
HTTP with the driver's own access token, as the phone app does:

1. approach: from 1.2 km away to the pickup at 12 m/s;
2. dwell at the pickup long enough for the arrival rule;
3. drive along the US freeway graph (scgraph) to the delivery at 24-29 m/s;
4. dwell at the delivery, then stop reporting.

Fixes carry GPS noise (a normal error of half the stated accuracy), a few are
coarse cell-tower fixes, and a share of trucks cross a dead zone: they keep
their fixes and send them late, as one batch, when the signal returns. Loads
move through pickup and delivery only by the geofences the gps-consumer
evaluates; the simulator never changes a status after the release.

``superior-one replay-track FILE`` replays a real recorded drive (one truck)
as a catch-up upload of batches.

Traffic goes only to a loopback api; tokens are issued with the platform's
own secret, since the simulated drivers have no passwords.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.passwords import PasswordService
from superior_one.auth.tokens import issue_access_token
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.geo.geodesy import (
    METRES_PER_MILE,
    WGS84,
    LatLng,
    destination,
    distance_m,
    distances_m,
    step_distances_m,
)
from superior_one.geo.roads import road_network
from superior_one.geo.zips import ZipPlace, seed_pool
from superior_one.loads.lifecycle import Actor, record_event, transition_load
from superior_one.loads.models import (
    HaulType,
    Load,
    LoadEvent,
    LoadStatus,
    LoadType,
    RateMode,
)
from superior_one.loads.repository import point_ewkt
from superior_one.resources import open_resources
from superior_one.tracking.models import FraudFlag, GeofenceEventRow
from superior_one.tracking.recorded_drive import read_recorded_drive, shift_to
from superior_one.tracking.rules import GEOFENCE_RULES

log = structlog.get_logger(__name__)
console = Console()

SHIPPER_NAME = "Fleet Simulator Shipper"
CARRIER_NAME = "Fleet Simulator Carrier"
EMAIL_DOMAIN = "fleet-simulator.example"
ACTOR = Actor.system("fleet simulator")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

APPROACH_M = 1200.0
APPROACH_SPEED_MPS = 12.0
CRUISE_SPEED_MPS = (24.0, 29.0)
GOOD_ACCURACY_M = (4.0, 15.0)
COARSE_SHARE = 0.02
COARSE_ACCURACY_M = (800.0, 1500.0)
DEAD_ZONE_S = (90.0, 240.0)
ROUTE_STEP_M = 200.0
SETUP_CHUNK = 200
MAX_BATCH = 500
JSON_HEADERS = {"Content-Type": "application/json"}


# --- the truck's motion: pure, so it can be tested without a clock ---


@dataclass(frozen=True, slots=True)
class State:
    point: LatLng
    speed_mps: float
    heading_deg: float | None
    phase: str  # approach, pickup, driving, delivery, done


@dataclass(slots=True)
class Trip:
    """A truck's whole trip as a function of the seconds since it started."""

    path: list[LatLng]  # approach start -> pickup -> freeway ... -> delivery
    pickup_index: int  # index of the pickup in ``path``
    cruise_mps: float
    dwell_s: float
    cumulative_m: list[float] = field(init=False)
    timeline: list[tuple[float, str]] = field(init=False)

    def __post_init__(self) -> None:
        steps = step_distances_m([p.lat for p in self.path], [p.lng for p in self.path])
        self.cumulative_m = [0.0, *(float(x) for x in steps.cumsum())]
        approach_s = self.cumulative_m[self.pickup_index] / APPROACH_SPEED_MPS
        drive_s = (self.cumulative_m[-1] - self.cumulative_m[self.pickup_index]) / self.cruise_mps
        # Phase ends, in seconds since the start.
        self.timeline = []
        end = 0.0
        for length, phase in (
            (approach_s, "approach"),
            (self.dwell_s, "pickup"),
            (drive_s, "driving"),
            (self.dwell_s, "delivery"),
        ):
            end += length
            self.timeline.append((end, phase))

    @property
    def duration_s(self) -> float:
        return self.timeline[-1][0]

    @property
    def driving_window_s(self) -> tuple[float, float]:
        return self.timeline[1][0], self.timeline[2][0]

    def at(self, elapsed_s: float) -> State:
        approach_end, pickup_end, driving_end, delivery_end = (t for t, _ in self.timeline)
        pickup_m = self.cumulative_m[self.pickup_index]
        if elapsed_s < approach_end:
            return self._moving(elapsed_s * APPROACH_SPEED_MPS, APPROACH_SPEED_MPS, "approach")
        if elapsed_s < pickup_end:
            return State(self.path[self.pickup_index], 0.0, None, "pickup")
        if elapsed_s < driving_end:
            along = pickup_m + (elapsed_s - pickup_end) * self.cruise_mps
            return self._moving(along, self.cruise_mps, "driving")
        phase = "delivery" if elapsed_s < delivery_end else "done"
        return State(self.path[-1], 0.0, None, phase)

    def _moving(self, along_m: float, speed: float, phase: str) -> State:
        index = min(bisect.bisect_right(self.cumulative_m, along_m), len(self.path) - 1)
        start, end = self.path[index - 1], self.path[index]
        leg = self.cumulative_m[index] - self.cumulative_m[index - 1]
        if leg <= 0:
            return State(end, speed, None, phase)
        azimuth = bearing(start, end)
        point = destination(start, azimuth, along_m - self.cumulative_m[index - 1])
        return State(point, speed, azimuth % 360.0, phase)


def plan_trip(
    rng: random.Random, origin: LatLng, trip_km: tuple[float, float], dwell_s: float
) -> Trip | None:
    """Plan a trip on the freeway graph near ``origin``; None where the graph does not reach."""
    network = road_network()
    length_m = rng.uniform(*trip_km) * 1000.0
    target = destination(origin, rng.uniform(0.0, 360.0), length_m * 3.0)
    route = network.route(origin, target)
    if route.estimated or len(route.points) < 4:
        return None
    freeway = route.densified(ROUTE_STEP_M)[1:-1]  # graph nodes only: the truck is on the road
    steps = step_distances_m([p.lat for p in freeway], [p.lng for p in freeway])
    cumulative = [0.0, *(float(x) for x in steps.cumsum())]
    if cumulative[-1] < length_m:
        return None
    end = bisect.bisect_left(cumulative, length_m) + 1
    path = freeway[:end]
    fence_gap = 2 * GEOFENCE_RULES.default_radius_m + GEOFENCE_RULES.exit_margin_m + 1000.0
    if distance_m(path[0], path[-1]) < fence_gap:
        return None  # a loop back near the pickup: the fences would overlap
    # The approach comes in along the freeway's own direction, from behind the pickup.
    first_leg = destination(path[0], bearing(path[1], path[0]), APPROACH_M)
    return Trip(
        path=[first_leg, *path],
        pickup_index=1,
        cruise_mps=rng.uniform(*CRUISE_SPEED_MPS),
        dwell_s=dwell_s,
    )


def bearing(a: LatLng, b: LatLng) -> float:
    """Azimuth of the geodesic from ``a`` to ``b``, in degrees clockwise from north."""
    azimuth, _, _ = WGS84.inv(a.lng, a.lat, b.lng, b.lat)
    return float(azimuth)


def noisy_fix(
    rng: random.Random, state: State, fix_time: datetime, client_fix_id: str
) -> dict[str, Any]:
    """Make a fix as a phone reports it: position with error, accuracy, speed, heading."""
    coarse = rng.random() < COARSE_SHARE
    accuracy = rng.uniform(*(COARSE_ACCURACY_M if coarse else GOOD_ACCURACY_M))
    # 68 % of fixes within the accuracy radius: a normal error of sigma = accuracy / 1.5.
    error = abs(rng.gauss(0.0, accuracy / 1.5))
    point = destination(state.point, rng.uniform(0.0, 360.0), error)
    speed = max(0.0, state.speed_mps + rng.gauss(0.0, 0.3)) if state.speed_mps else 0.0
    return {
        "latitude": round(point.lat, 7),
        "longitude": round(point.lng, 7),
        "fixTime": fix_time.isoformat(timespec="milliseconds"),
        "accuracyM": round(accuracy, 1),
        "speedMps": None if coarse else round(speed, 2),
        "headingDeg": None if coarse or state.heading_deg is None else round(state.heading_deg, 1),
        "source": "network" if coarse else "gps",
        "clientFixId": client_fix_id,
    }


# --- preparing loads in the database ---


@dataclass(slots=True)
class SimTruck:
    index: int
    driver_id: uuid.UUID
    load_id: uuid.UUID
    trip: Trip
    dead_zone: tuple[float, float] | None  # seconds since the start, during driving


@dataclass(slots=True)
class Fleet:
    run_id: str
    carrier_id: uuid.UUID
    trucks: list[SimTruck]


def check_loopback(api_url: str) -> None:
    host = urlsplit(api_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the simulator only talks to a local api (127.0.0.1), not {host!r}")


async def _organization(session: Any, name: str, kind: OrganizationType) -> Organization:
    found = (
        await session.execute(select(Organization).where(Organization.name == name))
    ).scalar_one_or_none()
    if found is not None:
        return found  # type: ignore[no-any-return]
    organization = Organization(name=name, type=kind, is_verified=True)
    session.add(organization)
    await session.flush()
    return organization


def _nearest_place(pool: Sequence[ZipPlace], point: LatLng) -> ZipPlace:
    metres = distances_m(point.lat, point.lng, [p.lat for p in pool], [p.lng for p in pool])
    return pool[int(metres.argmin())]


async def prepare_fleet(
    settings: Settings,
    trips: Sequence[Trip],
    *,
    pickup_window: tuple[datetime, datetime],
    delivery_window: tuple[datetime, datetime],
    rng: random.Random,
    dead_zone_share: float,
) -> Fleet:
    """Create one driver and one RELEASED load per trip, through the load lifecycle."""
    run_id = uuid.uuid4().hex[:8]
    pool = seed_pool()
    # The drivers never log in: one unusable password for all of them.
    password_hash = PasswordService(settings).hash(uuid.uuid4().hex)
    trucks: list[SimTruck] = []
    async with open_resources(settings, pool_size=2) as resources:
        async with unit_of_work(resources.sessionmaker) as session:
            shipper = await _organization(session, SHIPPER_NAME, OrganizationType.SHIPPER)
            carrier = await _organization(session, CARRIER_NAME, OrganizationType.CARRIER)
            shipper_id, carrier_id = shipper.id, carrier.id
        for start in range(0, len(trips), SETUP_CHUNK):
            async with unit_of_work(resources.sessionmaker) as session:
                for index in range(start, min(start + SETUP_CHUNK, len(trips))):
                    trip = trips[index]
                    driver = User(
                        organization_id=carrier_id,
                        email=f"driver-{run_id}-{index}@{EMAIL_DOMAIN}",
                        full_name=f"Simulated Driver {index}",
                        password_hash=password_hash,
                        role=Role.DRIVER,
                    )
                    session.add(driver)
                    await session.flush()
                    load_id = await _released_load(
                        session,
                        shipper_id,
                        carrier_id,
                        driver.id,
                        trip,
                        pool,
                        pickup_window,
                        delivery_window,
                        reference=f"SIM-{run_id}-{index}",
                    )
                    dead_zone = None
                    if rng.random() < dead_zone_share:
                        begin, end = trip.driving_window_s
                        length = rng.uniform(*DEAD_ZONE_S)
                        if end - begin > length:
                            opens = rng.uniform(begin, end - length)
                            dead_zone = (opens, opens + length)
                    trucks.append(SimTruck(index, driver.id, load_id, trip, dead_zone))
            console.print(f"  prepared {len(trucks)}/{len(trips)} trucks")
    return Fleet(run_id, carrier_id, trucks)


async def _released_load(
    session: Any,
    shipper_id: uuid.UUID,
    carrier_id: uuid.UUID,
    driver_id: uuid.UUID,
    trip: Trip,
    pool: Sequence[ZipPlace],
    pickup_window: tuple[datetime, datetime],
    delivery_window: tuple[datetime, datetime],
    *,
    reference: str,
) -> uuid.UUID:
    pickup, delivery = trip.path[trip.pickup_index], trip.path[-1]
    pickup_place, delivery_place = _nearest_place(pool, pickup), _nearest_place(pool, delivery)
    miles = Decimal(str(round((trip.cumulative_m[-1] - trip.cumulative_m[1]) / METRES_PER_MILE, 1)))
    load = Load(
        shipper_organization_id=shipper_id,
        status=LoadStatus.DRAFT,
        reference=reference,
        pickup_city=pickup_place.city,
        pickup_state=pickup_place.state,
        pickup_zip=pickup_place.zip_code,
        pickup_time_zone=pickup_place.time_zone,
        pickup_point=point_ewkt(pickup.lat, pickup.lng),
        pickup_window_start=pickup_window[0],
        pickup_window_end=pickup_window[1],
        delivery_city=delivery_place.city,
        delivery_state=delivery_place.state,
        delivery_zip=delivery_place.zip_code,
        delivery_time_zone=delivery_place.time_zone,
        delivery_point=point_ewkt(delivery.lat, delivery.lng),
        delivery_window_start=delivery_window[0],
        delivery_window_end=delivery_window[1],
        equipment_type="DRY_VAN",
        haul_type=HaulType.LOCAL,
        load_type=LoadType.FULL_TRUCKLOAD,
        commodity="Simulated freight",
        weight_lbs=30_000,
        rate_cents=50_000,
        rate_mode=RateMode.FLAT,
        miles=miles,
        gross_revenue_cents=50_000,
    )
    session.add(load)
    await session.flush()
    await record_event(session, load.id, None, LoadStatus.DRAFT, ACTOR, reason="simulated load")
    await transition_load(session, load.id, LoadStatus.POSTED, ACTOR)
    await transition_load(
        session,
        load.id,
        LoadStatus.ASSIGNED,
        ACTOR,
        changes={"assigned_carrier_organization_id": carrier_id},
    )
    await transition_load(
        session,
        load.id,
        LoadStatus.RELEASED,
        ACTOR,
        changes={"assigned_driver_user_id": driver_id},
    )
    return load.id


# --- driving ---


@dataclass(slots=True)
class Tally:
    requests: Counter[str] = field(default_factory=Counter)  # "single 202", "batch 202", ...
    fixes: Counter[str] = field(default_factory=Counter)  # accepted / duplicate / rejected:<reason>
    latencies_ms: list[float] = field(default_factory=list)
    late_fixes: int = 0
    transport_errors: int = 0

    def record(self, kind: str, response: httpx.Response, elapsed_ms: float) -> None:
        self.requests[f"{kind} {response.status_code}"] += 1
        self.latencies_ms.append(elapsed_ms)
        try:
            body = response.json()
        except ValueError:
            return
        for result in body.get("results", []):
            status = result["status"]
            self.fixes[status if status != "rejected" else f"rejected:{result['reason']}"] += 1


class TokenBook:
    """Drivers' access tokens, issued again before they expire."""

    def __init__(self, settings: Settings, carrier_id: uuid.UUID) -> None:
        self.settings = settings
        self.carrier_id = carrier_id
        self._tokens: dict[uuid.UUID, tuple[str, float]] = {}

    def headers(self, driver_id: uuid.UUID) -> dict[str, str]:
        token, issued = self._tokens.get(driver_id, ("", 0.0))
        if time.monotonic() - issued > self.settings.access_token_ttl_s / 2:
            token = issue_access_token(
                self.settings,
                user_id=driver_id,
                organization_id=self.carrier_id,
                role=Role.DRIVER.value,
                token_version=1,
            )
            self._tokens[driver_id] = (token, time.monotonic())
        return {"Authorization": f"Bearer {token}"}


async def _post(
    http: httpx.AsyncClient,
    tally: Tally,
    kind: str,
    url: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    started = time.perf_counter()
    try:
        response = await http.post(
            url, content=orjson.dumps(body), headers={**headers, **JSON_HEADERS}
        )
    except httpx.HTTPError:
        tally.transport_errors += 1
        return
    tally.record(kind, response, (time.perf_counter() - started) * 1000)


async def drive_truck(
    truck: SimTruck,
    http: httpx.AsyncClient,
    tokens: TokenBook,
    tally: Tally,
    *,
    interval_s: float,
    offset_s: float,
    deadline: float,
    rng: random.Random,
) -> None:
    """Report the truck's position every ``interval_s`` seconds until it is done."""
    started = time.monotonic() + offset_s
    stored: list[dict[str, Any]] = []  # fixes kept through a dead zone
    sequence = 0
    while True:
        wake = started + sequence * interval_s
        if wake > deadline:
            return
        if wake > time.monotonic():
            await asyncio.sleep(wake - time.monotonic())
        # The position is taken at the real elapsed time, so a simulator that falls
        # behind under load still reports positions that match the fix times.
        elapsed = time.monotonic() - started
        state = truck.trip.at(elapsed)
        sequence = math.floor(elapsed / interval_s) + 1
        if state.phase == "done":
            break
        fix = noisy_fix(rng, state, datetime.now(UTC), f"{truck.index}-{sequence}")
        zone = truck.dead_zone
        if zone is not None and zone[0] <= elapsed < zone[1]:
            stored.append(fix)
            continue
        headers = tokens.headers(truck.driver_id)
        if stored:
            tally.late_fixes += len(stored)
            batch = {"loadId": str(truck.load_id), "fixes": stored[:MAX_BATCH]}
            await _post(http, tally, "batch", "/tracking/pings", batch, headers)
            stored = []
        await _post(http, tally, "single", f"/loads/{truck.load_id}/gps-ping", fix, headers)
    if stored:
        batch = {"loadId": str(truck.load_id), "fixes": stored[:MAX_BATCH]}
        await _post(http, tally, "batch", "/tracking/pings", batch,
                    tokens.headers(truck.driver_id))  # fmt: skip


async def simulate_fleet(
    settings: Settings,
    *,
    trucks: int,
    interval_s: float,
    duration_s: float,
    api_url: str,
    trip_km: tuple[float, float] = (4.0, 8.0),
    dead_zone_share: float = 0.2,
    seed: int = 7,
    settle_s: float = 15.0,
) -> dict[str, Any]:
    """Prepare ``trucks`` released loads, drive them, and return a summary."""
    check_loopback(api_url)
    # One line per request would drown the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    rng = random.Random(seed)  # noqa: S311 - simulation, reproducible by seed
    # Arrival needs several fixes over a minute: stay long enough at each stop.
    dwell_s = max(240.0, 4 * interval_s + 30.0)

    console.print(f"Planning {trucks} freeway trips ...")
    pool = [p for p in seed_pool() if p.active]
    trips: list[Trip] = []
    while len(trips) < trucks:
        place = rng.choice(pool)
        trip = plan_trip(rng, place.point, trip_km, dwell_s)
        if trip is not None:
            trips.append(trip)
    now = datetime.now(UTC)
    fleet = await prepare_fleet(
        settings,
        trips,
        pickup_window=(now - timedelta(minutes=30), now + timedelta(hours=3)),
        delivery_window=(now, now + timedelta(hours=8)),
        rng=rng,
        dead_zone_share=dead_zone_share,
    )

    tally = Tally()
    tokens = TokenBook(settings, fleet.carrier_id)
    longest = max(t.trip.duration_s for t in fleet.trucks)
    console.print(
        f"Driving {trucks} trucks (run {fleet.run_id}), a fix every {interval_s:g} s; "
        f"longest trip {longest / 60:.1f} min; stopping after {duration_s:g} s at the latest"
    )
    started = time.monotonic()
    deadline = started + duration_s
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=30.0) as http:
        tasks = [
            asyncio.create_task(
                drive_truck(
                    truck,
                    http,
                    tokens,
                    tally,
                    interval_s=interval_s,
                    offset_s=rng.uniform(0.0, interval_s),
                    deadline=deadline,
                    rng=random.Random(seed * 100_003 + truck.index),  # noqa: S311
                )
            )
            for truck in fleet.trucks
        ]
        progress = asyncio.create_task(_report_progress(tally, started, tasks))
        await asyncio.gather(*tasks)
        progress.cancel()
    driven_s = time.monotonic() - started
    # The consumer decides a moment after the last fix; give it time to finish.
    await asyncio.sleep(min(settle_s, max(0.0, deadline - time.monotonic()) + settle_s))
    outcome = await fleet_outcome(settings, fleet)
    return {
        "run": fleet.run_id,
        "trucks": trucks,
        "interval_s": interval_s,
        "driven_s": round(driven_s, 1),
        "requests": dict(tally.requests),
        "fixes": dict(tally.fixes),
        "late_fixes_sent_in_batches": tally.late_fixes,
        "transport_errors": tally.transport_errors,
        "latency_ms": _percentiles(tally.latencies_ms),
        **outcome,
    }


async def _report_progress(tally: Tally, started: float, tasks: list[asyncio.Task[None]]) -> None:
    while True:
        await asyncio.sleep(30.0)
        done = sum(1 for t in tasks if t.done())
        sent = sum(tally.requests.values())
        console.print(
            f"  {time.monotonic() - started:6.0f} s: {sent} requests {dict(tally.requests)}, "
            f"{done}/{len(tasks)} trucks done, fixes {dict(tally.fixes)}"
        )


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)], 2),
    }


async def fleet_outcome(settings: Settings, fleet: Fleet) -> dict[str, Any]:
    """Report where the fleet's loads ended up, and who moved them past RELEASED."""
    load_ids = [t.load_id for t in fleet.trucks]
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        statuses = Counter(
            str(s)
            for s in (await session.execute(select(Load.status).where(Load.id.in_(load_ids))))
            .scalars()
            .all()
        )
        movers = Counter(
            f"{row.to_status}:{row.actor_kind}"
            for row in await session.execute(
                select(LoadEvent.to_status, LoadEvent.actor_kind).where(
                    LoadEvent.load_id.in_(load_ids),
                    LoadEvent.to_status.in_([LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED]),
                )
            )
        )
        fence = Counter(
            str(t)
            for t in (
                await session.execute(
                    select(GeofenceEventRow.event_type).where(
                        GeofenceEventRow.load_id.in_(load_ids)
                    )
                )
            ).scalars()
        )
        flagged = (
            await session.execute(
                select(FraudFlag.reason, func.count())
                .where(FraudFlag.load_id.in_(load_ids))
                .group_by(FraudFlag.reason)
            )
        ).all()
    return {
        "load_statuses": dict(statuses),
        "transitions_by_actor": dict(movers),
        "geofence_events": dict(fence),
        "fraud_flags": {str(reason): int(count) for reason, count in flagged},
    }


def simulate_fleet_cli(
    settings: Settings,
    *,
    trucks: int,
    interval_s: float,
    duration_s: float,
    api_url: str,
    trip_km: tuple[float, float],
    dead_zone_share: float,
    seed: int,
    report: Path | None,
) -> None:
    summary = asyncio.run(
        simulate_fleet(
            settings,
            trucks=trucks,
            interval_s=interval_s,
            duration_s=duration_s,
            api_url=api_url,
            trip_km=trip_km,
            dead_zone_share=dead_zone_share,
            seed=seed,
        )
    )
    _print_summary(summary)
    if report is not None:
        report.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"Fleet simulation {summary.get('run', '')}")
    table.add_column("what")
    table.add_column("result")
    for name, value in summary.items():
        table.add_row(name, orjson.dumps(value).decode() if isinstance(value, dict) else str(value))
    console.print(table)


# --- replaying a recorded drive ---


async def replay_track(
    settings: Settings, file: Path, *, api_url: str, every_s: float, wait_s: float
) -> dict[str, Any]:
    """Post a recorded drive, moved to end a minute ago, as one truck's batches."""
    check_loopback(api_url)
    recorded = read_recorded_drive(file)
    kept = [recorded[0]]
    for candidate in recorded[1:]:
        if (candidate.fix_time - kept[-1].fix_time).total_seconds() >= every_s:
            kept.append(candidate)
    span = kept[-1].fix_time - kept[0].fix_time
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1) - span
    fixes = shift_to(kept, start)

    path = [LatLng(f.lat, f.lng) for f in fixes]
    trip = Trip(path=path, pickup_index=0, cruise_mps=1.0, dwell_s=0.0)
    fleet = await prepare_fleet(
        settings,
        [trip],
        pickup_window=(start - timedelta(hours=1), start + timedelta(hours=2)),
        delivery_window=(start, start + span + timedelta(hours=2)),
        rng=random.Random(0),  # noqa: S311
        dead_zone_share=0.0,
    )
    truck = fleet.trucks[0]
    tokens = TokenBook(settings, fleet.carrier_id)
    tally = Tally()
    bodies = [
        {
            "latitude": f.lat,
            "longitude": f.lng,
            "fixTime": f.fix_time.isoformat(),
            "accuracyM": f.accuracy_m,
            "speedMps": None if f.speed_mps is None else round(f.speed_mps, 2),
            "headingDeg": None if f.heading_deg is None else round(f.heading_deg, 1),
            "source": "recorded",
            "clientFixId": f.fix_id[-64:],
        }
        for f in fixes
    ]
    async with httpx.AsyncClient(base_url=api_url, timeout=30.0) as http:
        for offset in range(0, len(bodies), MAX_BATCH):
            batch = {"loadId": str(truck.load_id), "fixes": bodies[offset : offset + MAX_BATCH]}
            await _post(http, tally, "batch", "/tracking/pings", batch,
                        tokens.headers(truck.driver_id))  # fmt: skip
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            response = await http.get(
                f"/loads/{truck.load_id}/geofence-events", headers=tokens.headers(truck.driver_id)
            )
            events = response.json() if response.status_code == 200 else []
            if any(e["eventType"] == "ARRIVED_DELIVERY" for e in events):
                break
            await asyncio.sleep(1.0)
    outcome = await fleet_outcome(settings, fleet)
    return {
        "file": file.name,
        "fixes_in_file": len(recorded),
        "fixes_sent": len(bodies),
        "load_id": str(truck.load_id),
        "requests": dict(tally.requests),
        "fixes": dict(tally.fixes),
        "geofence_events": [(e["eventType"], e["fixTime"]) for e in events],
        "load_status": outcome["load_statuses"],
        "fraud_flags": outcome["fraud_flags"],
    }


def replay_track_cli(
    settings: Settings, file: Path, *, api_url: str, every_s: float, wait_s: float
) -> None:
    summary = asyncio.run(
        replay_track(settings, file, api_url=api_url, every_s=every_s, wait_s=wait_s)
    )
    _print_summary(summary)
