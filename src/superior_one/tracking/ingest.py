"""Ingest: authorize the sender, validate each fix, buffer the accepted ones durably.

The response goes out once the fixes are in the Redis stream, not after
geofence work, which the gps-consumer does. The hot path opens no database
session when the load is in this process's cache: two Redis round trips (the
driver's recent fixes, then the append). The other paths (a load not cached, a
sender to flag, Redis down) each open a unit of work of their own.

With Redis unavailable the fixes go straight into ``geo_events`` with
``geofence_pending`` set; the gps-consumer evaluates them later. After a Redis
failure a process uses that path for ``REDIS_RETRY_S`` before trying Redis again,
so an outage costs each request one failed attempt at most.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from cachetools import TTLCache
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import Role
from superior_one.auth.principal import Principal
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.loads.models import LoadStatus
from superior_one.observability.metrics import GPS_FIXES_ACCEPTED, GPS_FIXES_REJECTED
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS
from superior_one.tracking import errors
from superior_one.tracking.fraud import flag_unauthorized_sender
from superior_one.tracking.partitions import PartitionGuard
from superior_one.tracking.repository import LoadFacts, TrackingRepository
from superior_one.tracking.rules import FixValidationRules, validation_rules_from_settings
from superior_one.tracking.stream import BufferedFix, GpsStream, RecentFixes
from superior_one.tracking.validation import (
    FixReason,
    FixVerdict,
    GpsFixIn,
    ValidationContext,
    validate_fixes,
)

log = structlog.get_logger(__name__)

# Statuses in which a load's driver reports positions. DELIVERED stays open so
# fixes stored through a dead zone before the delivery still arrive.
TRACKABLE = frozenset({LoadStatus.RELEASED, LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED})
DISPATCHING_ROLES = frozenset({Role.DISPATCHER, Role.ORG_ADMIN})
REDIS_RETRY_S = 5.0
LOAD_CACHE_SIZE = 100_000

BufferedIn = Literal["stream", "database", "none"]

# Every rejection reason exported at 0 from the start, as fraud flags are: rate()
# cannot see the first increment of a series that appears with it.
for _reason in FixReason:
    if _reason not in (FixReason.ACCEPTED, FixReason.DUPLICATE):
        GPS_FIXES_REJECTED.labels(_reason.value)


@dataclass(slots=True)
class TrackingRuntime:
    """The tracking domain's long-lived objects in one api process."""

    settings: Settings
    stream: GpsStream
    # For the partition check of direct writes, in a transaction of its own.
    sessionmaker: async_sessionmaker[AsyncSession]
    validation_rules: FixValidationRules
    load_cache: TTLCache[uuid.UUID, LoadFacts]
    partitions: PartitionGuard = field(default_factory=PartitionGuard)
    redis_retry_at: float = 0.0

    @classmethod
    def create(
        cls, settings: Settings, redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> TrackingRuntime:
        return cls(
            settings=settings,
            stream=GpsStream(redis, settings),
            sessionmaker=sessionmaker,
            validation_rules=validation_rules_from_settings(settings),
            load_cache=TTLCache(
                maxsize=LOAD_CACHE_SIZE, ttl=max(settings.gps_load_cache_ttl_s, 0.001)
            ),
        )

    def redis_usable(self) -> bool:
        return time.monotonic() >= self.redis_retry_at

    def redis_failed(self, exc: BaseException) -> None:
        self.redis_retry_at = time.monotonic() + REDIS_RETRY_S
        log.warning(
            "tracking.redis_unavailable", error=type(exc).__name__, retry_in_s=REDIS_RETRY_S
        )


@dataclass(frozen=True, slots=True)
class IngestResult:
    load_id: uuid.UUID
    verdicts: list[FixVerdict]
    buffered_in: BufferedIn

    def count(self, status: str) -> int:
        return sum(1 for v in self.verdicts if v.status == status)


def may_send(principal: Principal, facts: LoadFacts) -> bool:
    """Return whether the principal is the load's assigned driver, or a dispatcher (or
    admin) of its assigned carrier."""
    if facts.driver_user_id is not None and principal.user_id == facts.driver_user_id:
        return True
    return (
        facts.carrier_organization_id is not None
        and principal.organization_id == facts.carrier_organization_id
        and principal.role in DISPATCHING_ROLES
    )


async def ingest_fixes(
    runtime: TrackingRuntime,
    principal: Principal,
    load_id: uuid.UUID,
    fixes: Sequence[GpsFixIn | Mapping[str, Any]],
) -> IngestResult:
    """Authorize, validate and buffer one request's fixes for one load."""
    facts = await _load_facts(runtime, load_id)
    if facts is None:
        raise errors.TrackedLoadNotFoundError(f"Load {load_id} does not exist.")
    if not may_send(principal, facts):
        async with unit_of_work(runtime.sessionmaker) as session:
            await flag_unauthorized_sender(TrackingRepository(session), facts, principal)
        raise errors.UnauthorizedSenderError(
            f"Only the driver assigned to load {load_id}, or a dispatcher of its carrier, "
            "may send its positions. This attempt was recorded."
        )
    if facts.status not in TRACKABLE or facts.driver_user_id is None:
        raise errors.LoadNotTrackableError(
            f"Load {load_id} is {facts.status}; positions are taken once a driver is "
            "released on it and until it is delivered.",
            currentStatus=facts.status.value,
        )
    driver = facts.driver_user_id
    carrier = facts.carrier_organization_id
    assert carrier is not None  # a load with a driver has a carrier (database check)

    parsed = [_parse(raw) for raw in fixes]
    now = datetime.now(UTC)
    earliest = min(
        (p.fix_time for p in parsed if isinstance(p, GpsFixIn) and p.fix_time.tzinfo is not None),
        default=None,
    )
    # NOTE: client fix ids are remembered for the driver's last
    # gps_recent_fixes_per_driver fixes only; a retry of an older fix with another
    # fix time is stored again (the same fix time is always caught by geo_events).
    client_fix_ids = [
        p.client_fix_id for p in parsed if isinstance(p, GpsFixIn) and p.client_fix_id is not None
    ]
    use_redis = runtime.redis_usable()
    recent: RecentFixes | None = None
    if use_redis:
        try:
            recent = await runtime.stream.recent_fixes(driver, earliest, client_fix_ids)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            runtime.redis_failed(exc)
            use_redis = False
    if recent is None:
        oldest = now - timedelta(seconds=runtime.validation_rules.max_age_s)
        async with unit_of_work(runtime.sessionmaker) as session:
            recent = await TrackingRepository(session).driver_fix_context(
                driver, earliest, oldest, client_fix_ids
            )

    context = ValidationContext(
        driver_id=str(driver),
        now=now,
        known_fix_times=recent.fix_times,
        known_client_fix_ids=recent.client_fix_ids,
        neighbours=recent.neighbours,
    )
    verdicts = validate_fixes(parsed, context, runtime.validation_rules)
    accepted = [
        BufferedFix(
            load_id=load_id,
            driver_user_id=driver,
            carrier_organization_id=carrier,
            sender_user_id=principal.user_id,
            received_at=now,
            fix=v.fix,
        )
        for v in verdicts
        if v.status == "accepted" and v.fix is not None
    ]

    buffered_in: BufferedIn = "none"
    if accepted and use_redis:
        try:
            await runtime.stream.append(accepted)
            buffered_in = "stream"
        except REDIS_UNAVAILABLE_ERRORS as exc:
            runtime.redis_failed(exc)
    if accepted and buffered_in == "none":
        verdicts = await _write_direct(runtime, accepted, verdicts)
        buffered_in = "database"

    result = IngestResult(load_id=load_id, verdicts=verdicts, buffered_in=buffered_in)
    _count(result)
    return result


async def _load_facts(runtime: TrackingRuntime, load_id: uuid.UUID) -> LoadFacts | None:
    cached = runtime.load_cache.get(load_id)
    if cached is not None:
        return cached
    async with unit_of_work(runtime.sessionmaker) as session:
        facts = await TrackingRepository(session).load_facts(load_id)
    # Only trackable loads are cached: their carrier and driver no longer change.
    if facts is not None and facts.status in TRACKABLE:
        runtime.load_cache[load_id] = facts
    return facts


def _parse(raw: GpsFixIn | Mapping[str, Any]) -> GpsFixIn | Mapping[str, Any]:
    # A malformed fix stays raw; validation reports it with its own reason code.
    if isinstance(raw, GpsFixIn):
        return raw
    try:
        return GpsFixIn.model_validate(raw)
    except ValidationError:
        return raw


async def _write_direct(
    runtime: TrackingRuntime, accepted: list[BufferedFix], verdicts: list[FixVerdict]
) -> list[FixVerdict]:
    """Store fixes in PostgreSQL for the consumer's sweep; report the ones already stored."""
    await runtime.partitions.ensure(runtime.sessionmaker, [b.fix.fix_time for b in accepted])
    async with unit_of_work(runtime.sessionmaker) as session:
        stored = await TrackingRepository(session).store_fixes(accepted, geofence_pending=True)
    new_times = {row.fix_time for row in stored}
    log.info("tracking.fixes_written_directly", count=len(stored), load_id=str(accepted[0].load_id))
    return [
        v.model_copy(update={"status": "duplicate", "reason": FixReason.DUPLICATE})
        if v.status == "accepted" and v.fix is not None and v.fix.fix_time not in new_times
        else v
        for v in verdicts
    ]


def _count(result: IngestResult) -> None:
    accepted = result.count("accepted")
    if accepted:
        GPS_FIXES_ACCEPTED.inc(accepted)
    for verdict in result.verdicts:
        if verdict.status == "rejected":
            GPS_FIXES_REJECTED.labels(verdict.reason.value).inc()
