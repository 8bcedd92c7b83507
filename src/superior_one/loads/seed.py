"""Demo data on real US geography: shippers, carriers, drivers and loads, by bulk COPY.

Places are real ZIP codes near 64 freight metros (``superior_one.geo.zips``),
and loaded miles come from the US freeway graph (``superior_one.geo.roads``):
one shortest-path tree per origin gives the road miles to every destination, so
K origins and K destinations cost K trees and yield K x K lanes. Each load picks
an origin, a haul class (local, regional, long haul, weighted like a
construction-heavy board) and a destination of that class in the origin's row.

Rows go to PostgreSQL through psycopg's ``COPY ... FROM STDIN`` on the engine's
own connection, in text format, in one transaction.
"""

from __future__ import annotations

import math
import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.passwords import PasswordService
from superior_one.config import Settings
from superior_one.demo import DEMO_ACCOUNTS
from superior_one.geo.roads import road_network
from superior_one.geo.zips import ZipPlace, seed_pool
from superior_one.loads.models import ON_THE_ROAD, HaulType, LoadStatus, LoadType, RateMode
from superior_one.loads.rates import gross_revenue_cents
from superior_one.resources import open_resources

log = structlog.get_logger(__name__)

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called as work advances."""

# Status mix of a board with history: about a tenth of all loads are posted.
STATUS_WEIGHTS: dict[LoadStatus, float] = {
    LoadStatus.POSTED: 0.10,
    LoadStatus.DRAFT: 0.02,
    LoadStatus.ASSIGNED: 0.02,
    LoadStatus.RELEASED: 0.01,
    LoadStatus.IN_TRANSIT: 0.01,
    LoadStatus.DELIVERED: 0.01,
    LoadStatus.COMPLETED: 0.73,
    LoadStatus.CANCELLED: 0.05,
    LoadStatus.EXPIRED: 0.05,
}
WITH_CARRIER = frozenset(
    {
        LoadStatus.ASSIGNED,
        LoadStatus.RELEASED,
        LoadStatus.IN_TRANSIT,
        LoadStatus.DELIVERED,
        LoadStatus.COMPLETED,
    }
)
WITH_DRIVER = frozenset(
    {LoadStatus.RELEASED, LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED, LoadStatus.COMPLETED}
)
# Drivers per carrier beyond its expected share of loads on the road (each driver
# carries one at a time), so a carrier with more than its share still has a free one.
SPARE_DRIVER_FACTOR = 2.0

# Relative age of loads in each status: lower ranks were created earlier.
CREATION_ORDER: dict[LoadStatus, int] = {
    LoadStatus.COMPLETED: 0,
    LoadStatus.CANCELLED: 0,
    LoadStatus.EXPIRED: 0,
    LoadStatus.DELIVERED: 1,
    LoadStatus.IN_TRANSIT: 2,
    LoadStatus.RELEASED: 3,
    LoadStatus.ASSIGNED: 4,
    LoadStatus.POSTED: 5,
    LoadStatus.DRAFT: 5,
}

# Haul classes by loaded road miles, and how often each is drawn.
HAUL_CLASSES = (
    (HaulType.LOCAL, 5.0, 100.0, 0.40),
    (HaulType.REGIONAL, 100.0, 500.0, 0.35),
    (HaulType.LONG_HAUL, 500.0, 1e9, 0.25),
)
MAX_ROUTE_ORIGINS = 1500
TRUCK_MPH = 45.0


@dataclass(frozen=True, slots=True)
class Commodity:
    name: str
    load_type: LoadType
    equipment: tuple[str, ...]
    rate_modes: tuple[RateMode, ...]
    weight_lbs: tuple[int, int]
    hauls: frozenset[HaulType]


# name | load type | equipment | rate modes | weight lbs | hauls (L local, R regional, H long)
# Each line's equipment is one the matching rules in the 0002 migration recommend for it.
_COMMODITY_TABLE = """
Crushed stone #57 | BULK | END_DUMP | PER_TON PER_HOUR | 38000-48000 | LR
Washed gravel | BULK | END_DUMP BELLY_DUMP | PER_TON | 40000-48000 | LR
Pea gravel | BULK | TRI_AXLE_DUMP | PER_HOUR PER_TON | 26000-34000 | L
Concrete sand | BULK | BELLY_DUMP END_DUMP | PER_TON | 40000-48000 | LR
Fill dirt | BULK | END_DUMP | PER_HOUR PER_TON | 36000-46000 | L
Screened topsoil | BULK | END_DUMP LIVE_FLOOR | PER_TON | 30000-42000 | LR
Riprap stone | BULK | SIDE_DUMP | PER_TON | 40000-48000 | LR
Hot mix asphalt | BULK | END_DUMP | PER_HOUR PER_TON | 38000-46000 | L
Asphalt millings | BULK | BELLY_DUMP | PER_TON | 40000-48000 | LR
Portland cement (bulk) | BULK | PNEUMATIC_TANKER | PER_TON PER_MILE | 46000-50000 | LRH
Fly ash | BULK | PNEUMATIC_TANKER | PER_TON | 44000-50000 | LRH
Corn grain | BULK | HOPPER | PER_TON PER_MILE | 46000-50000 | LRH
Hardwood mulch | BULK | LIVE_FLOOR | FLAT PER_MILE | 24000-36000 | LR
Structural steel beams | FULL_TRUCKLOAD | FLATBED | PER_MILE FLAT | 30000-46000 | LRH
Rebar bundles | FULL_TRUCKLOAD | FLATBED | PER_MILE FLAT | 36000-46000 | LRH
Ductile iron pipe | FULL_TRUCKLOAD | FLATBED | PER_MILE | 30000-44000 | LRH
Dimensional lumber | FULL_TRUCKLOAD | FLATBED | PER_MILE FLAT | 34000-44000 | LRH
Precast concrete barriers | FULL_TRUCKLOAD | STEP_DECK FLATBED | PER_UNIT FLAT | 36000-46000 | LR
Excavator (CAT 320) | HEAVY_HAUL | LOWBOY | FLAT PER_MILE | 48000-52000 | LRH
Bulldozer (D6) | HEAVY_HAUL | LOWBOY | FLAT | 40000-50000 | LRH
Wheel loader | HEAVY_HAUL | LOWBOY | FLAT PER_MILE | 30000-45000 | LRH
Drywall sheets | FULL_TRUCKLOAD | FLATBED DRY_VAN | PER_MILE | 30000-44000 | LRH
Roofing shingles | FULL_TRUCKLOAD | FLATBED | PER_MILE FLAT | 36000-44000 | LRH
Palletized building supplies | PARTIAL | DRY_VAN | PER_MILE FLAT | 8000-20000 | LRH
Fresh produce | FULL_TRUCKLOAD | REEFER | PER_MILE FLAT | 36000-42000 | RH
Frozen foods | FULL_TRUCKLOAD | REEFER | PER_MILE | 36000-42000 | RH
"""
_HAUL_LETTERS = {"L": HaulType.LOCAL, "R": HaulType.REGIONAL, "H": HaulType.LONG_HAUL}


def _parse_commodities(table: str) -> tuple[Commodity, ...]:
    commodities = []
    for line in table.strip().splitlines():
        name, load_type, equipment, modes, weights, hauls = (f.strip() for f in line.split("|"))
        low, high = (int(w) for w in weights.split("-"))
        commodities.append(
            Commodity(
                name=name,
                load_type=LoadType(load_type),
                equipment=tuple(equipment.split()),
                rate_modes=tuple(RateMode(m) for m in modes.split()),
                weight_lbs=(low, high),
                hauls=frozenset(_HAUL_LETTERS[c] for c in hauls),
            )
        )
    return tuple(commodities)


COMMODITIES = _parse_commodities(_COMMODITY_TABLE)

LOAD_COLUMNS = (
    "id", "shipper_organization_id", "created_by_user_id", "status", "reference",
    "pickup_street", "pickup_city", "pickup_state", "pickup_zip", "pickup_time_zone",
    "pickup_point", "pickup_window_start", "pickup_window_end",
    "delivery_street", "delivery_city", "delivery_state", "delivery_zip", "delivery_time_zone",
    "delivery_point", "delivery_window_start", "delivery_window_end",
    "equipment_type", "haul_type", "load_type", "commodity", "weight_lbs",
    "rate_cents", "rate_mode", "units", "miles", "gross_revenue_cents",
    "assigned_carrier_organization_id", "assigned_driver_user_id",
    "posted_at", "assigned_at", "released_at", "picked_up_at", "delivered_at", "completed_at",
    "cancelled_at", "created_at", "updated_at",
)  # fmt: skip
EVENT_COLUMNS = (
    "load_id", "from_status", "to_status", "actor_kind", "actor_description", "reason",
    "occurred_at",
)  # fmt: skip
INTEREST_COLUMNS = (
    "id", "load_id", "carrier_organization_id", "user_id", "status", "counter_rate_cents",
    "note", "created_at", "updated_at",
)  # fmt: skip
NULL = "\\N"
CHUNK_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class SeedOptions:
    loads: int
    seed: int = 2026
    # Share of loads posted by the demo shipper (and carried by the demo carrier).
    demo_share: float = 0.0
    if_empty: bool = False


@dataclass(slots=True)
class SeedReport:
    loads: int = 0
    posted: int = 0
    shippers: int = 0
    carriers: int = 0
    drivers: int = 0
    interests: int = 0
    lanes: int = 0
    skipped: bool = False
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Carrier:
    organization_id: uuid.UUID
    dispatcher_id: uuid.UUID
    driver_ids: list[uuid.UUID]


@dataclass(slots=True)
class _Parties:
    shippers: list[tuple[uuid.UUID, uuid.UUID]]  # (organization, creating user)
    carriers: list[_Carrier]
    demo_shipper: tuple[uuid.UUID, uuid.UUID] | None = None
    demo_carrier: _Carrier | None = None


@dataclass(slots=True)
class _Lanes:
    origins: list[ZipPlace]
    destinations: list[ZipPlace]
    miles: npt.NDArray[np.float64]  # origins x destinations, road miles
    order: npt.NDArray[np.int64]  # each row's destination indices, nearest first
    bounds: npt.NDArray[np.int64]  # per row, index where each haul class starts and ends


async def seed(
    settings: Settings, options: SeedOptions, progress: Progress | None = None
) -> SeedReport:
    """Create organizations, users and ``options.loads`` loads; return what was made."""
    report = SeedReport()
    tick = progress or (lambda stage, done, total: None)
    rng = random.Random(options.seed)  # noqa: S311 - demo data, reproducible by seed
    # COPY of a million rows runs far past the api's statement timeout.
    unlimited = settings.model_copy(update={"db_statement_timeout_ms": 0})

    async with (
        open_resources(unlimited, pool_size=1) as resources,
        resources.engine.connect() as conn,
    ):
        if options.if_empty:
            existing = (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM loads)"))).scalar()
            if existing:
                report.skipped = True
                return report

        lanes = _build_lanes(rng, options.loads, tick)
        report.lanes = len(lanes.origins) * len(lanes.destinations)
        parties = await _create_parties(conn, settings, rng, options)
        await conn.commit()
        report.shippers = len(parties.shippers) + (1 if parties.demo_shipper else 0)
        report.carriers = len(parties.carriers) + (1 if parties.demo_carrier else 0)
        report.drivers = sum(len(c.driver_ids) for c in parties.carriers)

        # The COPYs run on the driver connection, inside this SQLAlchemy transaction,
        # so they commit together.
        async with conn.begin():
            await _copy_loads(conn, rng, options, lanes, parties, report, tick)

        # VACUUM sets the visibility map (index-only scans for the board's counts)
        # and ANALYZE the statistics; VACUUM cannot run inside a transaction.
        maintenance = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("loads", "load_events", "load_interests"):
            await maintenance.execute(text(f"VACUUM (ANALYZE) {table}"))
    log.info("loads.seeded", loads=report.loads, posted=report.posted, lanes=report.lanes)
    return report


def _build_lanes(rng: random.Random, loads: int, tick: Progress) -> _Lanes:
    pool = seed_pool()
    count = max(8, min(MAX_ROUTE_ORIGINS, int(1.5 * loads**0.5)))
    origins = rng.sample(pool, min(count, len(pool)))
    destinations = rng.sample(pool, min(count, len(pool)))
    network = road_network()
    rows = []
    step = max(1, len(origins) // 50)
    for start in range(0, len(origins), step):
        batch = origins[start : start + step]
        miles, _estimated = network.miles_matrix(
            [p.point for p in batch], [p.point for p in destinations]
        )
        rows.append(miles)
        tick("routes", min(start + step, len(origins)), len(origins))
    matrix = np.vstack(rows)
    order = np.argsort(matrix, axis=1)
    sorted_miles = np.take_along_axis(matrix, order, axis=1)
    edges = [HAUL_CLASSES[0][1]] + [upper for _, _, upper, _ in HAUL_CLASSES]
    bounds = np.stack(
        [
            np.array([np.searchsorted(row, edge) for edge in edges], dtype=np.int64)
            for row in sorted_miles
        ]
    )
    return _Lanes(origins, destinations, matrix, order.astype(np.int64), bounds)


async def _create_parties(
    conn: AsyncConnection, settings: Settings, rng: random.Random, options: SeedOptions
) -> _Parties:
    batch = secrets.token_hex(3)
    password_hash = PasswordService(settings).hash(settings.demo_password.get_secret_value())
    shipper_count = max(2, min(200, options.loads // 5000))
    carrier_count = max(3, min(500, options.loads // 2000))

    organizations: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []

    def organization(name: str, type: OrganizationType) -> uuid.UUID:
        org_id = uuid.uuid4()
        organizations.append({"id": org_id, "name": name, "type": type, "is_verified": True})
        return org_id

    def user(org_id: uuid.UUID, email: str, role: Role) -> uuid.UUID:
        user_id = uuid.uuid4()
        users.append(
            {
                "id": user_id,
                "organization_id": org_id,
                "email": email,
                "full_name": email.split("@")[0].replace("-", " ").title(),
                "password_hash": password_hash,
                "role": role,
            }
        )
        return user_id

    on_the_road = sum(STATUS_WEIGHTS[status] for status in ON_THE_ROAD) * options.loads
    road_drivers = math.ceil(SPARE_DRIVER_FACTOR * on_the_road / carrier_count)

    shippers = []
    for n in range(1, shipper_count + 1):
        org_id = organization(f"Seed Shipper {batch}-{n:03d}", OrganizationType.SHIPPER)
        shippers.append((org_id, user(org_id, f"shipper-{n}@{batch}.seed.example", Role.ORG_ADMIN)))
    carriers = []
    for n in range(1, carrier_count + 1):
        org_id = organization(f"Seed Carrier {batch}-{n:03d}", OrganizationType.CARRIER)
        dispatcher = user(org_id, f"dispatch-{n}@{batch}.seed.example", Role.DISPATCHER)
        drivers = [
            user(org_id, f"driver-{n}-{d}@{batch}.seed.example", Role.DRIVER)
            for d in range(1, rng.randint(2, 5) + road_drivers)
        ]
        carriers.append(_Carrier(org_id, dispatcher, drivers))

    await conn.execute(insert(Organization), organizations)
    await conn.execute(insert(User), users)

    parties = _Parties(shippers=shippers, carriers=carriers)
    if options.demo_share > 0:
        await _attach_demo_parties(conn, parties)
    return parties


async def _attach_demo_parties(conn: AsyncConnection, parties: _Parties) -> None:
    """Find the demo accounts (``seed-demo-accounts``) so a share of loads is theirs."""
    emails = {a.email: a for a in DEMO_ACCOUNTS}
    rows = (
        await conn.execute(
            select(User.id, User.email, User.role, User.organization_id).where(
                User.email.in_(emails)
            )
        )
    ).all()
    by_email = {r.email: r for r in rows}
    shipper = by_email.get("shipper@demo.example")
    dispatcher = by_email.get("dispatch@demo.example")
    driver = by_email.get("driver@demo.example")
    if shipper is None or dispatcher is None or driver is None:
        raise LookupError("demo accounts are missing; run 'superior-one seed-demo-accounts' first")
    parties.demo_shipper = (shipper.organization_id, shipper.id)
    parties.demo_carrier = _Carrier(dispatcher.organization_id, dispatcher.id, [driver.id])


def haul_type_for(miles: float) -> HaulType:
    for haul, _low, upper, _weight in HAUL_CLASSES:
        if miles < upper:
            return haul
    return HaulType.LONG_HAUL


def _ts(moment: datetime | None) -> str:
    return NULL if moment is None else moment.isoformat()


def _point(place: ZipPlace) -> str:
    return f"SRID=4326;POINT({place.lng} {place.lat})"


def _text(value: str) -> str:
    # COPY text format: backslash, tab and newline must be escaped.
    return value.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def _price(
    rng: random.Random, commodity: Commodity, miles: float, weight_lbs: int
) -> tuple[RateMode, int, Decimal | None]:
    """Return a plausible (rate mode, rate in cents, units) for the load."""
    mode = rng.choice(commodity.rate_modes)
    if mode is RateMode.PER_TON:
        tons = Decimal(weight_lbs) / 2000
        per_ton = 6.0 + 0.12 * miles + rng.uniform(0, 6)
        return mode, int(per_ton * 100), tons.quantize(Decimal("0.01"))
    if mode is RateMode.PER_HOUR:
        hours = Decimal(str(round(1.5 + 2 * miles / 35.0, 1)))
        return mode, rng.randrange(9_500, 14_500, 25), hours
    if mode is RateMode.PER_UNIT:
        units = Decimal(rng.randint(4, 12))
        return mode, int((150 + 1.2 * miles) * 100 / 4) + rng.randrange(0, 5_000), units
    per_mile = 2.2 + 120.0 / (miles + 60.0) + rng.uniform(-0.25, 0.6)
    if commodity.load_type is LoadType.HEAVY_HAUL:
        per_mile += 1.5
    if mode is RateMode.PER_MILE:
        return mode, int(per_mile * 100), None
    return mode, max(25_000, int(per_mile * miles * 100) // 500 * 500), None


def _free_driver(
    rng: random.Random, carrier: _Carrier, carriers: list[_Carrier], busy: set[uuid.UUID]
) -> tuple[_Carrier, uuid.UUID | None]:
    """Pick a driver of ``carrier`` who is not on the road, else one of another carrier.

    The demo carrier has a single driver. The driver is ``None`` when all are busy.
    """

    def free(candidate: _Carrier) -> list[uuid.UUID]:
        return [driver for driver in candidate.driver_ids if driver not in busy]

    drivers = free(carrier)
    if not drivers:
        carrier = next((c for c in rng.sample(carriers, len(carriers)) if free(c)), carrier)
        drivers = free(carrier)
    return carrier, rng.choice(drivers) if drivers else None


def _status_plan(status: LoadStatus, now: datetime, rng: random.Random) -> datetime:
    """Return a pickup window start that fits the status."""
    if status in (LoadStatus.POSTED, LoadStatus.DRAFT):
        return now + timedelta(hours=rng.uniform(3, 14 * 24))
    if status is LoadStatus.ASSIGNED:
        return now + timedelta(hours=rng.uniform(6, 4 * 24))
    if status is LoadStatus.RELEASED:
        return now + timedelta(hours=rng.uniform(1, 30))
    if status is LoadStatus.IN_TRANSIT:
        return now - timedelta(hours=rng.uniform(1, 10))
    if status is LoadStatus.DELIVERED:
        return now - timedelta(hours=rng.uniform(12, 72))
    return now - timedelta(hours=rng.uniform(24, 365 * 24))


async def _copy_loads(
    conn: AsyncConnection,
    rng: random.Random,
    options: SeedOptions,
    lanes: _Lanes,
    parties: _Parties,
    report: SeedReport,
    tick: Progress,
) -> None:
    raw = await conn.get_raw_connection()
    pg: Any = raw.driver_connection
    loads_sql = f"COPY loads ({', '.join(LOAD_COLUMNS)}) FROM STDIN"
    events_sql = f"COPY load_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
    interests_sql = f"COPY load_interests ({', '.join(INTEREST_COLUMNS)}) FROM STDIN"

    done = 0
    for chunk in _chunks(rng, options, lanes, parties, report):
        loads_rows, event_rows, interest_rows = chunk
        async with pg.cursor() as cursor:
            async with cursor.copy(loads_sql) as copy:
                await copy.write("".join(loads_rows))
            async with cursor.copy(events_sql) as copy:
                await copy.write("".join(event_rows))
            if interest_rows:
                async with cursor.copy(interests_sql) as copy:
                    await copy.write("".join(interest_rows))
        done += len(loads_rows)
        tick("loads", done, options.loads)


def _chunks(
    rng: random.Random,
    options: SeedOptions,
    lanes: _Lanes,
    parties: _Parties,
    report: SeedReport,
) -> Iterator[tuple[list[str], list[str], list[str]]]:
    now = datetime.now(UTC).replace(microsecond=0)
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    class_weights = [w for *_, w in HAUL_CLASSES]
    by_haul = {h: [c for c in COMMODITIES if h in c.hauls] for h in HaulType}
    origin_count = len(lanes.origins)
    all_carriers = parties.carriers

    # Rows go in in the order they would have been created: finished loads first,
    # open ones last. Then the posted tenth shares heap pages, as it does in a
    # table that grows by appending, instead of one posted row on every page.
    plan = rng.choices(statuses, weights, k=options.loads)
    plan.sort(key=lambda status: CREATION_ORDER[status])

    loads_rows: list[str] = []
    event_rows: list[str] = []
    interest_rows: list[str] = []
    busy: set[uuid.UUID] = set()  # drivers on a RELEASED or IN_TRANSIT load
    for n, status in enumerate(plan):
        demo = parties.demo_shipper is not None and rng.random() < options.demo_share
        shipper_org, shipper_user = (
            parties.demo_shipper if demo and parties.demo_shipper else rng.choice(parties.shippers)
        )

        origin_index = rng.randrange(origin_count)
        haul_index = rng.choices(range(len(HAUL_CLASSES)), class_weights)[0]
        bounds = lanes.bounds[origin_index]
        lo, hi = int(bounds[haul_index]), int(bounds[haul_index + 1])
        if hi <= lo:  # no destination of that class from here: any lane of 5 miles or more
            lo, hi = int(bounds[0]), len(lanes.destinations)
            lo = min(lo, hi - 1)
        dest_index = int(lanes.order[origin_index][rng.randrange(lo, hi)])
        miles_float = float(lanes.miles[origin_index, dest_index])
        haul = haul_type_for(miles_float)
        origin, destination = lanes.origins[origin_index], lanes.destinations[dest_index]
        miles = Decimal(str(round(max(miles_float, 1.0), 1)))

        commodity = rng.choice(by_haul[haul])
        weight = rng.randrange(commodity.weight_lbs[0], commodity.weight_lbs[1] + 1, 100)
        mode, rate_cents, units = _price(rng, commodity, miles_float, weight)
        gross = gross_revenue_cents(rate_cents, mode, miles=miles, units=units)

        pickup_start = _status_plan(status, now, rng)
        pickup_end = pickup_start + timedelta(hours=rng.choice((2, 3, 4, 6)))
        drive = timedelta(hours=miles_float / TRUCK_MPH + 1)
        delivery_start = pickup_start + drive
        delivery_end = delivery_start + timedelta(hours=4)
        created = min(now, pickup_start) - timedelta(hours=rng.uniform(4, 96))
        posted = None if status is LoadStatus.DRAFT else created + timedelta(minutes=5)

        carrier_org = driver = None
        if status in WITH_CARRIER:
            carrier = (
                parties.demo_carrier
                if demo and parties.demo_carrier and rng.random() < 0.5
                else rng.choice(all_carriers)
            )
            if status in ON_THE_ROAD:
                carrier, driver = _free_driver(rng, carrier, all_carriers, busy)
                if driver is None:
                    status = LoadStatus.ASSIGNED
                else:
                    busy.add(driver)
            elif status in WITH_DRIVER:
                driver = rng.choice(carrier.driver_ids)
            carrier_org = carrier.organization_id
        assigned = created + timedelta(hours=2) if carrier_org else None
        released = pickup_start - timedelta(hours=2) if driver else None
        picked_up = (
            pickup_start + timedelta(minutes=30)
            if status in (LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED, LoadStatus.COMPLETED)
            else None
        )
        delivered = (
            delivery_start + timedelta(minutes=45)
            if status in (LoadStatus.DELIVERED, LoadStatus.COMPLETED)
            else None
        )
        completed = (
            delivered + timedelta(hours=20)
            if status is LoadStatus.COMPLETED and delivered
            else None
        )
        cancelled = created + timedelta(hours=8) if status is LoadStatus.CANCELLED else None

        load_id = uuid.uuid4()
        equipment = rng.choice(commodity.equipment)
        values = (
            str(load_id), str(shipper_org), str(shipper_user), status.value, f"SO-{n + 1:07d}",
            "", _text(origin.city.title()), origin.state, origin.zip_code, origin.time_zone,
            _point(origin), _ts(pickup_start), _ts(pickup_end),
            "", _text(destination.city.title()), destination.state, destination.zip_code,
            destination.time_zone, _point(destination), _ts(delivery_start), _ts(delivery_end),
            equipment, haul.value, commodity.load_type.value, _text(commodity.name), str(weight),
            str(rate_cents), mode.value, NULL if units is None else str(units), str(miles),
            str(gross),
            str(carrier_org) if carrier_org else NULL, str(driver) if driver else NULL,
            _ts(posted), _ts(assigned), _ts(released), _ts(picked_up), _ts(delivered),
            _ts(completed), _ts(cancelled), _ts(created), _ts(max(created, posted or created)),
        )  # fmt: skip
        loads_rows.append("\t".join(values) + "\n")
        event_rows.append(
            f"{load_id}\t{NULL}\t{status.value}\tSYSTEM\tdemo seed\tseeded\t{_ts(created)}\n"
        )
        if status is LoadStatus.POSTED and rng.random() < 0.25:
            for carrier in rng.sample(all_carriers, k=min(len(all_carriers), rng.randint(1, 3))):
                counter = (
                    NULL if rng.random() < 0.6 else str(int(rate_cents * rng.uniform(1.02, 1.15)))
                )
                interest_rows.append(
                    f"{uuid.uuid4()}\t{load_id}\t{carrier.organization_id}\t{carrier.dispatcher_id}"
                    f"\tACTIVE\t{counter}\t\t{_ts(posted)}\t{_ts(posted)}\n"
                )
                report.interests += 1

        report.loads += 1
        report.by_status[status.value] = report.by_status.get(status.value, 0) + 1
        if status is LoadStatus.POSTED:
            report.posted += 1
        if len(loads_rows) >= CHUNK_ROWS:
            yield loads_rows, event_rows, interest_rows
            loads_rows, event_rows, interest_rows = [], [], []
    if loads_rows:
        yield loads_rows, event_rows, interest_rows
