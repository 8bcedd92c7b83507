"""geo_events partitions: created ahead, dropped after retention, created on demand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.resources import Resources
from superior_one.tracking.partitions import (
    PartitionGuard,
    create_partitions,
    existing_partition_days,
    maintain_partitions,
    partition_name,
)


def _today() -> date:
    return datetime.now(UTC).date()


async def _days(resources: Resources) -> set[date]:
    async with unit_of_work(resources.sessionmaker) as session:
        return await existing_partition_days(session)


async def test_maintenance_creates_partitions_ahead(
    resources: Resources, settings: Settings
) -> None:
    ahead = settings.model_copy(update={"gps_partitions_ahead_days": 12})

    async with unit_of_work(resources.sessionmaker) as session:
        report = await maintain_partitions(session, ahead)

    assert partition_name(_today() + timedelta(days=12)) in report.created
    assert _today() + timedelta(days=12) in await _days(resources)


async def test_maintenance_drops_partitions_past_retention(
    resources: Resources, settings: Settings
) -> None:
    old = [_today() - timedelta(days=n) for n in (200, 120, 89)]
    async with unit_of_work(resources.sessionmaker) as session:
        await create_partitions(session, old)
    retention = settings.model_copy(update={"gps_retention_days": 90})

    async with unit_of_work(resources.sessionmaker) as session:
        report = await maintain_partitions(session, retention)
    remaining = await _days(resources)

    assert report.dropped == [partition_name(old[0]), partition_name(old[1])]
    assert old[2] in remaining
    assert _today() in remaining


async def test_maintenance_twice_changes_nothing_the_second_time(
    resources: Resources, settings: Settings
) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        await maintain_partitions(session, settings)

    async with unit_of_work(resources.sessionmaker) as session:
        report = await maintain_partitions(session, settings)

    assert (report.created, report.dropped) == ([], [])


async def test_guard_creates_a_missing_day_before_a_write(resources: Resources) -> None:
    day = _today() + timedelta(days=40)
    guard = PartitionGuard()

    created = await guard.ensure(
        resources.sessionmaker, [datetime.combine(day, time(12), tzinfo=UTC)]
    )

    assert created == [partition_name(day)]
    assert day in await _days(resources)


async def test_guard_remembers_known_days(resources: Resources) -> None:
    guard = PartitionGuard()
    noon = datetime.combine(_today(), time(12), tzinfo=UTC)
    await guard.ensure(resources.sessionmaker, [noon])

    second = await guard.ensure(resources.sessionmaker, [noon + timedelta(minutes=5)])

    assert second == []
    assert _today() in guard.known
