"""US ZIP lookups from the offline zipcodes package."""

from __future__ import annotations

import random
from zoneinfo import available_timezones

import pytest

from superior_one.geo.roads import MAX_SNAP_M, road_network
from superior_one.geo.zips import (
    CONTIGUOUS_STATES,
    METRO_HUB_ZIPS,
    STATE_CODES,
    all_places,
    lookup_zip,
    normalize_zip,
    random_zips,
    seed_pool,
    zip_matches_state,
)


def test_lookup_zip_returns_seattle_place() -> None:
    place = lookup_zip("98101")

    assert place is not None
    assert (place.city, place.state, place.time_zone) == ("Seattle", "WA", "America/Los_Angeles")
    assert place.lat == pytest.approx(47.6114)
    assert place.lng == pytest.approx(-122.3305)


def test_lookup_zip_accepts_zip_plus_four() -> None:
    assert lookup_zip("60606-1234") == lookup_zip("60606")


def test_lookup_zip_keeps_indiana_zone() -> None:
    place = lookup_zip("46204")

    assert place is not None
    assert place.time_zone == "America/Indiana/Indianapolis"


def test_lookup_zip_repairs_invalid_zone() -> None:
    # zipcodes 3.0.0 stores "Napakiak" (the city) as the time zone of 99634.
    place = lookup_zip("99634")

    assert place is not None
    assert place.time_zone in available_timezones()
    assert place.time_zone.startswith("America/")


def test_lookup_zip_skips_military_zip_without_coordinates() -> None:
    assert lookup_zip("09001") is None


@pytest.mark.parametrize("value", ["", "abcde", "1234", "123456", "98101x"])
def test_normalize_zip_rejects_malformed(value: str) -> None:
    assert normalize_zip(value) is None


def test_lookup_zip_unknown_returns_none() -> None:
    assert lookup_zip("00000") is None


def test_zip_matches_state_true_for_own_state() -> None:
    assert zip_matches_state("98101", "wa")


def test_zip_matches_state_false_for_other_state() -> None:
    assert not zip_matches_state("98101", "OR")


def test_zip_matches_state_false_for_unknown_zip() -> None:
    assert not zip_matches_state("00000", "WA")


def test_every_place_has_iana_zone() -> None:
    zones = available_timezones()

    bad = [p.zip_code for p in all_places() if p.time_zone not in zones]

    assert bad == []


def test_no_place_is_at_zero_zero() -> None:
    assert all(not (p.lat == 0.0 and p.lng == 0.0) for p in all_places())


def test_state_codes_are_the_states_of_locatable_zips() -> None:
    assert {p.state for p in all_places()} == STATE_CODES


@pytest.mark.parametrize("zip_code", METRO_HUB_ZIPS)
def test_metro_hub_zip_is_standard_and_contiguous(zip_code: str) -> None:
    place = lookup_zip(zip_code)

    assert place is not None
    assert place.zip_type == "STANDARD"
    assert place.state in CONTIGUOUS_STATES


def test_seed_pool_holds_active_standard_contiguous_zips() -> None:
    pool = seed_pool()

    assert len(pool) > 1000
    assert all(p.active and p.zip_type == "STANDARD" for p in pool)
    assert all(p.state in CONTIGUOUS_STATES for p in pool)


def test_seed_pool_zips_are_near_freeway_graph() -> None:
    network = road_network()
    sample = random.Random(7).sample(seed_pool(), 200)

    far = [p.zip_code for p in sample if network.snap(p.point)[1] > MAX_SNAP_M]

    assert far == []


def test_random_zips_is_reproducible_with_seed() -> None:
    first = random_zips(random.Random(42), 20)
    second = random_zips(random.Random(42), 20)

    assert first == second
    assert len(first) == 20


def test_random_zips_rejects_empty_pool() -> None:
    with pytest.raises(ValueError, match="empty pool"):
        random_zips(random.Random(1), 3, pool=[])
