"""``geo_events`` partitions: one per UTC day, created ahead, dropped after retention.

The scheduled job (``jobs.maintain_partitions``, hourly) calls
:func:`maintain_partitions`. Writers also call :meth:`PartitionGuard.ensure`
before a batch, so a fix for a day without a partition (the job did not run)
creates it instead of failing; that takes a brief exclusive lock on the parent
table, in a transaction of its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.config import Settings, get_settings
from superior_one.db import unit_of_work
from superior_one.tracking.rules import validation_rules_from_settings

log = structlog.get_logger(__name__)

PARTITION_NAME = re.compile(r"^geo_events_p(\d{8})$")
# Two writers creating the same partition would collide; this lock orders them.
_ADVISORY_LOCK_KEY = 0x67656F5F6576  # "geo_ev"


@dataclass(frozen=True, slots=True)
class PartitionReport:
    created: list[str]
    dropped: list[str]


def partition_name(day: date) -> str:
    return f"geo_events_p{day:%Y%m%d}"


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


async def existing_partition_days(session: AsyncSession) -> set[date]:
    rows = await session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'geo_events'::regclass"
        )
    )
    days: set[date] = set()
    for (name,) in rows:
        match = PARTITION_NAME.match(name)
        if match:
            days.add(datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date())
    return days


async def create_partitions(session: AsyncSession, days: Iterable[date]) -> list[str]:
    """Create the partitions of ``days`` that do not exist; return the names created."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    created: list[str] = []
    for day in wanted:
        name = (
            await session.execute(text("SELECT geo_events_create_partition(:day)"), {"day": day})
        ).scalar_one()
        if name is not None:
            created.append(name)
    if created:
        log.info("tracking.partitions_created", partitions=created)
    return created


async def drop_expired_partitions(
    session: AsyncSession, retention_days: int, today: date
) -> list[str]:
    """Drop partitions whose whole day is older than ``retention_days`` before ``today``."""
    cutoff = today - timedelta(days=retention_days)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    dropped: list[str] = []
    for day in sorted(await existing_partition_days(session)):
        # A partition contains [day, day + 1): every fix in it is older than the cutoff.
        if day + timedelta(days=1) <= cutoff:
            name = partition_name(day)
            await session.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            dropped.append(name)
    if dropped:
        log.info("tracking.partitions_dropped", partitions=dropped, retention_days=retention_days)
    return dropped


async def maintain_partitions(
    session: AsyncSession, settings: Settings | None = None, *, today: date | None = None
) -> PartitionReport:
    """Create the partitions for the next ``gps_partitions_ahead_days`` (and for the
    days a fix can still be accepted for), and drop those past ``gps_retention_days``.

    Called hourly by the job system's partition-maintenance task; idempotent.
    """
    settings = settings or get_settings()
    today = today or datetime.now(UTC).date()
    # Fixes are accepted up to the maximum fix age, so those days need partitions too.
    behind = math.ceil(validation_rules_from_settings(settings).max_age_s / 86_400) + 1
    days = [
        today + timedelta(days=n) for n in range(-behind, settings.gps_partitions_ahead_days + 1)
    ]
    created = await create_partitions(session, days)
    dropped = await drop_expired_partitions(session, settings.gps_retention_days, today)
    return PartitionReport(created=created, dropped=dropped)


@dataclass(slots=True)
class PartitionGuard:
    """Remembers which partitions exist, so a writer checks the catalog only for a new day."""

    known: set[date] = field(default_factory=set)

    async def ensure(
        self, sessionmaker: async_sessionmaker[AsyncSession], fix_times: Iterable[datetime]
    ) -> list[str]:
        days = {utc_day(t) for t in fix_times} - self.known
        if not days:
            return []
        async with unit_of_work(sessionmaker) as session:
            self.known |= await existing_partition_days(session)
            missing = days - self.known
            created = await create_partitions(session, missing) if missing else []
        self.known |= days
        return created
