"""Queries of the tracking domain. Reads of tenant data take the principal.

Fixes are written in bulk: COPY into a temporary staging table, then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`` into ``geo_events``,
so a fix delivered twice (a client retry, a stream entry claimed after a crash)
is stored once and only the new rows go on to geofence evaluation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Row, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts.models import Role
from superior_one.auth.principal import Principal
from superior_one.loads.models import Load, LoadStatus
from superior_one.tracking.fixes import Fix
from superior_one.tracking.models import (
    FraudFlag,
    FraudReason,
    GeoEvent,
    GeofenceEventRow,
    GeofenceStateRow,
    StopGeofence,
    TruckPosition,
)
from superior_one.tracking.stream import BufferedFix, RecentFixes
from superior_one.tracking.validation import StoredFix

# A temporary table per connection; COPY fills it, the INSERT below empties it.
_CREATE_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS gps_fix_staging (
    load_id uuid, driver_user_id uuid, carrier_organization_id uuid, sender_user_id uuid,
    fix_time timestamptz, received_at timestamptz, lat double precision,
    lng double precision, accuracy_m real, speed_mps real, heading_deg real,
    source varchar(16), client_fix_id varchar(64)
) ON COMMIT DELETE ROWS
"""
_COPY_STAGING = """
COPY gps_fix_staging (load_id, driver_user_id, carrier_organization_id, sender_user_id,
    fix_time, received_at, lat, lng, accuracy_m, speed_mps, heading_deg, source, client_fix_id)
FROM STDIN
"""
_INSERT_FROM_STAGING = text(
    """
    WITH moved AS (DELETE FROM gps_fix_staging RETURNING *)
    INSERT INTO geo_events (load_id, driver_user_id, carrier_organization_id, sender_user_id,
        fix_time, received_at, lat, lng, accuracy_m, speed_mps, heading_deg, source,
        client_fix_id, geofence_pending)
    SELECT load_id, driver_user_id, carrier_organization_id, sender_user_id, fix_time,
        received_at, lat, lng, accuracy_m, speed_mps, heading_deg, source, client_fix_id,
        :pending
    FROM moved
    ON CONFLICT (driver_user_id, fix_time) DO NOTHING
    RETURNING id, load_id, driver_user_id, carrier_organization_id, sender_user_id, fix_time,
        received_at, lat, lng, accuracy_m, speed_mps, heading_deg, source, client_fix_id
    """
)
_PENDING_FIXES = text(
    """
    SELECT id, load_id, driver_user_id, carrier_organization_id, sender_user_id, fix_time,
        received_at, lat, lng, accuracy_m, speed_mps, heading_deg, source, client_fix_id
    FROM geo_events WHERE geofence_pending
    ORDER BY fix_time LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
# One row per driver: the newest fix of the batch, kept only if newer than the stored one.
_UPSERT_POSITIONS = text(
    """
    INSERT INTO truck_positions AS p (driver_user_id, carrier_organization_id, load_id,
        gps_fix_id, fix_time, lat, lng, point, accuracy_m, speed_mps, heading_deg, updated_at)
    SELECT DISTINCT ON (driver) driver, carrier, load, fix_id, fix_time, lat, lng,
        ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography, accuracy, speed, heading, now()
    FROM unnest(
        CAST(:drivers AS uuid[]), CAST(:carriers AS uuid[]), CAST(:loads AS uuid[]),
        CAST(:fix_ids AS bigint[]), CAST(:fix_times AS timestamptz[]),
        CAST(:lats AS float8[]), CAST(:lngs AS float8[]), CAST(:accuracies AS float8[]),
        CAST(:speeds AS float8[]), CAST(:headings AS float8[])
    ) AS f(driver, carrier, load, fix_id, fix_time, lat, lng, accuracy, speed, heading)
    ORDER BY driver, fix_time DESC
    ON CONFLICT (driver_user_id) DO UPDATE SET
        carrier_organization_id = excluded.carrier_organization_id,
        load_id = excluded.load_id, gps_fix_id = excluded.gps_fix_id,
        fix_time = excluded.fix_time, lat = excluded.lat, lng = excluded.lng,
        point = excluded.point, accuracy_m = excluded.accuracy_m,
        speed_mps = excluded.speed_mps, heading_deg = excluded.heading_deg, updated_at = now()
    WHERE p.fix_time < excluded.fix_time
    """
)


@dataclass(frozen=True, slots=True)
class StoredFixRow:
    """A fix as stored in ``geo_events``; ``id`` is what load events cite."""

    id: int
    load_id: uuid.UUID
    driver_user_id: uuid.UUID
    carrier_organization_id: uuid.UUID
    sender_user_id: uuid.UUID
    fix_time: datetime
    received_at: datetime
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float | None
    heading_deg: float | None
    source: str
    client_fix_id: str | None

    def to_fix(self) -> Fix:
        """Return the fix as the geofence engine takes it, with the row id as its fix id."""
        return Fix(
            fix_id=str(self.id),
            fix_time=self.fix_time,
            lat=self.lat,
            lng=self.lng,
            accuracy_m=self.accuracy_m,
            speed_mps=self.speed_mps,
            heading_deg=self.heading_deg,
            source=self.source,
            client_fix_id=self.client_fix_id,
        )


@dataclass(frozen=True, slots=True)
class LoadFacts:
    """Facts about a load that ingest checks: who may send its fixes."""

    id: uuid.UUID
    status: LoadStatus
    shipper_organization_id: uuid.UUID
    carrier_organization_id: uuid.UUID | None
    driver_user_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class GeofenceLoad:
    """A load's stops, windows and parties, for geofence evaluation."""

    id: uuid.UUID
    status: LoadStatus
    shipper_organization_id: uuid.UUID
    carrier_organization_id: uuid.UUID | None
    driver_user_id: uuid.UUID | None
    pickup: tuple[float, float]
    pickup_radius_m: int | None
    pickup_window: tuple[datetime, datetime]
    delivery: tuple[float, float]
    delivery_radius_m: int | None
    released_at: datetime | None


def _stored(row: Row[Any]) -> StoredFixRow:
    return StoredFixRow(
        id=row.id,
        load_id=row.load_id,
        driver_user_id=row.driver_user_id,
        carrier_organization_id=row.carrier_organization_id,
        sender_user_id=row.sender_user_id,
        fix_time=row.fix_time,
        received_at=row.received_at,
        lat=row.lat,
        lng=row.lng,
        accuracy_m=row.accuracy_m,
        speed_mps=row.speed_mps,
        heading_deg=row.heading_deg,
        source=row.source,
        client_fix_id=row.client_fix_id,
    )


async def _psycopg_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, psycopg.AsyncConnection):
        raise TypeError("COPY needs a psycopg 3 connection (postgresql+psycopg)")
    return driver


class TrackingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- loads, as tracking reads them ---

    async def load_facts(self, load_id: uuid.UUID) -> LoadFacts | None:
        row = (
            await self.session.execute(
                select(
                    Load.id,
                    Load.status,
                    Load.shipper_organization_id,
                    Load.assigned_carrier_organization_id,
                    Load.assigned_driver_user_id,
                ).where(Load.id == load_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return LoadFacts(row[0], row[1], row[2], row[3], row[4])

    async def geofence_loads(self, load_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, GeofenceLoad]:
        rows = await self.session.execute(
            select(
                Load.id,
                Load.status,
                Load.shipper_organization_id,
                Load.assigned_carrier_organization_id,
                Load.assigned_driver_user_id,
                Load.pickup_lat,
                Load.pickup_lng,
                Load.pickup_geofence_radius_m,
                Load.pickup_window_start,
                Load.pickup_window_end,
                Load.delivery_lat,
                Load.delivery_lng,
                Load.delivery_geofence_radius_m,
                Load.released_at,
            ).where(Load.id.in_(load_ids))
        )
        return {
            r.id: GeofenceLoad(
                id=r.id,
                status=r.status,
                shipper_organization_id=r.shipper_organization_id,
                carrier_organization_id=r.assigned_carrier_organization_id,
                driver_user_id=r.assigned_driver_user_id,
                pickup=(r.pickup_lat, r.pickup_lng),
                pickup_radius_m=r.pickup_geofence_radius_m,
                pickup_window=(r.pickup_window_start, r.pickup_window_end),
                delivery=(r.delivery_lat, r.delivery_lng),
                delivery_radius_m=r.delivery_geofence_radius_m,
                released_at=r.released_at,
            )
            for r in rows
        }

    async def visible_load(self, principal: Principal, load_id: uuid.UUID) -> Load | None:
        """Return the load if the caller may see its tracking: its shipper, its carrier (a
        driver: only their own load), or a platform admin. Posted loads have no track."""
        query = select(Load).where(Load.id == load_id)
        if not principal.is_platform_admin:
            if principal.role is Role.DRIVER:
                query = query.where(Load.assigned_driver_user_id == principal.user_id)
            else:
                org = principal.organization_id
                query = query.where(
                    (Load.shipper_organization_id == org)
                    | (Load.assigned_carrier_organization_id == org)
                )
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- fixes ---

    async def driver_fix_context(
        self,
        driver_user_id: uuid.UUID,
        earliest: datetime | None,
        oldest: datetime,
        client_fix_ids: Sequence[str] = (),
    ) -> RecentFixes:
        """Read from PostgreSQL what :meth:`GpsStream.recent_fixes` reads from Redis, for
        when Redis is down."""
        base = select(GeoEvent.fix_time, GeoEvent.lat, GeoEvent.lng, GeoEvent.accuracy_m).where(
            GeoEvent.driver_user_id == driver_user_id
        )
        neighbours: dict[datetime, StoredFix] = {}
        if earliest is not None:
            after = base.where(GeoEvent.fix_time >= earliest).order_by(GeoEvent.fix_time)
            before = (
                base.where(GeoEvent.fix_time < earliest, GeoEvent.fix_time >= oldest)
                .order_by(GeoEvent.fix_time.desc())
                .limit(1)
            )
            for part in (after.limit(1000), before):
                for row in await self.session.execute(part):
                    neighbours[row.fix_time] = StoredFix(
                        row.fix_time, row.lat, row.lng, row.accuracy_m
                    )
        seen: set[str] = set()
        if client_fix_ids:
            rows = await self.session.execute(
                select(GeoEvent.client_fix_id).where(
                    GeoEvent.driver_user_id == driver_user_id,
                    GeoEvent.fix_time >= oldest,
                    GeoEvent.client_fix_id.in_(client_fix_ids),
                )
            )
            seen = {c for c in rows.scalars() if c is not None}
        return RecentFixes(frozenset(neighbours), frozenset(seen), tuple(neighbours.values()))

    async def store_fixes(
        self, fixes: Sequence[BufferedFix], *, geofence_pending: bool = False
    ) -> list[StoredFixRow]:
        """Insert fixes not stored yet and return those rows (duplicates are skipped)."""
        if not fixes:
            return []
        connection = await _psycopg_connection(self.session)
        async with connection.cursor() as cursor:
            await cursor.execute(_CREATE_STAGING)
            async with cursor.copy(_COPY_STAGING) as copy:
                for b in fixes:
                    fix = b.fix
                    await copy.write_row(
                        (
                            b.load_id,
                            b.driver_user_id,
                            b.carrier_organization_id,
                            b.sender_user_id,
                            fix.fix_time,
                            b.received_at,
                            fix.lat,
                            fix.lng,
                            fix.accuracy_m,
                            fix.speed_mps,
                            fix.heading_deg,
                            fix.source,
                            fix.client_fix_id,
                        )
                    )
        rows = await self.session.execute(_INSERT_FROM_STAGING, {"pending": geofence_pending})
        return [_stored(r) for r in rows]

    async def pending_fixes(self, limit: int) -> list[StoredFixRow]:
        """Lock the oldest fixes that were written while Redis was down."""
        rows = await self.session.execute(_PENDING_FIXES, {"limit": limit})
        return [_stored(r) for r in rows]

    async def mark_evaluated(self, fixes: Sequence[StoredFixRow]) -> None:
        if not fixes:
            return
        keys = [(f.driver_user_id, f.fix_time) for f in fixes]
        await self.session.execute(
            update(GeoEvent)
            .where(
                tuple_(GeoEvent.driver_user_id, GeoEvent.fix_time).in_(keys),
                GeoEvent.fix_time >= min(f.fix_time for f in fixes),
                GeoEvent.fix_time <= max(f.fix_time for f in fixes),
            )
            .values(geofence_pending=False)
            .execution_options(synchronize_session=False)
        )

    async def upsert_positions(self, fixes: Sequence[StoredFixRow]) -> None:
        if not fixes:
            return
        await self.session.execute(
            _UPSERT_POSITIONS,
            {
                "drivers": [f.driver_user_id for f in fixes],
                "carriers": [f.carrier_organization_id for f in fixes],
                "loads": [f.load_id for f in fixes],
                "fix_ids": [f.id for f in fixes],
                "fix_times": [f.fix_time for f in fixes],
                "lats": [f.lat for f in fixes],
                "lngs": [f.lng for f in fixes],
                "accuracies": [f.accuracy_m for f in fixes],
                "speeds": [f.speed_mps for f in fixes],
                "headings": [f.heading_deg for f in fixes],
            },
        )

    # --- geofence state ---

    async def stop_polygons(
        self, load_ids: Sequence[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, str], list[list[float]]]:
        rows = await self.session.execute(
            select(StopGeofence.load_id, StopGeofence.stop_kind, StopGeofence.vertices).where(
                StopGeofence.load_id.in_(load_ids)
            )
        )
        return {(r.load_id, r.stop_kind): r.vertices for r in rows}

    async def set_stop_polygon(
        self, load_id: uuid.UUID, stop_kind: str, vertices: list[list[float]]
    ) -> None:
        statement = pg_insert(StopGeofence).values(
            load_id=load_id, stop_kind=stop_kind, vertices=vertices
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["load_id", "stop_kind"],
                set_={"vertices": statement.excluded.vertices, "updated_at": func.now()},
            )
        )

    async def lock_state(self, load_id: uuid.UUID) -> GeofenceStateRow | None:
        return (
            await self.session.execute(
                select(GeofenceStateRow)
                .where(GeofenceStateRow.load_id == load_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()

    async def existing_state_ids(self, load_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.session.execute(
            select(GeofenceStateRow.load_id).where(GeofenceStateRow.load_id.in_(load_ids))
        )
        return set(rows.scalars())

    async def insert_states(self, states: dict[uuid.UUID, dict[str, Any]]) -> None:
        """Insert initial states, in load id order (the lock order), keeping any a
        concurrent consumer inserted first."""
        if not states:
            return
        await self.session.execute(
            pg_insert(GeofenceStateRow)
            .values([{"load_id": i, "state": states[i]} for i in sorted(states)])
            .on_conflict_do_nothing(index_elements=["load_id"])
        )

    async def lock_states(self, load_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, GeofenceStateRow]:
        """Lock the loads' geofence states in load id order, so two consumers that
        share loads wait for each other instead of deadlocking."""
        rows = await self.session.execute(
            select(GeofenceStateRow)
            .where(GeofenceStateRow.load_id.in_(load_ids))
            .order_by(GeofenceStateRow.load_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {row.load_id: row for row in rows.scalars()}

    async def pickup_proven_at(self, load_id: uuid.UUID) -> datetime | None:
        return (
            await self.session.execute(
                select(GeofenceStateRow.pickup_proven_at).where(GeofenceStateRow.load_id == load_id)
            )
        ).scalar_one_or_none()

    async def add_geofence_events(self, events: Sequence[dict[str, Any]]) -> None:
        if events:
            await self.session.execute(pg_insert(GeofenceEventRow), list(events))

    async def geofence_events(self, load_id: uuid.UUID) -> Sequence[GeofenceEventRow]:
        rows = await self.session.execute(
            select(GeofenceEventRow)
            .where(GeofenceEventRow.load_id == load_id)
            .order_by(GeofenceEventRow.fix_time, GeofenceEventRow.id)
        )
        return rows.scalars().all()

    # --- reads ---

    async def track_page(
        self,
        load_id: uuid.UUID,
        *,
        since: datetime | None,
        after: tuple[datetime, int] | None,
        resolution_s: int,
        limit: int,
    ) -> Sequence[Row[Any]]:
        """Fixes in fix-time order after the cursor; with ``resolution_s`` > 0, only the
        first fix of each bucket of that many seconds (buckets are aligned to the epoch)."""
        columns: tuple[Any, ...] = (GeoEvent.id, GeoEvent.fix_time, GeoEvent.lat, GeoEvent.lng,
                   GeoEvent.accuracy_m, GeoEvent.speed_mps, GeoEvent.heading_deg,
                   GeoEvent.source)  # fmt: skip
        query = select(*columns).where(GeoEvent.load_id == load_id)
        if since is not None:
            # Bounds the scan to the partitions the load can have fixes in.
            query = query.where(GeoEvent.fix_time >= since)
        if resolution_s <= 0:
            if after is not None:
                query = query.where(tuple_(GeoEvent.fix_time, GeoEvent.id) > tuple_(*after))
            query = query.order_by(GeoEvent.fix_time, GeoEvent.id)
        else:
            if after is not None:
                # The next page starts at the bucket after the last one served.
                query = query.where(GeoEvent.fix_time >= bucket_end(after[0], resolution_s))
            bucket = func.floor(func.extract("epoch", GeoEvent.fix_time) / resolution_s)
            query = query.ext(distinct_on(bucket)).order_by(bucket, GeoEvent.fix_time, GeoEvent.id)
        rows: Sequence[Row[Any]] = (await self.session.execute(query.limit(limit))).all()
        return rows

    async def last_fix(self, load_id: uuid.UUID, since: datetime | None) -> Row[Any] | None:
        columns: tuple[Any, ...] = (GeoEvent.id, GeoEvent.fix_time, GeoEvent.lat, GeoEvent.lng,
                   GeoEvent.speed_mps, GeoEvent.accuracy_m)  # fmt: skip
        query = (
            select(*columns)
            .where(GeoEvent.load_id == load_id)
            .order_by(GeoEvent.fix_time.desc())
            .limit(1)
        )
        if since is not None:
            query = query.where(GeoEvent.fix_time >= since)
        row: Row[Any] | None = (await self.session.execute(query)).one_or_none()
        return row

    async def positions_page(
        self, carrier_organization_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> Sequence[TruckPosition]:
        query = (
            select(TruckPosition)
            .where(TruckPosition.carrier_organization_id == carrier_organization_id)
            .order_by(TruckPosition.driver_user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(TruckPosition.driver_user_id > after)
        return (await self.session.execute(query)).scalars().all()

    async def positions_by_driver(
        self, carrier_organization_id: uuid.UUID, driver_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, TruckPosition]:
        if not driver_ids:
            return {}
        rows = await self.session.execute(
            select(TruckPosition).where(
                TruckPosition.carrier_organization_id == carrier_organization_id,
                TruckPosition.driver_user_id.in_(driver_ids),
            )
        )
        return {p.driver_user_id: p for p in rows.scalars()}

    async def positions_within(
        self,
        carrier_organization_id: uuid.UUID,
        lat: float,
        lng: float,
        radius_m: float,
        limit: int,
    ) -> list[tuple[TruckPosition, float]]:
        """PostGIS fallback of the Redis GEO search: geodesic distance on WGS84."""
        point = func.ST_SetSRID(func.ST_MakePoint(lng, lat), 4326).cast(TruckPosition.point.type)
        distance = func.ST_Distance(TruckPosition.point, point).label("distance_m")
        query = (
            select(TruckPosition, distance)
            .where(
                TruckPosition.carrier_organization_id == carrier_organization_id,
                func.ST_DWithin(TruckPosition.point, point, radius_m),
            )
            .order_by(distance)
            .limit(limit)
        )
        return [(position, float(metres)) for position, metres in await self.session.execute(query)]

    # --- fraud flags ---

    async def raise_flag(
        self,
        *,
        load_id: uuid.UUID,
        shipper_organization_id: uuid.UUID,
        carrier_organization_id: uuid.UUID | None,
        reason: FraudReason,
        detail: str,
        actor_user_id: uuid.UUID | None = None,
        actor_organization_id: uuid.UUID | None = None,
        gps_fix_id: int | None = None,
    ) -> tuple[int, int]:
        """Record a flag, or count one more occurrence of the same load, reason and actor;
        return (id, occurrences)."""
        statement = pg_insert(FraudFlag).values(
            load_id=load_id,
            shipper_organization_id=shipper_organization_id,
            carrier_organization_id=carrier_organization_id,
            reason=reason,
            detail=detail,
            actor_user_id=actor_user_id,
            actor_organization_id=actor_organization_id,
            gps_fix_id=gps_fix_id,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["load_id", "reason", "actor_user_id"],
            # The first occurrence keeps its detail and fix, because they explain the flag.
            set_={
                "occurrences": FraudFlag.occurrences + 1,
                "last_seen_at": func.now(),
                "gps_fix_id": func.coalesce(FraudFlag.gps_fix_id, statement.excluded.gps_fix_id),
            },
        ).returning(FraudFlag.id, FraudFlag.occurrences)
        row = (await self.session.execute(upsert)).one()
        return int(row[0]), int(row[1])

    async def load_flags(self, load_id: uuid.UUID) -> Sequence[FraudFlag]:
        rows = await self.session.execute(
            select(FraudFlag).where(FraudFlag.load_id == load_id).order_by(FraudFlag.id)
        )
        return rows.scalars().all()

    async def carrier_flags(
        self,
        carrier_organization_id: uuid.UUID,
        *,
        shipper_organization_id: uuid.UUID | None,
        after: int | None,
        limit: int,
    ) -> Sequence[FraudFlag]:
        query = (
            select(FraudFlag)
            .where(FraudFlag.carrier_organization_id == carrier_organization_id)
            .order_by(FraudFlag.id.desc())
            .limit(limit)
        )
        if shipper_organization_id is not None:
            query = query.where(FraudFlag.shipper_organization_id == shipper_organization_id)
        if after is not None:
            query = query.where(FraudFlag.id < after)
        return (await self.session.execute(query)).scalars().all()

    async def carrier_flag_summary(self, carrier_organization_id: uuid.UUID) -> dict[str, int]:
        rows = await self.session.execute(
            select(FraudFlag.reason, func.count())
            .where(FraudFlag.carrier_organization_id == carrier_organization_id)
            .group_by(FraudFlag.reason)
        )
        return {str(row[0]): int(row[1]) for row in rows}


def released_since(released_at: datetime | None, max_fix_age_s: float) -> datetime | None:
    """Return the earliest fix time a load can have: fixes are accepted from release on,
    and may have been taken up to the maximum fix age before they arrived."""
    if released_at is None:
        return None
    return released_at - timedelta(seconds=max_fix_age_s)


def bucket_end(moment: datetime, resolution_s: int) -> datetime:
    """Return the end of the ``resolution_s`` bucket (aligned to the epoch) of ``moment``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    elapsed = (moment - epoch).total_seconds()
    return epoch + timedelta(seconds=(elapsed // resolution_s + 1) * resolution_s)
