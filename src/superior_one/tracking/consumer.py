"""The gps-consumer process: stream -> geo_events -> geofences -> load lifecycle.

Each consumer reads the GPS stream in one consumer group, so an entry goes to
one consumer. For each batch it, in order:

1. makes sure the partitions for the fixes' days exist (own transaction);
2. in one transaction: COPYs the fixes into ``geo_events`` (duplicates are
   skipped by the unique key), moves ``truck_positions`` forward by fix time,
   evaluates geofences of the newly stored fixes and applies their decisions;
3. after the commit, moves the trucks in the Redis GEO set (by fix time,
   never backwards);
4. only then acknowledges and deletes the entries.

A consumer killed anywhere in that sequence loses nothing: its entries stay
pending in the group, and any consumer claims them (XAUTOCLAIM) once they have
been idle for ``gps_consumer_claim_idle_s``. Processing them again stores
nothing twice and decides nothing twice, because only newly inserted rows are
evaluated and the geofence state commits with the rows.

It also evaluates the fixes the api wrote straight to PostgreSQL while Redis
was down (``geofence_pending``), and keeps doing so while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
import structlog
from sqlalchemy.exc import DBAPIError

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.observability.metrics import (
    GPS_CONSUMER_LAG,
    GPS_PING_TO_DECISION,
    GPS_STREAM_LENGTH,
    start_metrics_server,
)
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS, key
from superior_one.resources import Resources, open_resources
from superior_one.tracking.geofencing import EvaluationReport, evaluate_fixes
from superior_one.tracking.partitions import PartitionGuard
from superior_one.tracking.repository import StoredFixRow, TrackingRepository
from superior_one.tracking.stream import BufferedFix, GpsStream, StreamEntry, decode_entry

log = structlog.get_logger(__name__)

SWEEP_BATCH = 1000
METRICS_INTERVAL_S = 5.0
# A batch that fails (a deadlock, a dropped connection) is retried this many times
# right away; after that its entries wait in the pending list to be claimed.
BATCH_ATTEMPTS = 3
ERROR_BACKOFF_S = 1.0
# Consumers silent this long with nothing pending are removed from the group.
FORGET_IDLE_CONSUMERS_S = 3600.0


@dataclass(slots=True)
class BatchReport:
    entries: int = 0
    fixes: int = 0
    stored: int = 0
    malformed: int = 0
    evaluation: EvaluationReport = field(default_factory=EvaluationReport)


class GpsConsumer:
    """One member of the consumer group. Tests drive it step by step."""

    def __init__(
        self,
        resources: Resources,
        *,
        name: str | None = None,
        batch_entries: int | None = None,
        claim_idle_s: float | None = None,
    ) -> None:
        settings = resources.settings
        self.settings = settings
        self.sessionmaker = resources.sessionmaker
        self.stream = GpsStream(resources.redis, settings)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_entries = batch_entries or settings.gps_consumer_batch_entries
        self.claim_idle_ms = int((claim_idle_s or settings.gps_consumer_claim_idle_s) * 1000)
        # A blocking read must end before the client's socket timeout does.
        self.block_ms = max(
            1, min(settings.gps_consumer_block_ms, int(settings.redis_socket_timeout_s * 600))
        )
        self.linger_s = settings.gps_consumer_linger_ms / 1000
        self.dead_letter_key = key(settings, "gps", "stream", "dead")
        self.partitions = PartitionGuard()
        self._next_claim = 0.0
        self._next_sweep = 0.0
        self._next_metrics = 0.0
        self._group_ready = False

    # --- the loop ---

    async def run(self, stop: asyncio.Event) -> None:
        log.info("gps_consumer.started", consumer=self.name, group=self.stream.group)
        while not stop.is_set():
            try:
                processed = await self.step()
                if 0 < processed < self.batch_entries and self.linger_s > 0:
                    await _sleep_or_stop(stop, self.linger_s)
            except REDIS_UNAVAILABLE_ERRORS as exc:
                log.warning("gps_consumer.redis_unavailable", error=type(exc).__name__)
                self._group_ready = False
                await self._sweep_safely()
                await _sleep_or_stop(stop, ERROR_BACKOFF_S)
            except Exception:
                log.exception("gps_consumer.step_failed", consumer=self.name)
                await _sleep_or_stop(stop, ERROR_BACKOFF_S)
        log.info("gps_consumer.stopped", consumer=self.name)

    async def step(self, *, block: bool = True) -> int:
        """Run one round: claim stale entries and sweep when due, then read new entries."""
        if not self._group_ready:
            await self.stream.ensure_group()
            self._group_ready = True
        now = time.monotonic()
        done = 0
        if now >= self._next_claim:
            self._next_claim = now + self.settings.gps_consumer_claim_interval_s
            done += await self.claim_and_process()
        if now >= self._next_sweep:
            self._next_sweep = now + self.settings.gps_consumer_sweep_interval_s
            done += await self.sweep()
        if now >= self._next_metrics:
            self._next_metrics = now + METRICS_INTERVAL_S
            await self.publish_backlog()
        done += await self.read_and_process(block_ms=self.block_ms if block else None)
        return done

    async def drain(self) -> int:
        """Process everything available now without blocking (tests, replays)."""
        await self.stream.ensure_group()
        self._group_ready = True
        total = await self.claim_and_process() + await self.sweep()
        while (processed := await self.read_and_process(block_ms=None)) > 0:
            total += processed
        return total

    # --- sources of work ---

    async def read_and_process(self, *, block_ms: int | None) -> int:
        entries = await self.stream.read_new(self.name, self.batch_entries, block_ms)
        if entries:
            await self.process(entries)
        return len(entries)

    async def claim_and_process(self) -> int:
        """Take over entries that another (dead) consumer left unacknowledged."""
        claimed, deleted = await self.stream.claim_stale(
            self.name, self.claim_idle_ms, self.batch_entries
        )
        if deleted:
            await self.stream.acknowledge(deleted)
        if claimed:
            log.warning("gps_consumer.claimed_entries", consumer=self.name, count=len(claimed))
            await self.process(claimed)
        forgotten = await self.stream.forget_idle_consumers(
            self.name, int(FORGET_IDLE_CONSUMERS_S * 1000)
        )
        if forgotten:
            log.info("gps_consumer.forgot_consumers", consumers=forgotten)
        return len(claimed)

    async def sweep(self) -> int:
        """Evaluate fixes the api wrote to PostgreSQL while Redis was down."""
        total = 0
        while True:
            async with unit_of_work(self.sessionmaker) as session:
                repository = TrackingRepository(session)
                pending = await repository.pending_fixes(SWEEP_BATCH)
                if pending:
                    await repository.upsert_positions(pending)
                    await evaluate_fixes(session, pending)
                    await repository.mark_evaluated(pending)
            if pending:
                total += len(pending)
                log.info("gps_consumer.swept_direct_fixes", count=len(pending))
                self._observe_decisions(pending)
                with contextlib.suppress(*REDIS_UNAVAILABLE_ERRORS):
                    await self.stream.update_positions(_buffered(f) for f in pending)
            if len(pending) < SWEEP_BATCH:
                return total

    # --- one batch ---

    async def process(self, raw_entries: Sequence[tuple[bytes, bytes]]) -> BatchReport:
        entries: list[StreamEntry] = []
        malformed: list[tuple[bytes, bytes]] = []
        payloads = dict(raw_entries)
        for entry_id, payload in raw_entries:
            try:
                entries.append(decode_entry(entry_id, payload))
            except ValueError:
                log.error("gps_consumer.entry_malformed", entry_id=entry_id.decode())
                malformed.append((entry_id, payload))
        fixes = [fix for entry in entries for fix in entry.fixes]

        report = BatchReport(entries=len(raw_entries), fixes=len(fixes))
        if fixes:
            try:
                stored, report.evaluation = await self._store_with_retry(fixes)
            except (DBAPIError, psycopg.Error) as exc:
                if not _rejects_the_data(exc):
                    raise
                # One entry PostgreSQL cannot store must not hold back the others,
                # batch after batch: store entry by entry and set the rejected aside.
                stored, report.evaluation, rejected = await self._store_entry_by_entry(entries)
                entries = [e for e in entries if e.entry_id not in rejected]
                malformed += [(entry_id, payloads[entry_id]) for entry_id in rejected]
            report.stored = len(stored)
            self._observe_decisions(stored)
        report.malformed = len(malformed)
        if malformed:
            # Kept for inspection rather than lost; nothing can process them.
            async with self.stream.redis.pipeline(transaction=False) as pipe:
                for entry_id, payload in malformed:
                    pipe.xadd(self.dead_letter_key, {"id": entry_id, "p": payload})
                await pipe.execute()
        fixes = [fix for entry in entries for fix in entry.fixes]
        if fixes:
            try:
                await self.stream.update_positions(fixes)
            except REDIS_UNAVAILABLE_ERRORS as exc:
                # truck_positions in PostgreSQL is already right; Redis catches up later.
                log.warning("gps_consumer.positions_not_updated", error=type(exc).__name__)
        # Last: until here a crash leaves the entries pending, and processing them
        # again stores and decides nothing twice.
        await self.stream.acknowledge([e.entry_id for e in entries] + [m[0] for m in malformed])
        if report.evaluation.transitions:
            for load_id, status, fix_id in report.evaluation.transitions:
                log.info("gps_consumer.load_moved", load_id=str(load_id), to_status=status.value,
                         gps_fix_id=fix_id)  # fmt: skip
        return report

    async def _store_entry_by_entry(
        self, entries: Sequence[StreamEntry]
    ) -> tuple[list[StoredFixRow], EvaluationReport, set[bytes]]:
        stored: list[StoredFixRow] = []
        evaluation = EvaluationReport()
        rejected: set[bytes] = set()
        for entry in entries:
            try:
                entry_stored, entry_evaluation = await self._store_with_retry(list(entry.fixes))
            except (DBAPIError, psycopg.Error) as exc:
                if not _rejects_the_data(exc):
                    raise
                log.error(
                    "gps_consumer.entry_rejected_by_database",
                    entry_id=entry.entry_id.decode(),
                    load_id=str(entry.fixes[0].load_id) if entry.fixes else None,
                    error=type(getattr(exc, "orig", exc)).__name__,
                )
                rejected.add(entry.entry_id)
                continue
            stored += entry_stored
            evaluation.merge(entry_evaluation)
        return stored, evaluation, rejected

    async def _store_with_retry(
        self, fixes: list[BufferedFix]
    ) -> tuple[list[StoredFixRow], EvaluationReport]:
        await self.partitions.ensure(self.sessionmaker, [b.fix.fix_time for b in fixes])
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                async with unit_of_work(self.sessionmaker) as session:
                    repository = TrackingRepository(session)
                    stored = await repository.store_fixes(fixes)
                    await repository.upsert_positions(stored)
                    evaluation = await evaluate_fixes(session, stored)
                return stored, evaluation
            except (DBAPIError, psycopg.Error) as exc:
                if attempt == BATCH_ATTEMPTS or _rejects_the_data(exc):
                    raise
                log.warning(
                    "gps_consumer.batch_retried",
                    attempt=attempt,
                    sqlstate=getattr(getattr(exc, "orig", exc), "sqlstate", None),
                )
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    # --- metrics ---

    def _observe_decisions(self, stored: Sequence[StoredFixRow]) -> None:
        now = time.time()
        for fix in stored:
            GPS_PING_TO_DECISION.observe(max(0.0, now - fix.received_at.timestamp()))

    async def publish_backlog(self) -> tuple[int, int]:
        length, lag = await self.stream.backlog()
        GPS_STREAM_LENGTH.set(length)
        GPS_CONSUMER_LAG.set(lag)
        return length, lag

    async def _sweep_safely(self) -> None:
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.settings.gps_consumer_sweep_interval_s
        try:
            await self.sweep()
        except Exception:
            log.exception("gps_consumer.sweep_failed")


def _rejects_the_data(exc: Exception) -> bool:
    # Data and integrity errors (a NUL character in text, a value out of range, a
    # broken constraint) fail the same way on every attempt. Other errors may pass.
    # COPY raises psycopg's own errors, and other statements raise SQLAlchemy's wrappers.
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(error, (psycopg.DataError, psycopg.IntegrityError))


def _buffered(fix: StoredFixRow) -> BufferedFix:
    return BufferedFix(
        load_id=fix.load_id,
        driver_user_id=fix.driver_user_id,
        carrier_organization_id=fix.carrier_organization_id,
        sender_user_id=fix.sender_user_id,
        received_at=fix.received_at,
        fix=fix.to_fix(),
    )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_gps_consumer(
    settings: Settings, *, name: str | None = None, batch_entries: int | None = None
) -> None:
    """Run the ``superior-one gps-consumer`` process until SIGINT or SIGTERM."""
    # A blocking stream read waits up to gps_consumer_block_ms; the socket must outlast it.
    timeout_s = max(settings.redis_socket_timeout_s, settings.gps_consumer_block_ms / 1000 + 1.0)
    settings = settings.model_copy(update={"redis_socket_timeout_s": timeout_s})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_resources(settings, pool_size=4) as resources:
        if settings.metrics_enabled:
            start_metrics_server(settings.metrics_port_gps_consumer, settings.metrics_address)
        consumer = GpsConsumer(resources, name=name, batch_entries=batch_entries)
        # As in the api: long-lived start-up objects leave the collector's generations.
        gc.freeze()
        await consumer.run(stop)
