"""Queries of the loads domain. Tenant-owned rows are always filtered by the caller.

Board queries name the status as a literal (``status = 'POSTED'``), never as a
bound parameter: the board's indexes are partial on that predicate, and a plan
built for a parameter (a generic plan of a prepared statement) cannot prove it
and would not use them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.functions import Function

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.principal import Principal
from superior_one.loads.board import BoardSearch, BoardSort, Cursor, GeoCircle
from superior_one.loads.models import (
    EquipmentRule,
    EquipmentType,
    InterestStatus,
    Load,
    LoadEvent,
    LoadInterest,
    LoadStatus,
)

POSTED_ONLY = literal_column("loads.status") == literal_column("'POSTED'")


def point_sql(lat: float, lng: float) -> ColumnElement[Any]:
    """A ``geography`` point for a query: PostGIS takes longitude first."""
    return cast(func.ST_SetSRID(func.ST_MakePoint(lng, lat), 4326), Geography)


def point_ewkt(lat: float, lng: float) -> str:
    """A value for a geography column: ``SRID=4326;POINT(lng lat)``."""
    return f"SRID=4326;POINT({lng!r} {lat!r})"


def _distance_m(column: Any, circle: GeoCircle) -> ColumnElement[float]:
    # ST_Distance on geography uses the WGS84 spheroid by default.
    return func.ST_Distance(column, point_sql(circle.lat, circle.lng), type_=Float)


# Sphere (mean radius 6,371 km) and WGS84 geodesic distances differ by less than
# 0.6 %: the ellipsoid's radius of curvature runs from 6,335 km (meridian at the
# equator) to 6,400 km (poles). So a point within r / SPHERE_MARGIN on the sphere
# is within r on the ellipsoid, and one beyond r * SPHERE_MARGIN is not. Only the
# band between needs the exact spheroid test, which costs about 4x the sphere's.
SPHERE_MARGIN = 1.007


def _geodesic_within(column: Any, circle: GeoCircle, *, indexed: bool) -> ColumnElement[bool]:
    """Points within ``circle`` on the WGS84 ellipsoid, exactly (``ST_DWithin`` with spheroid).

    ``indexed`` lets the GiST index answer the outer test (a bounding box
    PostGIS expands correctly for the latitude); otherwise the test runs on
    rows an ordered index supplies.
    """
    assert circle.radius_m is not None
    point = point_sql(circle.lat, circle.lng)
    radius = circle.radius_m
    outer_name = "ST_DWithin" if indexed else "_ST_DWithin"
    outer = Function(outer_name, column, point, radius * SPHERE_MARGIN, False, type_=Boolean)
    exact = or_(
        Function("_ST_DWithin", column, point, radius / SPHERE_MARGIN, False, type_=Boolean),
        Function("_ST_DWithin", column, point, radius, True, type_=Boolean),
    )
    return and_(outer, exact)


def has_radius(search: BoardSearch) -> bool:
    return any(
        c is not None and c.radius_m is not None for c in (search.origin, search.destination)
    )


def _board_conditions(
    search: BoardSearch, *, spatial_index: bool = True
) -> list[ColumnElement[bool]]:
    # NOTE: a posted load whose pickup window has ended stays listed until the
    # expiry job (loads.tasks, every 5 minutes) moves it to EXPIRED; a filter on
    # now() here would keep the capped count from using the board's indexes alone.
    conditions: list[ColumnElement[bool]] = [POSTED_ONLY]
    if search.origin_state:
        conditions.append(Load.pickup_state == search.origin_state)
    if search.destination_state:
        conditions.append(Load.delivery_state == search.destination_state)
    if len(search.equipment_types) == 1:
        conditions.append(Load.equipment_type == search.equipment_types[0])
    elif search.equipment_types:
        conditions.append(Load.equipment_type.in_(search.equipment_types))
    if search.haul_type:
        conditions.append(Load.haul_type == search.haul_type)
    if search.min_rate_cents is not None:
        conditions.append(Load.gross_revenue_cents >= search.min_rate_cents)
    if search.min_rate_per_mile_cents is not None:
        conditions.append(Load.rate_per_mile_cents >= search.min_rate_per_mile_cents)
    if search.max_trip_miles is not None:
        conditions.append(Load.miles <= search.max_trip_miles)
    if search.pickup_from is not None:
        conditions.append(Load.pickup_window_start >= search.pickup_from)
    if search.pickup_to is not None:
        conditions.append(Load.pickup_window_start <= search.pickup_to)
    if search.commodity:
        pattern = "%" + _escape_like(search.commodity) + "%"
        conditions.append(Load.commodity.ilike(pattern, escape="\\"))
    for column, circle in (
        (Load.pickup_point, search.origin),
        (Load.delivery_point, search.destination),
    ):
        if circle is not None and circle.radius_m is not None:
            conditions.append(_geodesic_within(column, circle, indexed=spatial_index))
    return conditions


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sort_key(search: BoardSearch) -> Any:
    if search.sort is BoardSort.RATE:
        return Load.gross_revenue_cents
    if search.sort is BoardSort.RATE_PER_MILE:
        return Load.rate_per_mile_cents
    if search.sort is BoardSort.DISTANCE:
        assert search.origin is not None
        return _distance_m(Load.pickup_point, search.origin)
    return Load.pickup_window_start


def _descending(sort: BoardSort) -> bool:
    return sort in (BoardSort.RATE, BoardSort.RATE_PER_MILE)


def _keyset(
    search: BoardSearch,
    after: Cursor | None,
    *,
    upto: Cursor | None = None,
    spatial_index: bool = True,
) -> Select[Any]:
    """The filtered, ordered board rows after ``after`` (and up to ``upto``); no columns yet."""
    key = _sort_key(search)
    conditions = _board_conditions(search, spatial_index=spatial_index)
    descending = _descending(search.sort)
    position = tuple_(key, Load.id)
    if after is not None:
        bound = tuple_(after.key, after.id)
        conditions.append(position < bound if descending else position > bound)
    if upto is not None:
        limit = tuple_(upto.key, upto.id)
        conditions.append(position >= limit if descending else position <= limit)
    if search.sort is BoardSort.DISTANCE:
        assert search.origin is not None
        # Nearest first by the GiST index (sphere distance); the service re-sorts
        # the page by the exact geodesic distance.
        origin = point_sql(search.origin.lat, search.origin.lng)
        order: tuple[Any, ...] = (Load.pickup_point.op("<->")(origin),)
    elif descending:
        order = (key.desc(), Load.id.desc())
    else:
        order = (key, Load.id)
    return select().select_from(Load).where(and_(*conditions)).order_by(*order)


def _stop_columns(prefix: str) -> list[Any]:
    geometry = text(f"loads.{prefix}_point::geometry")
    return [
        getattr(Load, f"{prefix}_city"),
        getattr(Load, f"{prefix}_state"),
        getattr(Load, f"{prefix}_zip"),
        getattr(Load, f"{prefix}_time_zone"),
        func.ST_Y(geometry, type_=Float).label(f"{prefix}_lat"),
        func.ST_X(geometry, type_=Float).label(f"{prefix}_lng"),
        getattr(Load, f"{prefix}_window_start"),
        getattr(Load, f"{prefix}_window_end"),
    ]


BOARD_COLUMNS: list[Any] = [
    Load.id,
    Load.reference,
    *_stop_columns("pickup"),
    *_stop_columns("delivery"),
    Load.equipment_type,
    Load.haul_type,
    Load.load_type,
    Load.commodity,
    Load.weight_lbs,
    Load.rate_cents,
    Load.rate_mode,
    Load.units,
    Load.miles,
    Load.gross_revenue_cents,
    Load.rate_per_mile_cents,
    Load.posted_at,
]


def board_page_query(
    search: BoardSearch,
    after: Cursor | None,
    limit: int,
    *,
    upto: Cursor | None = None,
    spatial_index: bool = True,
) -> Select[Any]:
    """The SQL of one board page (``limit`` rows); exposed for EXPLAIN in tests and bench."""
    columns = list(BOARD_COLUMNS)
    columns.append(
        _distance_m(Load.pickup_point, search.origin).label("origin_distance_m")
        if search.origin is not None
        else literal_column("NULL::float8").label("origin_distance_m")
    )
    columns.append(
        _distance_m(Load.delivery_point, search.destination).label("destination_distance_m")
        if search.destination is not None
        else literal_column("NULL::float8").label("destination_distance_m")
    )
    if search.sort is BoardSort.DISTANCE and search.origin is not None:
        origin = point_sql(search.origin.lat, search.origin.lng)
        columns.append(Load.pickup_point.op("<->", return_type=Float)(origin).label("sphere_m"))
    query = _keyset(search, after, upto=upto, spatial_index=spatial_index)
    return query.add_columns(*columns).limit(limit)


def board_count_query(search: BoardSearch, cap: int) -> Select[Any]:
    """Count matches up to ``cap + 1`` rows: never a scan of every matching row."""
    capped = (
        select(literal_column("1"))
        .select_from(Load)
        .where(and_(*_board_conditions(search)))
        .limit(cap + 1)
        .subquery()
    )
    return select(func.count()).select_from(capped)


class LoadsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- board ---

    async def prepare_board_transaction(self, search: BoardSearch) -> None:
        """Set the planner for short board queries, for this transaction only."""
        # Board queries differ wildly by filter (a 5-mile radius against a whole
        # state): a cached generic plan chosen for one would be wrong for others.
        # JIT compilation and parallel workers each cost more (10-100 ms) than a
        # board query that uses its indexes takes. And PostGIS underestimates how
        # many rows pass a radius filter, so the planner would read every
        # candidate of a large circle through a bitmap and sort them; a plain
        # GiST scan stops at the LIMIT instead.
        spatial = has_radius(search) or search.sort is BoardSort.DISTANCE
        await self.session.execute(
            text(
                "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                "set_config('jit', 'off', true), "
                "set_config('max_parallel_workers_per_gather', '0', true), "
                "set_config('enable_bitmapscan', :bitmap, true)"
            ),
            {"bitmap": "off" if spatial else "on"},
        )

    async def board_page(
        self,
        search: BoardSearch,
        after: Cursor | None,
        limit: int,
        *,
        upto: Cursor | None = None,
        spatial_index: bool = True,
    ) -> Sequence[Row[Any]]:
        query = board_page_query(search, after, limit, upto=upto, spatial_index=spatial_index)
        rows: Sequence[Row[Any]] = (await self.session.execute(query)).all()
        return rows

    async def board_count(self, search: BoardSearch, cap: int) -> int:
        return int((await self.session.execute(board_count_query(search, cap))).scalar_one())

    async def board_key_after(
        self, search: BoardSearch, after: Cursor | None, skip: int
    ) -> Cursor | None:
        """Return the cursor ``skip`` rows past ``after`` reading only sort keys, or None."""
        query = (
            _keyset(search, after)
            .add_columns(_sort_key(search).label("k"), Load.id)
            .offset(skip - 1)
            .limit(1)
        )
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else Cursor(search.sort, row.k, row.id)

    # --- loads of one organization ---

    async def get(self, load_id: uuid.UUID, *, for_update: bool = False) -> Load | None:
        query = select(Load).where(Load.id == load_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_owned(
        self, principal: Principal, load_id: uuid.UUID, *, for_update: bool = False
    ) -> Load | None:
        """Return the load if the caller's organization posted it (platform admins: any)."""
        query = select(Load).where(Load.id == load_id)
        if not principal.is_platform_admin:
            query = query.where(Load.shipper_organization_id == principal.organization_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_assigned(
        self, principal: Principal, load_id: uuid.UUID, *, for_update: bool = False
    ) -> Load | None:
        """Return the load if it is assigned to the caller's carrier (drivers: to them)."""
        query = select(Load).where(
            Load.id == load_id,
            Load.assigned_carrier_organization_id == principal.organization_id,
        )
        if principal.role is Role.DRIVER:
            query = query.where(Load.assigned_driver_user_id == principal.user_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_visible(self, principal: Principal, load_id: uuid.UUID) -> Load | None:
        """Return the load if the caller may see it: posted on the board, own or assigned."""
        query = select(Load).where(Load.id == load_id)
        if not principal.is_platform_admin:
            org = principal.organization_id
            if principal.role is Role.DRIVER:
                visible = Load.assigned_driver_user_id == principal.user_id
            else:
                visible = or_(
                    Load.status == LoadStatus.POSTED,
                    Load.shipper_organization_id == org,
                    Load.assigned_carrier_organization_id == org,
                )
            query = query.where(visible)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def list_for_organization(
        self,
        principal: Principal,
        *,
        statuses: Sequence[LoadStatus],
        after: tuple[Any, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Load]:
        """The caller's own loads, newest first: posted by a shipper, assigned to a carrier."""
        if principal.organization_type is OrganizationType.CARRIER:
            owner = Load.assigned_carrier_organization_id == principal.organization_id
            key = Load.assigned_at
        else:
            owner = Load.shipper_organization_id == principal.organization_id
            key = Load.created_at
        query = select(Load).where(owner)
        if principal.role is Role.DRIVER:
            query = query.where(Load.assigned_driver_user_id == principal.user_id)
        if statuses:
            query = query.where(Load.status.in_(statuses))
        if after is not None:
            query = query.where(tuple_(key, Load.id) < tuple_(*after))
        query = query.order_by(key.desc(), Load.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def events(self, load_id: uuid.UUID) -> Sequence[LoadEvent]:
        query = select(LoadEvent).where(LoadEvent.load_id == load_id).order_by(LoadEvent.id)
        return (await self.session.execute(query)).scalars().all()

    async def posted_ids_past_window(self, limit: int) -> Sequence[uuid.UUID]:
        query = (
            select(Load.id)
            .where(POSTED_ONLY, Load.pickup_window_end <= func.now())
            .order_by(Load.pickup_window_end)
            .limit(limit)
        )
        return (await self.session.execute(query)).scalars().all()

    # --- interest ---

    async def get_interest(
        self, load_id: uuid.UUID, carrier_organization_id: uuid.UUID, *, for_update: bool = False
    ) -> LoadInterest | None:
        query = select(LoadInterest).where(
            LoadInterest.load_id == load_id,
            LoadInterest.carrier_organization_id == carrier_organization_id,
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def interests(self, load_id: uuid.UUID) -> Sequence[tuple[LoadInterest, str]]:
        query = (
            select(LoadInterest, Organization.name)
            .join(Organization, Organization.id == LoadInterest.carrier_organization_id)
            .where(LoadInterest.load_id == load_id)
            .order_by(LoadInterest.created_at, LoadInterest.id)
        )
        return [(interest, name) for interest, name in await self.session.execute(query)]

    async def decline_other_interests(
        self, load_id: uuid.UUID, accepted_carrier_id: uuid.UUID
    ) -> None:
        await self.session.execute(
            update(LoadInterest)
            .where(
                LoadInterest.load_id == load_id,
                LoadInterest.carrier_organization_id != accepted_carrier_id,
                LoadInterest.status == InterestStatus.ACTIVE,
            )
            .values(status=InterestStatus.DECLINED, updated_at=func.now())
        )

    # --- people ---

    async def get_organization(self, organization_id: uuid.UUID) -> Organization | None:
        return await self.session.get(Organization, organization_id)

    async def get_driver(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
        query = select(User).where(
            User.id == user_id,
            User.organization_id == organization_id,
            User.role == Role.DRIVER,
            User.is_active.is_(True),
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- reference data ---

    async def equipment_types(self) -> Sequence[EquipmentType]:
        query = select(EquipmentType).order_by(EquipmentType.code)
        return (await self.session.execute(query)).scalars().all()

    async def equipment_rules(self) -> Sequence[EquipmentRule]:
        query = select(EquipmentRule).order_by(EquipmentRule.id)
        return (await self.session.execute(query)).scalars().all()
