"""Queries of the loads domain. Tenant-owned rows are always filtered by the caller.

Board queries name the status as a literal (``status = 'POSTED'``), never as a
bound parameter: the board's indexes are partial on that predicate, and a plan
built for a parameter (a generic plan of a prepared statement) cannot prove it
and would not use them.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, literal_column, or_, select, tuple_, update
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.principal import Principal
from superior_one.loads.board import BoardSearch, BoardSort, Cursor
from superior_one.loads.models import (
    ON_THE_ROAD,
    EquipmentRule,
    EquipmentType,
    InterestStatus,
    Load,
    LoadEvent,
    LoadInterest,
    LoadStatus,
)

POSTED_ONLY = literal_column("loads.status") == literal_column("'POSTED'")


def point_ewkt(lat: float, lng: float) -> str:
    """A value for a geography column: ``SRID=4326;POINT(lng lat)``."""
    return f"SRID=4326;POINT({lng!r} {lat!r})"


# --- board SQL ---
#
# Built from this module's constant fragments only; every value is a bound
# parameter (hence the S608 exemptions below).
#
# Board statements are SQL text with bound parameters. Each is built once per
# shape of search (which filters are present, the sort, whether a cursor and a
# count are requested) and cached. So a search costs a dict of parameters and one
# round trip, not a SQLAlchemy statement built and compiled per request. Each result
# row carries the capped total of the search, which PostgreSQL computes once (the
# ``counted`` CTE) and only when the page has rows.

# Sphere (mean radius 6,371 km) and WGS84 geodesic distances differ by less than
# 0.6 %: the ellipsoid's radius of curvature runs from 6,335 km (meridian at the
# equator) to 6,400 km (poles). So a point within r / SPHERE_MARGIN on the sphere
# is within r on the ellipsoid, and one beyond r * SPHERE_MARGIN is not. Only the
# band between needs the exact spheroid test, which costs about 4x the sphere's.
SPHERE_MARGIN = 1.007

# Rows of a sort order's index a radius search reads before it uses the GiST
# index instead: in a dense circle the page fills within a few hundred rows; in a
# sparse one the GiST index has few candidates.
WALK_ROWS = 3000
# Loads inside a circle read at most, per unit of the count's cap, to count a
# radius search with other filters (a cap of 500 reads at most 1,000 loads: 1.8 ms
# measured for 100 miles around Chicago at 1 M loads).
COUNT_BUDGET_PER_CAP = 2
POSTED_SQL = "status = 'POSTED'"

_SORT_KEYS = {
    BoardSort.PICKUP_DATE: "pickup_window_start",
    BoardSort.RATE: "gross_revenue_cents",
    BoardSort.RATE_PER_MILE: "rate_per_mile_cents",
}
# Keyset bounds that no row passes: the walk's limit when it reached the end.
_LAST_KEY = {
    BoardSort.PICKUP_DATE: "'infinity'::timestamptz",
    BoardSort.RATE: "(-9223372036854775807 - 1)::bigint",
    BoardSort.RATE_PER_MILE: "(-9223372036854775807 - 1)::bigint",
}
_LAST_ID = {
    False: "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid",
    True: "'00000000-0000-0000-0000-000000000000'::uuid",
}
_KEY_CASTS = {
    BoardSort.PICKUP_DATE: "timestamptz",
    BoardSort.RATE: "bigint",
    BoardSort.RATE_PER_MILE: "bigint",
    BoardSort.DISTANCE: "float8",
}


def _point(prefix: str) -> str:
    # PostGIS takes longitude first.
    return (
        f"ST_SetSRID(ST_MakePoint(%({prefix}_lng)s::float8, %({prefix}_lat)s::float8), 4326)"
        "::geography"
    )


def _stop_sql(prefix: str) -> str:
    return (
        f"{prefix}_city, {prefix}_state, {prefix}_zip, {prefix}_time_zone, "
        f"ST_Y({prefix}_point::geometry) AS {prefix}_lat, "
        f"ST_X({prefix}_point::geometry) AS {prefix}_lng, "
        f"{prefix}_window_start, {prefix}_window_end"
    )


_BOARD_COLUMNS_SQL = (
    f"id, reference, {_stop_sql('pickup')}, {_stop_sql('delivery')}, "
    "equipment_type, haul_type, load_type, commodity, weight_lbs, rate_cents, rate_mode, "
    "units, miles, gross_revenue_cents, rate_per_mile_cents, posted_at"
)


class BoardShape(NamedTuple):
    """What decides a board statement's text; the values go in its parameters."""

    origin_state: bool
    destination_state: bool
    equipment_types: int
    haul_type: bool
    min_rate: bool
    min_rate_per_mile: bool
    max_trip_miles: bool
    pickup_from: bool
    pickup_to: bool
    commodity: bool
    origin: bool
    origin_radius: bool
    destination: bool
    destination_radius: bool
    sort: BoardSort
    after: bool

    @property
    def descending(self) -> bool:
        return self.sort in (BoardSort.RATE, BoardSort.RATE_PER_MILE)

    @property
    def radius(self) -> bool:
        return self.origin_radius or self.destination_radius


def board_shape(search: BoardSearch, after: Cursor | None) -> BoardShape:
    return BoardShape(
        origin_state=search.origin_state is not None,
        destination_state=search.destination_state is not None,
        equipment_types=len(search.equipment_types),
        haul_type=search.haul_type is not None,
        min_rate=search.min_rate_cents is not None,
        min_rate_per_mile=search.min_rate_per_mile_cents is not None,
        max_trip_miles=search.max_trip_miles is not None,
        pickup_from=search.pickup_from is not None,
        pickup_to=search.pickup_to is not None,
        commodity=bool(search.commodity),
        origin=search.origin is not None,
        origin_radius=search.origin is not None and search.origin.radius_m is not None,
        destination=search.destination is not None,
        destination_radius=(
            search.destination is not None and search.destination.radius_m is not None
        ),
        sort=search.sort,
        after=after is not None,
    )


def board_parameters(search: BoardSearch, after: Cursor | None) -> dict[str, Any]:
    """Return the bound values of every board statement of ``search`` (unused ones are ignored)."""
    params: dict[str, Any] = {
        "origin_state": search.origin_state,
        "destination_state": search.destination_state,
        "haul_type": None if search.haul_type is None else search.haul_type.value,
        "min_rate": search.min_rate_cents,
        "min_rate_per_mile": search.min_rate_per_mile_cents,
        "max_trip_miles": search.max_trip_miles,
        "pickup_from": search.pickup_from,
        "pickup_to": search.pickup_to,
    }
    for n, code in enumerate(search.equipment_types):
        params[f"equipment_{n}"] = code
    if search.commodity:
        params["commodity"] = "%" + _escape_like(search.commodity) + "%"
    for prefix, circle in (("o", search.origin), ("d", search.destination)):
        if circle is not None:
            params[f"{prefix}_lat"], params[f"{prefix}_lng"] = circle.lat, circle.lng
            if circle.radius_m is not None:
                params[f"{prefix}_r"] = circle.radius_m
                params[f"{prefix}_outer"] = circle.radius_m * SPHERE_MARGIN
                params[f"{prefix}_inner"] = circle.radius_m / SPHERE_MARGIN
    if after is not None:
        params["after_key"], params["after_id"] = after.key, after.id
    return params


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _geodesic_within(column: str, prefix: str, *, indexed: bool) -> str:
    """Points within the circle on the WGS84 ellipsoid, exactly (``ST_DWithin`` with spheroid).

    ``indexed`` lets the GiST index answer the outer test (a bounding box
    PostGIS expands correctly for the latitude); otherwise the test runs on
    rows an ordered index supplies.
    """
    point = _point(prefix)
    outer = "ST_DWithin" if indexed else "_ST_DWithin"
    return (
        f"{outer}({column}, {point}, %({prefix}_outer)s::float8, false) "
        f"AND (_ST_DWithin({column}, {point}, %({prefix}_inner)s::float8, false) "
        f"OR _ST_DWithin({column}, {point}, %({prefix}_r)s::float8, true))"
    )


# Filters with one parameter each, by the BoardShape field that turns them on.
_FILTERS = {
    "origin_state": "pickup_state = %(origin_state)s",
    "destination_state": "delivery_state = %(destination_state)s",
    "haul_type": "haul_type = %(haul_type)s",
    "min_rate": "gross_revenue_cents >= %(min_rate)s::bigint",
    "min_rate_per_mile": "rate_per_mile_cents >= %(min_rate_per_mile)s::bigint",
    "max_trip_miles": "miles <= %(max_trip_miles)s::numeric",
    "pickup_from": "pickup_window_start >= %(pickup_from)s::timestamptz",
    "pickup_to": "pickup_window_start <= %(pickup_to)s::timestamptz",
    "commodity": "commodity ILIKE %(commodity)s ESCAPE '\\'",
}


def _filters(shape: BoardShape) -> list[str]:
    """Return the search's filters other than the status and the radius circles."""
    parts = [sql for name, sql in _FILTERS.items() if getattr(shape, name)]
    if shape.equipment_types == 1:
        parts.append("equipment_type = %(equipment_0)s")
    elif shape.equipment_types:
        codes = ", ".join(f"%(equipment_{n})s" for n in range(shape.equipment_types))
        parts.append(f"equipment_type IN ({codes})")
    return parts


def _circles(shape: BoardShape, *, indexed: bool = True) -> list[str]:
    parts = []
    if shape.origin_radius:
        parts.append(_geodesic_within("pickup_point", "o", indexed=indexed))
    if shape.destination_radius:
        parts.append(_geodesic_within("delivery_point", "d", indexed=indexed))
    return parts


def _conditions(shape: BoardShape, *, radius: bool = True, indexed: bool = True) -> str:
    # The status is a literal, never a parameter: the board's indexes are partial
    # on it, and a generic plan could not prove a parameter equal to it.
    # NOTE: a posted load whose pickup window has ended stays listed until the
    # expiry job (loads.tasks, every 5 minutes) moves it to EXPIRED; a filter on
    # now() here would keep the capped count from using the board's indexes alone.
    circles = _circles(shape, indexed=indexed) if radius else []
    return " AND ".join([POSTED_SQL, *_filters(shape), *circles])


def _sort_key(shape: BoardShape) -> str:
    if shape.sort is BoardSort.DISTANCE:
        return f"ST_Distance(pickup_point, {_point('o')})"
    return _SORT_KEYS[shape.sort]


def _after(shape: BoardShape) -> str:
    if not shape.after:
        return ""
    direction = "<" if shape.descending else ">"
    cast = _KEY_CASTS[shape.sort]
    return f" AND ({_sort_key(shape)}, id) {direction} (%(after_key)s::{cast}, %(after_id)s::uuid)"


def _order(shape: BoardShape) -> str:
    if shape.sort is BoardSort.DISTANCE:
        # Nearest first by the GiST index (sphere distance); the statement then
        # orders the fetched rows by the exact geodesic distance.
        return f"pickup_point <-> {_point('o')}"
    key = _SORT_KEYS[shape.sort]
    return f"{key} DESC, id DESC" if shape.descending else f"{key}, id"


def _columns(shape: BoardShape) -> str:
    origin = f"ST_Distance(pickup_point, {_point('o')})" if shape.origin else "NULL::float8"
    destination = (
        f"ST_Distance(delivery_point, {_point('d')})" if shape.destination else "NULL::float8"
    )
    return (
        f"{_BOARD_COLUMNS_SQL}, {origin} AS origin_distance_m, "
        f"{destination} AS destination_distance_m"
    )


def _counted(shape: BoardShape) -> str:
    """A CTE ``counted(matched, examined)``: the capped count of the search's matches.

    Counting stops at ``%(count_limit)s`` matches (the cap plus one). A circle
    combined with other filters is counted among at most ``%(count_budget)s``
    loads inside the circle instead (``examined`` is how many were read):
    neither the GiST index nor a filter's btree narrows such a search alone, and
    an exact count could read every load of a dense circle.
    """
    filters = _filters(shape)
    if shape.radius and filters:
        circles = " AND ".join([POSTED_SQL, *_circles(shape)])
        return (
            "counted AS MATERIALIZED (SELECT count(*) FILTER (WHERE matches) AS matched, "  # noqa: S608
            f"count(*) AS examined FROM (SELECT ({' AND '.join(filters)}) AS matches "
            f"FROM loads WHERE {circles} LIMIT %(count_budget)s) candidates)"
        )
    return (
        "counted AS MATERIALIZED (SELECT count(*) AS matched, 0::bigint AS examined "  # noqa: S608
        f"FROM (SELECT FROM loads WHERE {_conditions(shape)} LIMIT %(count_limit)s) capped)"
    )


_NO_COUNT = ", NULL::bigint AS count_matched, NULL::bigint AS count_examined"
_COUNT = (
    ", (SELECT matched FROM counted) AS count_matched, "
    "(SELECT examined FROM counted) AS count_examined"
)


@functools.lru_cache(maxsize=1024)
def board_page_sql(shape: BoardShape, *, count: bool) -> str:
    """One page of ``%(limit)s`` rows, with ``count_*`` columns when ``count``.

    Distance sort reads ``%(fetch)s`` rows nearest first on the sphere and
    orders them by the exact distance. Each row also carries how many rows were
    fetched and the sphere distance of the farthest: with them the caller tells
    whether a row not fetched could still belong on the page.
    A radius with another sort walks that sort's index first (see
    :data:`WALK_ROWS`) and uses the GiST index only when the walk did not fill
    the page.
    """
    with_counted = f"WITH {_counted(shape)} " if count else ""
    total = _COUNT if count else _NO_COUNT
    where = _conditions(shape) + _after(shape)
    if shape.sort is BoardSort.DISTANCE:
        return (
            f"{with_counted}SELECT fetched_rows.*, count(*) OVER () AS fetched, "  # noqa: S608
            f"max(sphere_m) OVER () AS farthest_sphere_m{total} FROM ("
            f"SELECT {_columns(shape)}, pickup_point <-> {_point('o')} AS sphere_m "
            f"FROM loads WHERE {where} ORDER BY {_order(shape)} LIMIT %(fetch)s"
            ") fetched_rows ORDER BY origin_distance_m, id LIMIT %(limit)s"
        )
    if not shape.radius:
        return (
            f"{with_counted}SELECT {_columns(shape)}{total} FROM loads "  # noqa: S608
            f"WHERE {where} ORDER BY {_order(shape)} LIMIT %(limit)s"
        )

    # Radius, another sort: the walk's last key bounds the walked page, whose ids
    # come from the sort's index alone where it includes the point (migration
    # 0007). When the GiST fallback runs it reads every match anyway, so it
    # counts them too.
    key = _SORT_KEYS[shape.sort]
    within = "<=" if not shape.descending else ">="
    last_key = _LAST_KEY[shape.sort]
    last_id = _LAST_ID[shape.descending]
    walked_where = _conditions(shape, indexed=False) + _after(shape)
    # A walk from the first row that reached the end of the sort order saw every
    # match: when it found fewer than a page, that is the exact total.
    walked_all, walked_total = "", ""
    if not shape.after:
        walked_all = (
            "WHEN NOT EXISTS (SELECT FROM bound) "
            "AND (SELECT count(*) FROM walked_ids) < %(limit)s THEN "
        )
        walked_total = "(SELECT count(*) FROM walked_ids) "
    total = (
        f", CASE {walked_all}{walked_total}"  # noqa: S608
        "WHEN (SELECT ok FROM settled) THEN (SELECT matched FROM counted) "
        "ELSE page.matches END AS count_matched, "
        f"CASE {walked_all}{'0 ' if walked_all else ''}"
        "WHEN (SELECT ok FROM settled) THEN (SELECT examined FROM counted) "
        "ELSE 0 END AS count_examined"
        if count
        else _NO_COUNT
    )
    counted = f"{_counted(shape)}, " if count else ""
    return (
        f"WITH {counted}bound AS MATERIALIZED ("  # noqa: S608
        f"SELECT {key} AS k, id FROM loads "
        f"WHERE {_conditions(shape, radius=False)}{_after(shape)} "
        f"ORDER BY {_order(shape)} OFFSET %(walk_skip)s LIMIT 1"
        "), walked_ids AS MATERIALIZED ("
        f"SELECT id FROM loads WHERE {walked_where} "
        f"AND ({key}, id) {within} (coalesce((SELECT k FROM bound), {last_key}), "
        f"coalesce((SELECT id FROM bound), {last_id})) "
        f"ORDER BY {_order(shape)} LIMIT %(limit)s"
        "), walked AS MATERIALIZED ("
        f"SELECT {_columns(shape)} FROM loads WHERE id IN (SELECT id FROM walked_ids)"
        "), settled AS ("
        "SELECT (SELECT count(*) FROM walked_ids) = %(limit)s "
        "OR NOT EXISTS (SELECT FROM bound) AS ok"
        f") SELECT page.*{total} FROM ("
        "SELECT *, NULL::bigint AS matches FROM walked WHERE (SELECT ok FROM settled) "
        f"UNION ALL (SELECT {_columns(shape)}, count(*) OVER () AS matches FROM loads "
        f"WHERE {where} AND NOT (SELECT ok FROM settled) "
        f"ORDER BY {_order(shape)} LIMIT %(limit)s)"
        f") page ORDER BY {_order(shape)}"
    )


@functools.lru_cache(maxsize=256)
def board_count_sql(shape: BoardShape) -> str:
    return f"WITH {_counted(shape)} SELECT matched AS count_matched, examined AS count_examined FROM counted"  # noqa: S608, E501


@functools.lru_cache(maxsize=256)
def board_key_after_sql(shape: BoardShape) -> str:
    """Select the sort key and id of the row ``%(skip)s`` rows past the cursor (keys only)."""
    return (
        f"SELECT {_sort_key(shape)} AS k, id FROM loads "  # noqa: S608
        f"WHERE {_conditions(shape)}{_after(shape)} "
        f"ORDER BY {_order(shape)} OFFSET %(skip)s LIMIT 1"
    )


def board_page_statement(
    search: BoardSearch,
    after: Cursor | None,
    limit: int,
    *,
    count_cap: int | None = None,
    fetch: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """Return the SQL and parameters of one board page (also used by EXPLAIN in tests and bench)."""
    shape = board_shape(search, after)
    params = board_parameters(search, after)
    params["limit"] = limit
    params["fetch"] = fetch if fetch is not None else limit
    params["walk_skip"] = WALK_ROWS - 1
    if count_cap is not None:
        params["count_limit"] = count_cap + 1
        params["count_budget"] = count_cap * COUNT_BUDGET_PER_CAP
    return board_page_sql(shape, count=count_cap is not None), params


def board_count_statement(search: BoardSearch, cap: int) -> tuple[str, dict[str, Any]]:
    """Count matches up to ``cap + 1`` rows: never a scan of every matching row."""
    params = board_parameters(search, None)
    params["count_limit"] = cap + 1
    params["count_budget"] = cap * COUNT_BUDGET_PER_CAP
    return board_count_sql(board_shape(search, None)), params


def has_radius(search: BoardSearch) -> bool:
    return any(
        c is not None and c.radius_m is not None for c in (search.origin, search.destination)
    )


@dataclass(frozen=True, slots=True)
class BoardTotal:
    """How many loads match: exact, or a lower bound when ``exact`` is false."""

    value: int
    exact: bool

    @classmethod
    def of(cls, matched: int, examined: int, cap: int) -> BoardTotal:
        """Read a ``counted`` result (see :func:`_counted`) for a count capped at ``cap``."""
        if matched > cap:
            return cls(cap, exact=False)
        # A budgeted count that read its whole budget may have missed matches.
        return cls(matched, exact=examined < cap * COUNT_BUDGET_PER_CAP)


@dataclass(frozen=True, slots=True)
class BoardPage:
    rows: Sequence[Row[Any]]
    total: BoardTotal | None  # when a count was asked for


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
        # NOTE: one round trip of its own per search (about 0.2 ms on an idle host, an
        # estimate).
        # Without PgBouncer the fixed options could be set once per pooled connection.
        spatial = has_radius(search) or search.sort is BoardSort.DISTANCE
        await self._board_execute(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
            "set_config('jit', 'off', true), "
            "set_config('max_parallel_workers_per_gather', '0', true), "
            "set_config('enable_bitmapscan', %(bitmap)s, true)",
            {"bitmap": "off" if spatial else "on"},
        )

    async def _board_execute(self, sql: str, params: dict[str, Any]) -> CursorResult[Any]:
        # Prebuilt SQL text goes to the driver as is: no statement to build or compile.
        connection = await self.session.connection()
        return await connection.exec_driver_sql(sql, params)

    async def board_page(
        self,
        search: BoardSearch,
        after: Cursor | None,
        limit: int,
        *,
        count_cap: int | None = None,
        fetch: int | None = None,
    ) -> BoardPage:
        """Return ``limit`` rows after ``after`` and, with ``count_cap``, the capped total."""
        sql, params = board_page_statement(search, after, limit, count_cap=count_cap, fetch=fetch)
        rows = (await self._board_execute(sql, params)).all()
        total: BoardTotal | None = None
        if count_cap is not None:
            if rows:
                first = rows[0]
                total = BoardTotal.of(first.count_matched, first.count_examined, count_cap)
            elif after is None:
                total = BoardTotal(0, exact=True)
            else:  # an empty page past a legacy page's start: the rows are before it
                total = await self.board_count(search, count_cap)
        return BoardPage(rows=rows, total=total)

    async def board_count(self, search: BoardSearch, cap: int) -> BoardTotal:
        """Count the matches, at most ``cap + 1`` of them (see :func:`_counted`)."""
        sql, params = board_count_statement(search, cap)
        row = (await self._board_execute(sql, params)).one()
        return BoardTotal.of(row.count_matched, row.count_examined, cap)

    async def board_key_after(
        self, search: BoardSearch, after: Cursor | None, skip: int
    ) -> Cursor | None:
        """Return the cursor ``skip`` rows past ``after`` reading only sort keys, or None."""
        params = board_parameters(search, after)
        params["skip"] = skip - 1
        sql = board_key_after_sql(board_shape(search, after))
        row = (await self._board_execute(sql, params)).one_or_none()
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

    async def get_driver(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
    ) -> User | None:
        """Return the organization's active driver, or None.

        With ``lock`` the row stays locked until commit, FOR NO KEY UPDATE: other
        lockers of the driver's row wait, inserts of rows that refer to it do not.
        """
        query = select(User).where(
            User.id == user_id,
            User.organization_id == organization_id,
            User.role == Role.DRIVER,
            User.is_active.is_(True),
        )
        if lock:
            query = query.with_for_update(key_share=True)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def load_on_the_road(
        self, driver_user_id: uuid.UUID
    ) -> Row[uuid.UUID, str | None, LoadStatus] | None:
        """Return (id, reference, status) of the driver's RELEASED or IN_TRANSIT load, if any."""
        query = select(Load.id, Load.reference, Load.status).where(
            Load.assigned_driver_user_id == driver_user_id, Load.status.in_(ON_THE_ROAD)
        )
        return (await self.session.execute(query)).first()

    # --- reference data ---

    async def equipment_types(self) -> Sequence[EquipmentType]:
        query = select(EquipmentType).order_by(EquipmentType.code)
        return (await self.session.execute(query)).scalars().all()

    async def equipment_rules(self) -> Sequence[EquipmentRule]:
        query = select(EquipmentRule).order_by(EquipmentRule.id)
        return (await self.session.execute(query)).scalars().all()
