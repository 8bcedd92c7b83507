"""Ingest over HTTP: authorization, per-fix results, idempotent duplicates, the stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.loads.models import LoadStatus
from superior_one.redis import key
from superior_one.resources import Resources
from superior_one.tracking.models import FraudReason, GeoEvent
from superior_one.tracking.rules import VALIDATION_RULES
from tests.loads.factories import add_user, create_party
from tests.tracking.factories import (
    PICKUP,
    consumer,
    count_fixes,
    fix,
    flags,
    ping,
    ping_batch,
    released_load,
    stored_fixes,
)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _stream_length(resources: Resources, settings: Settings) -> int:
    return int(await resources.redis.xlen(key(settings, "gps", "stream")))


async def test_gps_ping_accepted_and_buffered_in_stream(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await ping(client, haul, fix(_now(), *PICKUP))

    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert response.json()["bufferedIn"] == "stream"
    assert await _stream_length(resources, settings) == 1


async def test_gps_ping_is_not_stored_before_the_consumer_runs(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    await ping(client, haul, fix(_now(), *PICKUP))

    assert await count_fixes(resources) == 0
    await consumer(resources).drain()
    assert await count_fixes(resources) == 1


async def test_gps_ping_retry_is_duplicate_and_stored_once(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    body = fix(_now(), *PICKUP, client_fix_id="c-1")

    first = await ping(client, haul, body)
    retry = await ping(client, haul, body)
    await consumer(resources).drain()

    assert first.json()["results"][0]["status"] == "accepted"
    assert retry.status_code == 202
    assert retry.json()["results"][0]["status"] == "duplicate"
    assert len(await stored_fixes(resources, haul.load.id)) == 1


async def test_gps_ping_same_client_fix_id_other_time_is_duplicate(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    await ping(client, haul, fix(now, *PICKUP, client_fix_id="c-9"))

    retry = await ping(client, haul, fix(now + timedelta(seconds=5), *PICKUP, client_fix_id="c-9"))

    assert retry.json()["results"][0]["status"] == "duplicate"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"latitude": 91.0}, "latitude_out_of_range"),
        ({"latitude": 0.0, "longitude": 0.0}, "zero_coordinates"),
        ({"fixTime": "2024-06-12T11:02:30"}, "missing_offset"),
        ({"accuracyM": 0}, "accuracy_out_of_range"),
    ],
)
async def test_gps_ping_rejected_fix_answers_422_with_reason(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    change: dict[str, object],
    reason: str,
) -> None:
    haul = await released_load(resources, settings)

    response = await ping(client, haul, {**fix(_now(), *PICKUP), **change})

    assert response.status_code == 422
    assert response.json()["reason"] == reason


async def test_gps_ping_rejects_fix_from_the_future(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await ping(client, haul, fix(_now() + timedelta(hours=1), *PICKUP))

    assert response.json()["reason"] == "in_future"


async def test_gps_ping_rejects_too_old_fix(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await ping(client, haul, fix(_now() - timedelta(days=4), *PICKUP))

    assert response.json()["reason"] == "too_old"


async def test_gps_ping_rejects_impossible_jump(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    await ping(client, haul, fix(now - timedelta(seconds=30), *PICKUP))

    # About 11 km in 30 s: 370 m/s.
    response = await ping(client, haul, fix(now, PICKUP[0] + 0.1, PICKUP[1]))

    assert response.json()["reason"] == "impossible_speed"


async def test_batch_reports_each_fix_and_keeps_the_good_ones(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    fixes = [
        fix(now - timedelta(seconds=60), *PICKUP),
        {"latitude": "north", "fixTime": now.isoformat()},
        fix(now - timedelta(seconds=30), 0.0, 0.0),
        fix(now, *PICKUP),
    ]

    response = await ping_batch(client, haul, fixes)
    await consumer(resources).drain()

    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == [
        "accepted", "rejected", "rejected", "accepted"
    ]  # fmt: skip
    assert [r["reason"] for r in response.json()["results"]][1:3] == [
        "malformed",
        "zero_coordinates",
    ]
    assert len(await stored_fixes(resources, haul.load.id)) == 2


async def test_batch_items_that_are_not_objects_fail_only_themselves(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    fixes: list[Any] = [fix(_now(), *PICKUP), "not-a-fix", 5, None]

    response = await ping_batch(client, haul, fixes)

    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == [
        "accepted", "rejected", "rejected", "rejected"
    ]  # fmt: skip
    assert {r["reason"] for r in response.json()["results"][1:]} == {"malformed"}


async def test_fix_with_nul_character_is_rejected_not_buffered(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    # PostgreSQL text cannot hold NUL; accepted, the fix could never be stored.
    haul = await released_load(resources, settings)
    bad = fix(_now() - timedelta(seconds=30), *PICKUP, client_fix_id="nul\u0000id")
    bad["source"] = "g\x00ps"

    single = await ping(client, haul, bad)
    batch = await ping_batch(client, haul, [bad, fix(_now(), *PICKUP)])
    await consumer(resources).drain()

    assert single.status_code == 422
    assert [r["status"] for r in batch.json()["results"]] == ["rejected", "accepted"]
    assert batch.json()["results"][0]["reason"] == "malformed"
    assert len(await stored_fixes(resources, haul.load.id)) == 1


async def test_fix_source_too_long_is_rejected(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    # geo_events.source takes 16 characters. A longer source was accepted with 202,
    # then PostgreSQL rejected it in the consumer, so the fix was never stored.
    haul = await released_load(resources, settings)
    long_source = {**fix(_now() - timedelta(seconds=30), *PICKUP), "source": "fused-network-gps"}

    single = await ping(client, haul, long_source)
    batch = await ping_batch(client, haul, [long_source, fix(_now(), *PICKUP)])
    await consumer(resources).drain()

    assert (single.status_code, single.json()["reason"]) == (422, "source_too_long")
    assert "source" in single.json()["detail"]
    assert [r["reason"] for r in batch.json()["results"]] == ["source_too_long", "accepted"]
    assert len(await stored_fixes(resources, haul.load.id)) == 1


def test_fix_source_limit_matches_column() -> None:
    assert VALIDATION_RULES.max_source_length == GeoEvent.__table__.c.source.type.length


async def test_batch_over_500_fixes_is_refused(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    fixes = [fix(now - timedelta(seconds=i), *PICKUP) for i in range(501)]

    response = await ping_batch(client, haul, fixes)

    assert response.status_code == 422


async def test_batch_of_500_fixes_is_accepted(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    now = _now()
    fixes = [fix(now - timedelta(seconds=i), *PICKUP) for i in range(500)]

    response = await ping_batch(client, haul, fixes)
    await consumer(resources).drain()

    assert response.json()["accepted"] == 500
    assert len(await stored_fixes(resources, haul.load.id)) == 500


async def test_dispatcher_of_the_carrier_may_send(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await ping(client, haul, fix(_now(), *PICKUP), headers=haul.dispatcher.headers)

    assert response.status_code == 202


async def test_other_driver_of_the_same_carrier_gets_403_and_a_flag(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    other = await add_user(resources.sessionmaker, settings, haul.dispatcher, Role.DRIVER)

    response = await ping(client, haul, fix(_now(), *PICKUP), headers=other.headers)
    recorded = await flags(resources, haul.load.id)

    assert response.status_code == 403
    assert [f.reason for f in recorded] == [FraudReason.UNAUTHORIZED_SENDER]
    assert recorded[0].actor_user_id == other.user.id
    assert recorded[0].carrier_organization_id == haul.dispatcher.organization.id


async def test_another_carrier_gets_403_and_repeats_count_on_one_flag(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)
    stranger = await create_party(
        resources.sessionmaker, settings, OrganizationType.CARRIER, Role.DRIVER
    )

    for _ in range(3):
        response = await ping(client, haul, fix(_now(), *PICKUP), headers=stranger.headers)
    recorded = await flags(resources, haul.load.id)

    assert response.status_code == 403
    assert response.json()["code"] == "not_the_assigned_driver"
    assert len(recorded) == 1
    assert recorded[0].occurrences == 3


async def test_batch_from_someone_else_is_refused_and_nothing_buffered(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await ping_batch(client, haul, [fix(_now(), *PICKUP)], headers=haul.shipper.headers)

    assert response.status_code == 403
    assert await _stream_length(resources, settings) == 0


async def test_unknown_load_is_404(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings)

    response = await client.post(
        "/loads/00000000-0000-4000-8000-000000000000/gps-ping",
        json=fix(_now(), *PICKUP),
        headers=haul.driver.headers,
    )

    assert response.status_code == 404


async def test_delivered_load_still_accepts_late_fixes(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings, status=LoadStatus.DELIVERED)

    response = await ping(client, haul, fix(_now() - timedelta(minutes=20), *PICKUP))

    assert response.status_code == 202


async def test_completed_load_is_not_trackable(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    haul = await released_load(resources, settings, status=LoadStatus.COMPLETED)

    response = await ping(client, haul, fix(_now(), *PICKUP))

    assert response.status_code == 409
    assert response.json()["code"] == "load_not_trackable"
