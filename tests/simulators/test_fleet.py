"""The fleet simulator: a truck's motion, its fixes, and the business flow through the api."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.geo.geodesy import LatLng, destination, distance_m
from superior_one.jobs.worker import run_worker
from superior_one.loads.lifecycle import Actor, transition_load
from superior_one.loads.models import LoadStatus
from superior_one.resources import Resources
from superior_one.simulators.fleet import (
    ShipperDesk,
    SimTruck,
    State,
    Tally,
    TokenBook,
    Trip,
    check_loopback,
    drive_truck,
    fleet_outcome,
    noisy_fix,
    plan_trip,
    prepare_fleet,
)
from superior_one.simulators.fmcsa import SimulatorServer
from superior_one.simulators.payment_provider import (
    DEFAULT_API_KEY,
    DEFAULT_WEBHOOK_SECRET,
    SimulatorConfig,
    run_payment_provider,
)
from superior_one.tracking.rules import GEOFENCE_RULES
from tests.jobs.helpers import worker_settings
from tests.tracking.factories import Haul, consumer, released_load, stored_fixes

PICKUP = LatLng(47.6062, -122.3321)


def _short_trip() -> Trip:
    """24 m of approach (2 s), 1 s at the pickup, 60 m of road (2 s), 1 s at delivery."""
    start = destination(PICKUP, 270.0, 24.0)
    end = destination(PICKUP, 90.0, 60.0)
    return Trip(path=[start, PICKUP, end], pickup_index=1, cruise_mps=30.0, dwell_s=1.0)


def test_trip_phases_follow_each_other() -> None:
    trip = _short_trip()

    phases = [trip.at(t).phase for t in (0.5, 2.5, 3.5, 5.5, 6.5)]

    assert phases == ["approach", "pickup", "driving", "delivery", "done"]


def test_trip_is_parked_at_the_pickup_while_dwelling() -> None:
    state = _short_trip().at(2.5)

    assert (state.point, state.speed_mps) == (PICKUP, 0.0)


def test_trip_moves_at_cruise_speed_on_the_road() -> None:
    trip = _short_trip()

    moved = distance_m(trip.at(3.2).point, trip.at(4.2).point)

    assert moved == pytest.approx(30.0, abs=0.5)


def test_planned_trip_keeps_the_fences_apart() -> None:
    trip = None
    rng = random.Random(3)
    while trip is None:
        trip = plan_trip(rng, LatLng(41.8781, -87.6298), (6.0, 9.0), 150.0)
    pickup, delivery = trip.path[trip.pickup_index], trip.path[-1]

    assert distance_m(pickup, delivery) > 2 * GEOFENCE_RULES.default_radius_m
    assert 6000 <= trip.cumulative_m[-1] - trip.cumulative_m[trip.pickup_index] <= 9300


def test_noisy_fix_has_an_offset_and_stays_near_the_truck() -> None:
    rng = random.Random(1)
    state = State(PICKUP, 20.0, 90.0, "driving")

    fixes = [noisy_fix(rng, state, datetime.now(UTC), f"c-{i}") for i in range(200)]
    errors = sorted(
        distance_m(PICKUP, (f["latitude"], f["longitude"])) for f in fixes if f["source"] == "gps"
    )

    assert all(f["fixTime"].endswith("+00:00") for f in fixes)
    assert errors[len(errors) // 2] < 15.0


def test_simulator_refuses_a_remote_api() -> None:
    with pytest.raises(ValueError, match="local api"):
        check_loopback("http://api.example.com")


async def _drive(app: object, settings: Settings, haul: Haul, truck: SimTruck) -> Tally:
    """Drive ``truck`` to the end of its short trip against the in-process api."""
    tally = Tally()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await drive_truck(
            truck,
            http,
            TokenBook(settings, haul.dispatcher.organization.id),
            tally,
            interval_s=0.5,
            offset_s=0.0,
            deadline=float("inf"),
            rng=random.Random(5),
        )
    return tally


async def test_truck_posts_fixes_and_a_late_batch_after_its_dead_zone(
    app: object, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings, pickup=(PICKUP.lat, PICKUP.lng))
    truck = SimTruck(
        index=0,
        driver_id=haul.driver.user.id,
        load_id=haul.load.id,
        trip=_short_trip(),
        dead_zone=(2.5, 4.0),
    )

    tally = await _drive(app, settings, haul, truck)
    await consumer(resources).drain()

    assert tally.late_fixes > 0
    assert tally.requests["batch 202"] == 1
    assert tally.transport_errors == 0
    assert len(await stored_fixes(resources, haul.load.id)) == tally.fixes["accepted"]


async def test_truck_stops_on_untracked_load(
    app: object, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(
        resources, settings, status=LoadStatus.COMPLETED, pickup=(PICKUP.lat, PICKUP.lng)
    )
    truck = SimTruck(0, haul.driver.user.id, haul.load.id, _short_trip(), dead_zone=None)

    tally = await _drive(app, settings, haul, truck)

    assert tally.requests == {"single 409": 1}


# --- the business flow through an in-process api, worker, FMCSA and payment simulators ---

FMCSA_WEB_KEY = "fleet-test-key"
BUSINESS_SAMPLES = {
    "posted": ("so_loads_posted_total", {}),
    "assigned": ("so_loads_assigned_total", {}),
    "covered": ("so_loads_covered_total", {}),
    "time_to_cover": ("so_load_time_to_cover_seconds_count", {}),
    "payments_succeeded": ("so_payments_total", {"outcome": "succeeded"}),
}


@pytest.fixture
def platform_settings(settings: Settings) -> Iterator[Settings]:
    """The api and worker against an FMCSA simulator and a payment provider simulator."""
    payment_config = SimulatorConfig(accounts_active_on_create=True)
    with (
        SimulatorServer(web_key=FMCSA_WEB_KEY) as fmcsa,
        run_payment_provider(payment_config) as (_provider, provider_server),
    ):
        yield worker_settings(
            settings,
            jobs_extra_import_paths=[],
            jobs_periodic_max_delay_s=0.0,
            fmcsa_base_url=fmcsa.base_url,
            fmcsa_web_key=SecretStr(FMCSA_WEB_KEY),
            fmcsa_call_budget="1000/minute",
            fmcsa_budget_max_wait_s=0.0,
            fmcsa_retry_attempts=1,
            fmcsa_cache_fresh_s=0,
            stripe_secret_key=SecretStr(DEFAULT_API_KEY),
            stripe_api_base=provider_server.base_url,
            stripe_webhook_secret=SecretStr(DEFAULT_WEBHOOK_SECRET),
        )


@pytest.fixture
async def platform(platform_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the in-process api, with a worker running beside it."""
    application = create_app(platform_settings)
    async with application.router.lifespan_context(application):
        await application.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        worker = asyncio.create_task(
            run_worker(platform_settings, concurrency=2, install_signal_handlers=False)
        )
        transport = httpx.ASGITransport(app=application)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


def _business_samples() -> dict[str, float]:
    return {
        name: REGISTRY.get_sample_value(metric, labels) or 0.0
        for name, (metric, labels) in BUSINESS_SAMPLES.items()
    }


async def _deliver(resources: Resources, trucks: list[SimTruck]) -> None:
    """Move loads to DELIVERED as the gps-consumer does at the geofences."""
    actor = Actor.system("gps consumer")
    async with unit_of_work(resources.sessionmaker) as session:
        for truck in trucks:
            await transition_load(session, truck.load_id, LoadStatus.IN_TRANSIT, actor)
            await transition_load(session, truck.load_id, LoadStatus.DELIVERED, actor)


async def test_fleet_pays_for_delivered_loads(
    platform: httpx.AsyncClient, platform_settings: Settings, resources: Resources
) -> None:
    before = _business_samples()
    now = datetime.now(UTC)

    fleet = await prepare_fleet(
        platform_settings,
        platform,
        [_short_trip() for _ in range(3)],
        pickup_window=(now - timedelta(minutes=30), now + timedelta(hours=3)),
        delivery_window=(now, now + timedelta(hours=8)),
        rng=random.Random(1),
        dead_zone_share=0.0,
        concurrency=3,
        payments=None,
        vetting_timeout_s=20.0,
    )
    await _deliver(resources, fleet.trucks[:2])
    desk = ShipperDesk(platform, fleet.tokens, fleet.parties.shipper_admin, fleet.payments)
    await desk.close_out(timeout_s=30.0)
    after = _business_samples()
    outcome = await fleet_outcome(platform_settings, fleet)

    assert fleet.payments is True
    assert fleet.preparation_failures == {}
    assert {name: after[name] - before[name] for name in after} == {
        "posted": 3,
        "assigned": 3,
        "covered": 3,
        "time_to_cover": 3,
        "payments_succeeded": 2,
    }
    assert outcome["load_statuses"] == {"COMPLETED": 2, "RELEASED": 1}
    assert outcome["transitions_by_actor"]["COMPLETED:USER"] == 2
    assert outcome["invoices"] == {"PAID": 2}
    assert desk.charges == {"SUCCEEDED": 2}
