"""Fleet simulator and recorded-drive replay: business and GPS traffic for a running platform.

``superior-one simulate-fleet`` acts as the platform's users, over HTTP:

1. set-up: a fresh shipper and carrier per run, with their administrators and one
   driver per truck, are created in the database (see :func:`_create_accounts`).
   The carrier's administrator invites a dispatcher, the dispatcher registers a
   USDOT number and a liability policy, and the simulator waits until the
   worker has verified the carrier against FMCSA (the FMCSA simulator under
   ``scripts/run.sh``). With payments, the carrier sets up its payout account and
   the shipper saves a card, as ``superior-one payments demo`` does;
2. covering: per truck, the shipper creates and posts a load (pickup window open
   now), the dispatcher shows interest, the shipper assigns the carrier and the
   dispatcher releases the load to the truck's driver;
3. driving: every truck reports in real time with its driver's token, as the
   phone app does. It approaches the pickup from 1.2 km away at 12 m/s and dwells
   there long enough for the arrival rule. Then it takes the US freeway graph
   (scgraph) to the delivery at 24-29 m/s and dwells there;
4. settling: the shipper's desk confirms DELIVERED loads (COMPLETED, which
   defers the invoice job) and pays the invoices the worker issues.

Fixes carry GPS noise (a normal error of half the stated accuracy), a few are
coarse cell-tower fixes, and a share of trucks cross a dead zone: they keep
their fixes and send them late, as one batch, when the signal returns. Loads
move through pickup and delivery only by the geofences the gps-consumer
evaluates; the simulator changes no status from RELEASED to DELIVERED.

``superior-one replay-track FILE`` replays a real recorded drive (one truck)
as a catch-up upload of batches.

Traffic goes only to a loopback api; tokens are issued with the platform's
own secret, since the simulated users have no passwords they log in with.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import random
import secrets
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from superior_one.loads.models import Load, LoadEvent, LoadStatus
from superior_one.payments.models import Invoice, PaymentAttempt, Payout
from superior_one.resources import open_resources
from superior_one.simulators.fmcsa import generated_carrier
from superior_one.tracking.models import FraudFlag, GeofenceEventRow
from superior_one.tracking.recorded_drive import read_recorded_drive, shift_to
from superior_one.tracking.rules import GEOFENCE_RULES

log = structlog.get_logger(__name__)
console = Console()

SHIPPER_NAME = "Fleet Simulator Shipper"
CARRIER_NAME = "Fleet Simulator Carrier"
EMAIL_DOMAIN = "fleet-simulator.example"
# Stripe's test PaymentMethod for a successful charge; the payment simulator declines
# only the pm_card_chargeDeclined* methods and injected faults.
PAYMENT_METHOD = "pm_card_visa"
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
PROGRESS_EVERY = 200
MAX_BATCH = 500
DESK_INTERVAL_S = 10.0  # the shipper looks for delivered loads and open invoices this often
CLOSE_OUT_S = 90.0  # after the drive: longest wait for the last invoices to be issued
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


# --- the parties and their loads, through the api ---


@dataclass(slots=True)
class SimTruck:
    index: int
    driver_id: uuid.UUID
    load_id: uuid.UUID
    trip: Trip
    dead_zone: tuple[float, float] | None  # seconds since the start, during driving


@dataclass(frozen=True, slots=True)
class ApiUser:
    """A user the simulator acts as, with what its access token carries."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role


@dataclass(frozen=True, slots=True)
class Parties:
    shipper_admin: ApiUser
    carrier_admin: ApiUser
    dispatcher: ApiUser

    @property
    def carrier_id(self) -> uuid.UUID:
        return self.carrier_admin.organization_id


@dataclass(slots=True)
class Fleet:
    run_id: str
    trucks: list[SimTruck]
    parties: Parties
    tokens: TokenBook
    payments: bool  # whether the shipper pays the invoices of its completed loads
    preparation_failures: Counter[str] = field(default_factory=Counter)


class FleetApiError(Exception):
    """The api rejected a step of the business flow, or could not be reached."""

    def __init__(self, step: str, detail: str, *, status: int | None, code: str | None) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step  # "POST /loads/{id}/assign 409", the same for every load
        self.status = status
        self.code = code


class TokenBook:
    """Access tokens of the simulated users, issued again before they expire."""

    def __init__(self, settings: Settings, carrier_id: uuid.UUID) -> None:
        self.settings = settings
        self.carrier_id = carrier_id
        self._tokens: dict[uuid.UUID, tuple[str, float]] = {}

    def headers(self, driver_id: uuid.UUID) -> dict[str, str]:
        """Return the headers of one of the carrier's drivers."""
        return self.user_headers(ApiUser(driver_id, self.carrier_id, Role.DRIVER))

    def user_headers(self, user: ApiUser) -> dict[str, str]:
        token, issued = self._tokens.get(user.user_id, ("", 0.0))
        if time.monotonic() - issued > self.settings.access_token_ttl_s / 2:
            token = issue_access_token(
                self.settings,
                user_id=user.user_id,
                organization_id=user.organization_id,
                role=user.role.value,
                token_version=1,
            )
            self._tokens[user.user_id] = (token, time.monotonic())
        return {"Authorization": f"Bearer {token}"}


def check_loopback(api_url: str) -> None:
    host = urlsplit(api_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the simulator only talks to a local api (127.0.0.1), not {host!r}")


async def api_call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    body: Any = None,
    key: str | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """Send one request; return its JSON body, or raise :class:`FleetApiError`."""
    sent = dict(headers)
    if body is not None:
        sent.update(JSON_HEADERS)
    if key is not None:
        sent["Idempotency-Key"] = key
    # Load and invoice ids make every path different; the step names the route.
    step = f"{method} {_route(path)}"
    try:
        response = await http.request(
            method,
            path,
            content=None if body is None else orjson.dumps(body),
            headers=sent,
            params=params,
        )
    except httpx.HTTPError as exc:
        raise FleetApiError(step, repr(exc), status=None, code=None) from exc
    if response.status_code >= 400:
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        raise FleetApiError(
            f"{step} {response.status_code}",
            response.text[:500],
            status=response.status_code,
            code=code,
        )
    return response.json() if response.content else None


def _route(path: str) -> str:
    parts = []
    for part in path.split("/"):
        try:
            uuid.UUID(part)
        except ValueError:
            parts.append(part)
        else:
            parts.append("{id}")
    return "/".join(parts)


def _nearest_place(pool: Sequence[ZipPlace], point: LatLng) -> ZipPlace:
    metres = distances_m(point.lat, point.lng, [p.lat for p in pool], [p.lng for p in pool])
    return pool[int(metres.argmin())]


async def _create_accounts(
    settings: Settings, run_id: str, drivers: int
) -> tuple[ApiUser, ApiUser, list[uuid.UUID]]:
    """Create the run's shipper and carrier, their administrators and the drivers.

    Directly in the database: only a platform administrator can create an
    organization, and accepting an invitation hashes a password with argon2 in
    the api (about 0.2 s of its CPU each), which 1,000 drivers cannot afford.
    Fresh organizations per run: a payout account the payment simulator forgot
    when it restarted cannot break a later run.
    """
    # These users never log in, so one unusable hash serves them all.
    password_hash = PasswordService(settings).hash(uuid.uuid4().hex)

    def user(organization: Organization, email: str, name: str, role: Role) -> User:
        return User(
            organization_id=organization.id,
            email=f"{email}@{EMAIL_DOMAIN}",
            full_name=name,
            password_hash=password_hash,
            role=role,
        )

    async with open_resources(settings, pool_size=2) as resources:
        async with unit_of_work(resources.sessionmaker) as session:
            shipper = Organization(
                name=f"{SHIPPER_NAME} {run_id}", type=OrganizationType.SHIPPER, is_verified=True
            )
            carrier = Organization(
                name=f"{CARRIER_NAME} {run_id}", type=OrganizationType.CARRIER, is_verified=True
            )
            session.add_all([shipper, carrier])
            await session.flush()
            admins = [
                user(shipper, f"shipper-{run_id}", "Simulated Shipper", Role.ORG_ADMIN),
                user(carrier, f"carrier-admin-{run_id}", "Simulated Carrier Admin", Role.ORG_ADMIN),
            ]
            session.add_all(admins)
            await session.flush()
            shipper_admin, carrier_admin = (
                ApiUser(u.id, u.organization_id, u.role) for u in admins
            )
        driver_ids: list[uuid.UUID] = []
        for start in range(0, drivers, SETUP_CHUNK):
            async with unit_of_work(resources.sessionmaker) as session:
                chunk = [
                    user(carrier, f"driver-{run_id}-{i}", f"Simulated Driver {i}", Role.DRIVER)
                    for i in range(start, min(start + SETUP_CHUNK, drivers))
                ]
                session.add_all(chunk)
                await session.flush()
                driver_ids.extend(u.id for u in chunk)
    return shipper_admin, carrier_admin, driver_ids


async def _invite_dispatcher(
    http: httpx.AsyncClient, tokens: TokenBook, carrier_admin: ApiUser, run_id: str
) -> ApiUser:
    """Invite the dispatcher as the carrier's administrator, then accept as the dispatcher."""
    invitation = await api_call(
        http,
        "POST",
        f"/organizations/{carrier_admin.organization_id}/invitations",
        tokens.user_headers(carrier_admin),
        body={"email": f"dispatch-{run_id}@{EMAIL_DOMAIN}", "role": Role.DISPATCHER.value},
    )
    accepted = await api_call(
        http,
        "POST",
        "/auth/accept-invitation",
        {},
        body={
            "token": invitation["token"],
            "password": secrets.token_urlsafe(24),
            "fullName": "Simulated Dispatcher",
        },
    )
    return ApiUser(uuid.UUID(accepted["id"]), carrier_admin.organization_id, Role.DISPATCHER)


def _authorized_dot_number(rng: random.Random) -> int:
    """Return a USDOT number that the FMCSA simulator reports as authorized and insured."""
    while True:
        dot = rng.randrange(5_000_000, 10_000_000)
        record = generated_carrier(dot)
        if (
            record is not None
            and record["allowedToOperate"] == "Y"
            and record["commonAuthorityStatus"] == "A"
            and record["oosDate"] is None
            and record["bipdInsuranceOnFile"] != "0"
        ):
            return dot


async def _vet_carrier(
    http: httpx.AsyncClient, tokens: TokenBook, dispatcher: ApiUser, run_id: str, timeout_s: float
) -> dict[str, Any]:
    """Register the carrier as the demo carrier is: a USDOT number the worker verifies
    against FMCSA (the simulator, under scripts/run.sh) and a liability policy."""
    headers = tokens.user_headers(dispatcher)
    rng = random.Random(run_id)  # noqa: S311 - picks a number, not a secret
    for _ in range(5):
        dot = _authorized_dot_number(rng)
        try:
            await api_call(http, "POST", "/carriers", headers, body={"dotNumber": dot})
            break
        except FleetApiError as exc:
            if exc.code != "carrier_already_registered":
                raise
    else:
        raise FleetApiError("POST /carriers", "5 USDOT numbers taken", status=409, code=None)
    today = datetime.now(UTC).date()
    await api_call(
        http,
        "POST",
        "/carriers/me/insurance-policies",
        headers,
        body={
            "coverageType": "AUTO_LIABILITY",
            "insurerName": "Fleet Simulator Mutual",
            "policyNumber": f"SIM-AL-{run_id}",
            "amountCents": 100_000_000,
            "effectiveDate": (today - timedelta(days=30)).isoformat(),
            "expiryDate": (today + timedelta(days=365)).isoformat(),
        },
    )

    deadline = time.monotonic() + timeout_s
    while True:
        carrier: dict[str, Any] = await api_call(http, "GET", "/carriers/me", headers)
        status = carrier["verificationStatus"]
        if status == "VERIFIED":
            return carrier
        if status not in ("PENDING", "UNAVAILABLE"):
            raise FleetApiError(
                "GET /carriers/me",
                f"FMCSA verification of USDOT {dot} ended {status}: "
                f"{carrier['verificationReasons']}",
                status=200,
                code=None,
            )
        if time.monotonic() > deadline:
            raise FleetApiError(
                "GET /carriers/me",
                f"USDOT {dot} is still {status} after {timeout_s:g} s; the worker verifies "
                "carriers: is 'superior-one worker' running, and FMCSA (or its simulator) "
                "reachable?",
                status=200,
                code=None,
            )
        await asyncio.sleep(0.5)


async def _set_up_payments(
    http: httpx.AsyncClient, tokens: TokenBook, parties: Parties, run_id: str, wanted: bool | None
) -> bool:
    """Give the carrier a payout account and the shipper a card, as the payments demo does.

    Returns whether the shipper will pay; with ``wanted`` None, that is whether
    the api has a payment provider.
    """
    if wanted is False:
        return False
    try:
        await api_call(
            http,
            "POST",
            "/payouts/account",
            tokens.user_headers(parties.carrier_admin),
            key=f"fleet-simulator-payout-account-{run_id}",
        )
    except FleetApiError as exc:
        if wanted is None and exc.code == "payments_not_configured":
            console.print("The api has no payment provider: delivered loads are not charged.")
            return False
        raise
    await api_call(
        http,
        "PUT",
        "/billing/profile",
        tokens.user_headers(parties.shipper_admin),
        body={"customerId": f"cus_fleet_simulator_{run_id}", "paymentMethodId": PAYMENT_METHOD},
    )
    return True


def _stop(
    pool: Sequence[ZipPlace], point: LatLng, window: tuple[datetime, datetime], street: str
) -> dict[str, Any]:
    place = _nearest_place(pool, point)
    return {
        "street": street,
        "city": place.city,
        "state": place.state,
        "zip": place.zip_code,
        "timeZone": place.time_zone,
        "lat": round(point.lat, 7),
        "lng": round(point.lng, 7),
        "windowStart": window[0].isoformat(),
        "windowEnd": window[1].isoformat(),
    }


def load_body(
    trip: Trip,
    pool: Sequence[ZipPlace],
    pickup_window: tuple[datetime, datetime],
    delivery_window: tuple[datetime, datetime],
    reference: str,
) -> dict[str, Any]:
    """The shipper's POST /loads body for a trip: its own pickup and delivery points."""
    driven_m = trip.cumulative_m[-1] - trip.cumulative_m[trip.pickup_index]
    return {
        "reference": reference,
        "pickup": _stop(pool, trip.path[trip.pickup_index], pickup_window, "Pickup dock"),
        "delivery": _stop(pool, trip.path[-1], delivery_window, "Delivery dock"),
        "equipmentType": "DRY_VAN",
        "haulType": "LOCAL",
        "loadType": "FULL_TRUCKLOAD",
        "commodity": "Simulated freight",
        "weightLbs": 30_000,
        "rate": "500.00",
        "rateMode": "FLAT",
        # The trip's own freeway miles: the api need not route the load again.
        "miles": str(max(0.1, round(driven_m / METRES_PER_MILE, 1))),
    }


async def cover_load(
    http: httpx.AsyncClient,
    tokens: TokenBook,
    parties: Parties,
    body: dict[str, Any],
    driver_id: uuid.UUID,
) -> uuid.UUID:
    """Create, post, book and release one load as its shipper and carrier would."""
    shipper = tokens.user_headers(parties.shipper_admin)
    dispatcher = tokens.user_headers(parties.dispatcher)
    load = await api_call(http, "POST", "/loads", shipper, body=body)
    path = f"/loads/{load['id']}"
    await api_call(http, "POST", f"{path}/post", shipper)
    await api_call(http, "PUT", f"{path}/interest", dispatcher, body={})
    await api_call(
        http,
        "POST",
        f"{path}/assign",
        shipper,
        body={"carrierOrganizationId": str(parties.carrier_id)},
    )
    await api_call(
        http, "POST", f"{path}/release", dispatcher, body={"driverUserId": str(driver_id)}
    )
    return uuid.UUID(load["id"])


def _dead_zone(rng: random.Random, trip: Trip, share: float) -> tuple[float, float] | None:
    if rng.random() >= share:
        return None
    begin, end = trip.driving_window_s
    length = rng.uniform(*DEAD_ZONE_S)
    if end - begin <= length:
        return None
    opens = rng.uniform(begin, end - length)
    return (opens, opens + length)


async def prepare_fleet(
    settings: Settings,
    http: httpx.AsyncClient,
    trips: Sequence[Trip],
    *,
    pickup_window: tuple[datetime, datetime],
    delivery_window: tuple[datetime, datetime],
    rng: random.Random,
    dead_zone_share: float,
    concurrency: int = 24,
    payments: bool | None = False,
    vetting_timeout_s: float = 120.0,
) -> Fleet:
    """Set up a shipper and a vetted carrier, then cover one load per trip through the api.

    Every load is created and posted by the shipper, booked by the carrier's
    dispatcher, assigned by the shipper and released to its own driver, with at
    most ``concurrency`` loads in progress at once. A load the api refuses is
    counted in ``preparation_failures`` and left out of the fleet.
    """
    run_id = uuid.uuid4().hex[:8]
    shipper_admin, carrier_admin, driver_ids = await _create_accounts(settings, run_id, len(trips))
    tokens = TokenBook(settings, carrier_admin.organization_id)
    dispatcher = await _invite_dispatcher(http, tokens, carrier_admin, run_id)
    parties = Parties(shipper_admin, carrier_admin, dispatcher)
    carrier = await _vet_carrier(http, tokens, dispatcher, run_id, vetting_timeout_s)
    console.print(f"  carrier USDOT {carrier['dotNumber']} verified by the platform")
    charging = await _set_up_payments(http, tokens, parties, run_id, payments)

    pool = seed_pool()
    # Drawn in truck order before any request, so a seed gives the same dead zones.
    dead_zones = [_dead_zone(rng, trip, dead_zone_share) for trip in trips]
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()
    first_failure: list[str] = []
    prepared = 0

    async def prepare(index: int) -> SimTruck | None:
        nonlocal prepared
        body = load_body(
            trips[index], pool, pickup_window, delivery_window, f"SIM-{run_id}-{index}"
        )
        async with gate:
            try:
                load_id = await cover_load(http, tokens, parties, body, driver_ids[index])
            except FleetApiError as exc:
                failures[exc.step] += 1
                if not first_failure:
                    first_failure.append(str(exc))
                return None
        prepared += 1
        if prepared % PROGRESS_EVERY == 0:
            console.print(f"  prepared {prepared}/{len(trips)} trucks")
        return SimTruck(index, driver_ids[index], load_id, trips[index], dead_zones[index])

    covered = await asyncio.gather(*(prepare(i) for i in range(len(trips))))
    trucks = [truck for truck in covered if truck is not None]
    if failures:
        console.print(
            f"  [red]{sum(failures.values())} loads refused[/red], first: {first_failure[0]}"
        )
    if not trucks:
        raise FleetApiError("prepare", first_failure[0], status=None, code=None)
    return Fleet(run_id, trucks, parties, tokens, charging, failures)


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


async def _post(
    http: httpx.AsyncClient,
    tally: Tally,
    kind: str,
    url: str,
    body: Any,
    headers: dict[str, str],
) -> int | None:
    """Post fixes and tally the response; return its status code, or None on a transport error."""
    started = time.perf_counter()
    try:
        response = await http.post(
            url, content=orjson.dumps(body), headers={**headers, **JSON_HEADERS}
        )
    except httpx.HTTPError:
        tally.transport_errors += 1
        return None
    tally.record(kind, response, (time.perf_counter() - started) * 1000)
    return response.status_code


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
        url = f"/loads/{truck.load_id}/gps-ping"
        if await _post(http, tally, "single", url, fix, headers) == 409:
            # The shipper confirmed the delivery: the load is no longer tracked, and the
            # app stops reporting it.
            return
    if stored:
        batch = {"loadId": str(truck.load_id), "fixes": stored[:MAX_BATCH]}
        await _post(http, tally, "batch", "/tracking/pings", batch,
                    tokens.headers(truck.driver_id))  # fmt: skip


# --- the shipper's desk: confirming deliveries and paying invoices ---


@dataclass(slots=True)
class ShipperDesk:
    """The shipper's back office: confirms DELIVERED loads, then pays their invoices.

    It works from the shipper's own lists (``GET /loads/mine``, ``GET /invoices``),
    like a person at a desk, not from the simulator's knowledge of the trucks.
    Confirming a load defers the invoice job; the worker issues the invoice.
    """

    http: httpx.AsyncClient
    tokens: TokenBook
    shipper: ApiUser
    payments: bool
    concurrency: int = 16
    completed: set[str] = field(default_factory=set)  # load ids
    charged: set[str] = field(default_factory=set)  # load ids whose invoice was charged
    charges: Counter[str] = field(default_factory=Counter)  # attempt status or error code
    errors: Counter[str] = field(default_factory=Counter)

    async def cycle(self) -> int:
        """Act once on everything waiting; return how many loads and invoices it handled."""
        delivered = await self._pages("/loads/mine", "DELIVERED")
        handled = await self._each(delivered, self._complete)
        if self.payments:
            handled += await self._each(await self._pages("/invoices", "OPEN"), self._charge)
        return handled

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            try:
                await self.cycle()
            except FleetApiError as exc:
                self._failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def close_out(self, timeout_s: float) -> None:
        """Act until nothing is left: no delivered load, no confirmed load waiting to be paid."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                handled = await self.cycle()
            except FleetApiError as exc:
                self._failed(exc)
                handled = 0
            # The worker issues an invoice a moment after its load is confirmed.
            unpaid = self.payments and bool(self.completed - self.charged)
            if not handled and not unpaid:
                return
            await asyncio.sleep(1.0)

    def _failed(self, exc: FleetApiError) -> None:
        # The first failure of each step is printed in full; the rest are counted.
        if not self.errors[exc.step]:
            console.print(f"  [red]The shipper's request failed: {exc}[/red]")
        self.errors[exc.step] += 1

    async def _pages(self, path: str, status: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"status": status, "limit": 100}
        while True:
            page = await api_call(
                self.http, "GET", path, self.tokens.user_headers(self.shipper), params=params
            )
            items.extend(page["items"])
            if not page["nextCursor"]:
                return items
            params["cursor"] = page["nextCursor"]

    async def _each(
        self, items: list[dict[str, Any]], act: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> int:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: dict[str, Any]) -> None:
            async with gate:
                try:
                    await act(item)
                except FleetApiError as exc:
                    self._failed(exc)

        await asyncio.gather(*(one(item) for item in items))
        return len(items)

    async def _complete(self, load: dict[str, Any]) -> None:
        headers = self.tokens.user_headers(self.shipper)
        await api_call(self.http, "POST", f"/loads/{load['id']}/complete", headers)
        self.completed.add(load["id"])

    async def _charge(self, invoice: dict[str, Any]) -> None:
        self.charged.add(invoice["loadId"])
        try:
            result = await api_call(
                self.http,
                "POST",
                f"/invoices/{invoice['id']}/charge",
                self.tokens.user_headers(self.shipper),
                body={"amountCents": invoice["amountCents"]},
                # One key per invoice, so a repeated charge returns the first response.
                key=f"fleet-simulator-charge-{invoice['id']}",
            )
        except FleetApiError as exc:
            self.charges[exc.code or str(exc.status)] += 1  # a decline: 402, card_declined
            return
        self.charges[result["attempt"]["status"]] += 1


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
    concurrency: int = 24,
    payments: bool | None = None,
) -> dict[str, Any]:
    """Cover ``trucks`` loads through the api, drive them, settle the delivered ones.

    ``payments`` None charges the invoices when the api has a payment provider.
    """
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

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=30.0) as http:
        console.print(f"Covering {trucks} loads through the api, {concurrency} at a time ...")
        prepared = time.monotonic()
        now = datetime.now(UTC)
        fleet = await prepare_fleet(
            settings,
            http,
            trips,
            pickup_window=(now - timedelta(minutes=30), now + timedelta(hours=3)),
            delivery_window=(now, now + timedelta(hours=8)),
            rng=rng,
            dead_zone_share=dead_zone_share,
            concurrency=concurrency,
            payments=payments,
        )
        preparation_s = time.monotonic() - prepared
        console.print(f"Prepared {len(fleet.trucks)} trucks in {preparation_s:.1f} s")

        tally = Tally()
        desk = ShipperDesk(http, fleet.tokens, fleet.parties.shipper_admin, fleet.payments)
        longest = max(t.trip.duration_s for t in fleet.trucks)
        console.print(
            f"Driving {len(fleet.trucks)} trucks (run {fleet.run_id}), a fix every "
            f"{interval_s:g} s; longest trip {longest / 60:.1f} min; stopping after "
            f"{duration_s:g} s at the latest; the shipper "
            + ("confirms and pays" if fleet.payments else "confirms")
            + " delivered loads"
        )
        started = time.monotonic()
        deadline = started + duration_s
        tasks = [
            asyncio.create_task(
                drive_truck(
                    truck,
                    http,
                    fleet.tokens,
                    tally,
                    interval_s=interval_s,
                    offset_s=rng.uniform(0.0, interval_s),
                    deadline=deadline,
                    rng=random.Random(seed * 100_003 + truck.index),  # noqa: S311
                )
            )
            for truck in fleet.trucks
        ]
        progress = asyncio.create_task(_report_progress(tally, desk, started, tasks))
        stop_desk = asyncio.Event()
        desk_work = asyncio.create_task(desk.run(stop_desk, DESK_INTERVAL_S))
        await asyncio.gather(*tasks)
        progress.cancel()
        driven_s = time.monotonic() - started
        # The consumer decides a moment after the last fix; give it time to finish.
        await asyncio.sleep(min(settle_s, max(0.0, deadline - time.monotonic()) + settle_s))
        stop_desk.set()
        await desk_work
        await desk.close_out(CLOSE_OUT_S)
    outcome = await fleet_outcome(settings, fleet)
    return {
        "run": fleet.run_id,
        "trucks": trucks,
        "interval_s": interval_s,
        "preparation_s": round(preparation_s, 1),
        "preparation_failures": dict(fleet.preparation_failures),
        "driven_s": round(driven_s, 1),
        "requests": dict(tally.requests),
        "fixes": dict(tally.fixes),
        "late_fixes_sent_in_batches": tally.late_fixes,
        "transport_errors": tally.transport_errors,
        "latency_ms": _percentiles(tally.latencies_ms),
        "payments": fleet.payments,
        "confirmed_by_shipper": len(desk.completed),
        "charges": dict(desk.charges),
        "shipper_errors": dict(desk.errors),
        **outcome,
    }


async def _report_progress(
    tally: Tally, desk: ShipperDesk, started: float, tasks: list[asyncio.Task[None]]
) -> None:
    while True:
        await asyncio.sleep(30.0)
        done = sum(1 for t in tasks if t.done())
        sent = sum(tally.requests.values())
        console.print(
            f"  {time.monotonic() - started:6.0f} s: {sent} requests {dict(tally.requests)}, "
            f"{done}/{len(tasks)} trucks done, fixes {dict(tally.fixes)}, "
            f"{len(desk.completed)} confirmed, charges {dict(desk.charges)}"
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
    """Report where the fleet's loads ended up, who moved them past RELEASED, what was paid."""
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
                    LoadEvent.to_status.in_(
                        [LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED, LoadStatus.COMPLETED]
                    ),
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
        invoices = await _count_by(session, Invoice.status, Invoice.load_id.in_(load_ids))
        attempts = await _count_by(
            session,
            PaymentAttempt.status,
            PaymentAttempt.invoice_id.in_(select(Invoice.id).where(Invoice.load_id.in_(load_ids))),
        )
        paid_out = await _count_by(session, Payout.status, Payout.load_id.in_(load_ids))
    return {
        "load_statuses": dict(statuses),
        "transitions_by_actor": dict(movers),
        "geofence_events": dict(fence),
        "fraud_flags": {str(reason): int(count) for reason, count in flagged},
        "invoices": invoices,
        "charge_attempts": attempts,
        "payouts": paid_out,
    }


async def _count_by(session: Any, column: Any, condition: Any) -> dict[str, int]:
    rows = await session.execute(select(column, func.count()).where(condition).group_by(column))
    return {str(value): int(count) for value, count in rows}


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
    concurrency: int,
    payments: bool | None,
    report: Path | None,
) -> None:
    try:
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
                concurrency=concurrency,
                payments=payments,
            )
        )
    except FleetApiError as exc:
        console.print(f"[red]The simulation stopped: {exc}[/red]")
        raise SystemExit(1) from exc
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
        fleet = await prepare_fleet(
            settings,
            http,
            [trip],
            # Posting needs a pickup window that is still open, however long the drive.
            pickup_window=(
                start - timedelta(hours=1),
                max(start + timedelta(hours=2), datetime.now(UTC) + timedelta(hours=1)),
            ),
            delivery_window=(start, start + span + timedelta(hours=2)),
            rng=random.Random(0),  # noqa: S311
            dead_zone_share=0.0,
            concurrency=1,
        )
        truck, tokens = fleet.trucks[0], fleet.tokens
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
    try:
        summary = asyncio.run(
            replay_track(settings, file, api_url=api_url, every_s=every_s, wait_s=wait_s)
        )
    except FleetApiError as exc:
        console.print(f"[red]The replay stopped: {exc}[/red]")
        raise SystemExit(1) from exc
    _print_summary(summary)
