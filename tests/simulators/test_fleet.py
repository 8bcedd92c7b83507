"""The fleet simulator: a truck's motion, its fixes, and its requests to the api."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest

from superior_one.config import Settings
from superior_one.geo.geodesy import LatLng, destination, distance_m
from superior_one.resources import Resources
from superior_one.simulators.fleet import (
    SimTruck,
    State,
    Tally,
    TokenBook,
    Trip,
    check_loopback,
    drive_truck,
    noisy_fix,
    plan_trip,
)
from superior_one.tracking.rules import GEOFENCE_RULES
from tests.tracking.factories import consumer, released_load, stored_fixes

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
    await consumer(resources).drain()

    assert tally.late_fixes > 0
    assert tally.requests["batch 202"] == 1
    assert tally.transport_errors == 0
    assert len(await stored_fixes(resources, haul.load.id)) == tally.fixes["accepted"]
