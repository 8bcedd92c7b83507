"""GPS fix counters move when the ingest API accepts or rejects a ping.

The backlog gauges follow the stream as pings arrive and the consumer takes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY

from superior_one.config import Settings
from superior_one.resources import Resources
from superior_one.tracking import ingest
from superior_one.tracking.validation import FixReason
from tests.observability.conftest import MetricReader
from tests.tracking.factories import PICKUP, consumer, fix, ping, released_load


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def test_gps_accepted_ping_counted(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    before = metric("so_gps_fixes_accepted_total")

    response = await ping(client, haul, fix(_now(), *PICKUP))

    assert response.status_code == 202
    assert metric("so_gps_fixes_accepted_total") == before + 1


async def test_gps_rejected_ping_counted_by_reason(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    before = metric("so_gps_fixes_rejected_total", reason=FixReason.IN_FUTURE.value)

    response = await ping(client, haul, fix(_now() + timedelta(hours=1), *PICKUP))

    assert response.json()["reason"] == FixReason.IN_FUTURE.value
    assert metric("so_gps_fixes_rejected_total", reason=FixReason.IN_FUTURE.value) == before + 1


async def test_gps_backlog_published_as_stream_length_and_lag(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    gps_consumer = consumer(resources)
    await gps_consumer.drain()  # Creates the consumer group, as a running consumer would have.
    await ping(client, haul, fix(_now(), *PICKUP))
    await ping(client, haul, fix(_now() - timedelta(seconds=30), *PICKUP))

    await gps_consumer.publish_backlog()

    assert metric("so_gps_stream_length") == 2
    assert metric("so_gps_consumer_lag") == 2


async def test_gps_backlog_before_stream_exists_is_zero(
    resources: Resources, metric: MetricReader
) -> None:
    await consumer(resources).publish_backlog()

    assert metric("so_gps_stream_length") == 0
    assert metric("so_gps_consumer_lag") == 0


async def test_gps_backlog_without_group_counts_every_entry_as_lag(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    # Pings buffered before any consumer started: nothing was delivered yet.
    haul = await released_load(resources, settings)
    await ping(client, haul, fix(_now(), *PICKUP))

    await consumer(resources).publish_backlog()

    assert metric("so_gps_stream_length") == 1
    assert metric("so_gps_consumer_lag") == 1


async def test_gps_backlog_gauges_drop_when_consumed(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    gps_consumer = consumer(resources)
    await gps_consumer.drain()
    await ping(client, haul, fix(_now(), *PICKUP))
    await gps_consumer.publish_backlog()

    await gps_consumer.drain()
    await gps_consumer.publish_backlog()

    assert metric("so_gps_stream_length") == 0
    assert metric("so_gps_consumer_lag") == 0


async def test_gps_decision_latency_observed_when_consumed(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, metric: MetricReader
) -> None:
    haul = await released_load(resources, settings)
    await ping(client, haul, fix(_now(), *PICKUP))
    before = metric("so_gps_ping_to_decision_seconds_count")

    await consumer(resources).drain()

    assert metric("so_gps_ping_to_decision_seconds_count") == before + 1


def test_gps_rejection_reasons_exported_at_zero() -> None:
    # Present before the first rejection, so rate() counts the first one.
    assert ingest.GPS_FIXES_REJECTED is not None
    for reason in ("too_old", "impossible_speed", "zero_coordinates", "malformed"):
        sample = REGISTRY.get_sample_value("so_gps_fixes_rejected_total", {"reason": reason})
        assert sample is not None
