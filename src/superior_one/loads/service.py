"""Business steps of the loads domain: the board search, shippers' and carriers' actions.

Services flush and never commit; the request's session (or a job's unit of
work) commits once. Status changes go through
:func:`superior_one.loads.lifecycle.transition_load`.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import structlog
from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import OrganizationType, Role
from superior_one.auth.principal import Principal
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.geo.geodesy import METRES_PER_MILE, LatLng
from superior_one.geo.roads import road_network
from superior_one.geo.zips import lookup_zip
from superior_one.loads import errors
from superior_one.loads.board import (
    BoardSearch,
    BoardSort,
    Cursor,
    decode_cursor,
    encode_cursor,
)
from superior_one.loads.cache import BoardCache
from superior_one.loads.lifecycle import Actor, record_event, transition_load
from superior_one.loads.matching import EquipmentCatalog, EquipmentCatalogCache
from superior_one.loads.models import (
    InterestStatus,
    Load,
    LoadEvent,
    LoadInterest,
    LoadStatus,
)
from superior_one.loads.rates import QUANTITY_MODES, gross_revenue_cents
from superior_one.loads.repository import (
    SPHERE_MARGIN,
    BoardPage,
    BoardTotal,
    LoadsRepository,
    point_ewkt,
)
from superior_one.loads.schemas import LoadCreate, LoadUpdate, StopIn, amount_to_cents
from superior_one.payments.money import format_cents

log = structlog.get_logger(__name__)

POSTING_ORGANIZATIONS = frozenset({OrganizationType.SHIPPER, OrganizationType.BROKER})
CARRYING_ORGANIZATIONS = frozenset({OrganizationType.CARRIER})
ACTING_ROLES = frozenset({Role.ORG_ADMIN, Role.DISPATCHER})
EDITABLE_STATUSES = frozenset({LoadStatus.DRAFT, LoadStatus.POSTED})
CANCELLABLE_STATUSES = frozenset(
    {LoadStatus.DRAFT, LoadStatus.POSTED, LoadStatus.ASSIGNED, LoadStatus.RELEASED}
)
EXPIRY_BATCH_SIZE = 500

CarrierEligibility = Callable[[AsyncSession, uuid.UUID, Load], Awaitable[str | None]]
"""Return ``None`` when the carrier may be assigned the load, else the reason it may not.

The carriers domain's check (``superior_one.carriers.service.load_eligibility_check``,
set as app.state.carrier_eligibility) raises its own error listing every reason.
"""


async def allow_all_carriers(
    session: AsyncSession, carrier_organization_id: uuid.UUID, load: Load
) -> str | None:
    # Used where no vetting check is installed (tools, tests of the loads domain alone).
    return None


ManualTransitionCheck = Callable[[AsyncSession, Load, LoadStatus, Principal], Awaitable[None]]
"""Runs after a person changed a load's status. The tracking domain's check
(``superior_one.tracking.fraud.check_manual_transition``, set as
app.state.load_transition_check) flags a move past pickup without GPS proof."""


async def no_transition_check(
    session: AsyncSession, load: Load, to_status: LoadStatus, principal: Principal
) -> None:
    return None


@dataclass(slots=True)
class LoadsRuntime:
    """The long-lived objects of the loads domain in one process (api, worker, CLI)."""

    board_cache: BoardCache
    catalog: EquipmentCatalogCache

    @classmethod
    def create(cls, settings: Settings, redis: Any) -> LoadsRuntime:
        return cls(board_cache=BoardCache(redis, settings), catalog=EquipmentCatalogCache())


# --- the board ---


@dataclass(slots=True)
class BoardService:
    session: AsyncSession
    settings: Settings
    cache: BoardCache

    async def search(self, search: BoardSearch) -> bytes:
        """Return one board page as JSON bytes, from the cache when it holds it."""
        generation, cached = await self.cache.get_page(search.page_fingerprint)
        if cached is not None:
            return cached

        body = orjson.dumps(await self._search_database(search))

        if generation is not None:
            await self.cache.put_page(generation, search.page_fingerprint, body)
        return body

    async def _search_database(self, search: BoardSearch) -> dict[str, Any]:
        repository = LoadsRepository(self.session)
        await repository.prepare_board_transaction(search)

        after = search.cursor
        past_end = False
        if search.page is not None and search.page > 1:
            after, past_end = await self._legacy_page_start(repository, search)

        # Cursor pages carry no total; first and legacy pages count in the same
        # statement as their rows.
        cap = self.settings.board_count_cap
        count_cap = None if search.cursor is not None else cap
        if past_end:
            total = await repository.board_count(search, cap) if count_cap else None
            page = BoardPage(rows=(), total=total)
        else:
            page = await self._page(repository, search, after, count_cap)

        rows = page.rows
        has_more = len(rows) > search.limit
        rows = rows[: search.limit]
        next_cursor = None
        if has_more:
            next_cursor = encode_cursor(_row_cursor(search.sort, rows[-1]), search.fingerprint)
            if search.page is not None:
                await self.cache.put_anchor(_anchor_search(search), search.page + 1, next_cursor)

        return {
            "items": [board_item(row) for row in rows],
            "nextCursor": next_cursor,
            "limit": search.limit,
            "total": None if page.total is None else page.total.value,
            "totalExact": None if page.total is None else page.total.exact,
            "page": search.page,
            "distanceMetric": "WGS84 geodesic (PostGIS geography), statute miles",
        }

    async def _page(
        self,
        repository: LoadsRepository,
        search: BoardSearch,
        after: Cursor | None,
        count_cap: int | None,
    ) -> BoardPage:
        """Return up to ``limit + 1`` rows of the page that starts after ``after``."""
        wanted = search.limit + 1
        if search.sort is not BoardSort.DISTANCE:
            return await repository.board_page(search, after, wanted, count_cap=count_cap)

        # The GiST index yields rows by sphere distance. A row not fetched yet is
        # at least as far on the sphere as the farthest fetched one, so at least
        # that divided by SPHERE_MARGIN on the ellipsoid; once the page's last
        # exact distance is within that bound, no later row can belong before it.
        # Loads share pickup points (a ZIP centre), so the first page often ends
        # in a tie; fetching well past it usually settles the order at once.
        fetch = max(100, 4 * wanted)
        total: BoardTotal | None = None
        while True:
            page = await repository.board_page(
                search, after, wanted, count_cap=count_cap, fetch=fetch
            )
            if count_cap is not None:
                total, count_cap = page.total, None
            rows = page.rows
            if (
                not rows
                or rows[0].fetched < fetch
                or rows[-1].origin_distance_m <= rows[0].farthest_sphere_m / SPHERE_MARGIN
            ):
                return BoardPage(rows=rows, total=total)
            fetch *= 2

    async def _legacy_page_start(
        self, repository: LoadsRepository, search: BoardSearch
    ) -> tuple[Cursor | None, bool]:
        """Find where legacy page ``search.page`` starts, without an OFFSET over the rows.

        Each served page remembers the cursor that starts the next one, so a
        client stepping through pages costs one keyset query per page. A jump
        to a page nobody reached recently starts from the nearest remembered
        page below it and reads only sort keys from there.
        """
        assert search.page is not None
        anchor_search = _anchor_search(search)
        candidates = list(range(search.page, max(1, search.page - 64), -1))
        anchors = await self.cache.get_anchors(anchor_search, candidates)
        start_page, start = 1, None
        for page in candidates:
            if page in anchors:
                try:
                    start_page = page
                    start = decode_cursor(anchors[page], search.fingerprint, search.sort)
                except errors.InvalidCursorError:
                    start_page, start = 1, None
                    continue
                break
        if start_page == search.page:
            return start, False

        cursor = await repository.board_key_after(
            search, start, (search.page - start_page) * search.limit
        )
        if cursor is None:
            return None, True
        await self.cache.put_anchor(
            anchor_search, search.page, encode_cursor(cursor, search.fingerprint)
        )
        return cursor, False


def _anchor_search(search: BoardSearch) -> str:
    return f"{search.fingerprint}:{search.limit}"


def _row_cursor(sort: BoardSort, row: Row[Any]) -> Cursor:
    if sort is BoardSort.RATE:
        key: Any = row.gross_revenue_cents
    elif sort is BoardSort.RATE_PER_MILE:
        key = row.rate_per_mile_cents
    elif sort is BoardSort.DISTANCE:
        key = row.origin_distance_m
    else:
        key = row.pickup_window_start
    return Cursor(sort=sort, key=key, id=row.id)


def _miles(metres: float | None) -> float | None:
    return None if metres is None else round(metres / METRES_PER_MILE, 1)


def _local(moment: datetime, zone: str) -> datetime:
    # Windows go out in the facility's own time zone, with its offset.
    return moment.astimezone(ZoneInfo(zone))


def _board_stop(row: Row[Any], prefix: str) -> dict[str, Any]:
    zone = getattr(row, f"{prefix}_time_zone")
    return {
        "city": getattr(row, f"{prefix}_city"),
        "state": getattr(row, f"{prefix}_state"),
        "zip": getattr(row, f"{prefix}_zip"),
        "timeZone": zone,
        "lat": getattr(row, f"{prefix}_lat"),
        "lng": getattr(row, f"{prefix}_lng"),
        "windowStart": _local(getattr(row, f"{prefix}_window_start"), zone),
        "windowEnd": _local(getattr(row, f"{prefix}_window_end"), zone),
    }


def board_item(row: Row[Any]) -> dict[str, Any]:
    """One board result in the wire format of ``BoardLoadOut``."""
    return {
        "id": str(row.id),
        "reference": row.reference,
        "pickup": _board_stop(row, "pickup"),
        "delivery": _board_stop(row, "delivery"),
        "equipmentType": row.equipment_type,
        "haulType": row.haul_type,
        "loadType": row.load_type,
        "commodity": row.commodity,
        "weightLbs": row.weight_lbs,
        "rate": format_cents(row.rate_cents),
        "rateMode": row.rate_mode,
        "units": None if row.units is None else str(row.units),
        "miles": float(row.miles),
        "grossRevenue": format_cents(row.gross_revenue_cents),
        "ratePerMile": format_cents(row.rate_per_mile_cents),
        "postedAt": row.posted_at,
        "originDistanceMi": _miles(row.origin_distance_m),
        "destinationDistanceMi": _miles(row.destination_distance_m),
    }


# --- one load: shippers and carriers ---


@dataclass(frozen=True, slots=True)
class ResolvedStop:
    street: str
    city: str
    state: str
    zip: str
    time_zone: str
    lat: float
    lng: float
    window_start: datetime
    window_end: datetime
    geofence_radius_m: int | None


def resolve_stop(stop: StopIn) -> ResolvedStop:
    """Fill a stop's time zone and coordinates from its ZIP where the client left them out."""
    place = lookup_zip(stop.zip)
    assert place is not None, "StopIn validated the ZIP"
    return ResolvedStop(
        street=stop.street,
        city=stop.city,
        state=stop.state,
        zip=stop.zip,
        time_zone=stop.time_zone or place.time_zone,
        lat=stop.lat if stop.lat is not None else place.lat,
        lng=stop.lng if stop.lng is not None else place.lng,
        window_start=stop.window_start,
        window_end=stop.window_end,
        geofence_radius_m=stop.geofence_radius_m,
    )


def _stop_values(prefix: str, stop: ResolvedStop) -> dict[str, Any]:
    return {
        f"{prefix}_street": stop.street,
        f"{prefix}_city": stop.city,
        f"{prefix}_state": stop.state,
        f"{prefix}_zip": stop.zip,
        f"{prefix}_time_zone": stop.time_zone,
        f"{prefix}_point": point_ewkt(stop.lat, stop.lng),
        f"{prefix}_window_start": stop.window_start,
        f"{prefix}_window_end": stop.window_end,
        f"{prefix}_geofence_radius_m": stop.geofence_radius_m,
    }


async def road_miles_between(pickup: ResolvedStop, delivery: ResolvedStop) -> Decimal:
    """Road miles on the US freeway graph, to 0.1 mi (CPU-bound: runs in a thread)."""
    miles, _estimated = await asyncio.to_thread(
        road_network().miles, LatLng(pickup.lat, pickup.lng), LatLng(delivery.lat, delivery.lng)
    )
    return Decimal(str(round(miles, 1)))


def _field_error(field: str, message: str, kind: str = "value_error") -> dict[str, str]:
    return {"field": field, "message": message, "type": kind}


def _invalid(*errs: dict[str, str]) -> errors.InvalidLoadError:
    fields = ", ".join(sorted({e["field"] for e in errs}))
    return errors.InvalidLoadError(
        f"Invalid or missing fields: {fields}. Correct them and resend the request.",
        errors=list(errs),
    )


def _require(principal: Principal, organizations: frozenset[OrganizationType], action: str) -> None:
    if principal.organization_type not in organizations or principal.role not in ACTING_ROLES:
        kinds = " or ".join(sorted(o.value.lower() for o in organizations))
        raise errors.LoadRoleError(
            f"Only a {kinds} organization's admin or dispatcher can {action}; "
            f"you are a {principal.organization_type.value.lower()} {principal.role.value}."
        )


@dataclass(slots=True)
class LoadService:
    session: AsyncSession
    settings: Settings
    runtime: LoadsRuntime
    eligibility: CarrierEligibility = allow_all_carriers
    after_manual_transition: ManualTransitionCheck = no_transition_check

    @property
    def repository(self) -> LoadsRepository:
        return LoadsRepository(self.session)

    async def catalog(self) -> EquipmentCatalog:
        return await self.runtime.catalog.get(self.session)

    # shipper side

    async def create(self, principal: Principal, body: LoadCreate) -> Load:
        _require(principal, POSTING_ORGANIZATIONS, "create loads")
        catalog = await self.catalog()
        if body.equipment_type not in catalog.types:
            raise _invalid(_unknown_equipment("equipmentType", body.equipment_type, catalog))

        pickup, delivery = resolve_stop(body.pickup), resolve_stop(body.delivery)
        miles = body.miles if body.miles is not None else await road_miles_between(pickup, delivery)
        rate_cents = body.rate_cents
        load = Load(
            shipper_organization_id=principal.organization_id,
            created_by_user_id=principal.user_id,
            status=LoadStatus.DRAFT,
            reference=body.reference,
            **_stop_values("pickup", pickup),
            **_stop_values("delivery", delivery),
            equipment_type=body.equipment_type,
            haul_type=body.haul_type,
            load_type=body.load_type,
            commodity=body.commodity,
            weight_lbs=body.weight_lbs,
            rate_cents=rate_cents,
            rate_mode=body.rate_mode,
            units=body.units,
            miles=miles,
            gross_revenue_cents=gross_revenue_cents(
                rate_cents, body.rate_mode, miles=miles, units=body.units
            ),
        )
        self.session.add(load)
        await self.session.flush()
        actor = Actor.from_principal(principal)
        await record_event(self.session, load.id, None, LoadStatus.DRAFT, actor, reason="created")
        log.info(
            "load.created", load_id=str(load.id), organization_id=str(principal.organization_id)
        )

        if body.post:
            self._check_postable(load)
            await transition_load(
                self.session,
                load.id,
                LoadStatus.POSTED,
                actor,
                board_cache=self.runtime.board_cache,
            )
        await self.session.refresh(load)
        return load

    async def update(self, principal: Principal, load_id: uuid.UUID, body: LoadUpdate) -> Load:
        _require(principal, POSTING_ORGANIZATIONS, "edit loads")
        load = await self._owned(principal, load_id, for_update=True)
        if load.status not in EDITABLE_STATUSES:
            raise errors.LoadNotEditableError(
                f"Load {load_id} is {load.status}; only DRAFT or POSTED loads can be edited. "
                "Cancel it and create a new one instead.",
                currentStatus=load.status.value,
            )

        changes: dict[str, Any] = {}
        problems: list[dict[str, str]] = []
        if body.equipment_type is not None:
            catalog = await self.catalog()
            equipment = body.equipment_type.upper()
            if equipment not in catalog.types:
                problems.append(_unknown_equipment("equipmentType", equipment, catalog))
            changes["equipment_type"] = equipment
        for name in ("haul_type", "load_type", "commodity", "weight_lbs", "reference"):
            value = getattr(body, name)
            if value is not None:
                changes[name] = value

        pickup = resolve_stop(body.pickup) if body.pickup else _stored_stop(load, "pickup")
        delivery = resolve_stop(body.delivery) if body.delivery else _stored_stop(load, "delivery")
        if body.pickup:
            changes.update(_stop_values("pickup", pickup))
        if body.delivery:
            changes.update(_stop_values("delivery", delivery))
        if body.miles is not None:
            changes["miles"] = body.miles
        elif body.pickup or body.delivery:
            changes["miles"] = await road_miles_between(pickup, delivery)

        rate_mode = body.rate_mode or load.rate_mode
        units = body.units if body.units is not None else load.units
        if body.rate_mode is not None and rate_mode not in QUANTITY_MODES and body.units is None:
            units = None
        if rate_mode in QUANTITY_MODES and units is None:
            problems.append(_field_error("units", f"rate mode {rate_mode} needs units"))
        if rate_mode not in QUANTITY_MODES and units is not None:
            problems.append(_field_error("units", f"rate mode {rate_mode} takes no units"))
        if problems:
            raise _invalid(*problems)

        rate_cents = _cents(body.rate) if body.rate is not None else load.rate_cents
        miles = changes.get("miles", load.miles)
        changes.update(
            rate_cents=rate_cents,
            rate_mode=rate_mode,
            units=units,
            gross_revenue_cents=gross_revenue_cents(
                rate_cents, rate_mode, miles=miles, units=units
            ),
        )
        for name, value in changes.items():
            setattr(load, name, value)
        await self.session.flush()
        if load.status is LoadStatus.POSTED:
            self.runtime.board_cache.invalidate_after_commit(self.session)
        log.info("load.updated", load_id=str(load_id), fields=sorted(changes))
        await self.session.refresh(load)
        return load

    async def post(self, principal: Principal, load_id: uuid.UUID) -> Load:
        _require(principal, POSTING_ORGANIZATIONS, "post loads")
        load = await self._owned(principal, load_id)
        self._check_postable(load)
        await self._transition(principal, load, LoadStatus.POSTED)
        return load

    async def cancel(self, principal: Principal, load_id: uuid.UUID, reason: str) -> Load:
        _require(principal, POSTING_ORGANIZATIONS, "cancel loads")
        load = await self._owned(principal, load_id)
        await self._transition(
            principal, load, LoadStatus.CANCELLED, reason=reason, expected=CANCELLABLE_STATUSES
        )
        return load

    async def complete(self, principal: Principal, load_id: uuid.UUID) -> Load:
        _require(principal, POSTING_ORGANIZATIONS, "confirm delivery")
        load = await self._owned(principal, load_id)
        await self._transition(principal, load, LoadStatus.COMPLETED, reason="delivery confirmed")
        # The invoice job is deferred in this transaction: it exists exactly when
        # the completion commits. Imported here: payments sits above loads.
        from superior_one.jobs import defer
        from superior_one.payments.tasks import create_invoice

        await defer(self.session, create_invoice, load_id=str(load.id))
        return load

    async def interests(
        self, principal: Principal, load_id: uuid.UUID
    ) -> list[tuple[LoadInterest, str]]:
        _require(principal, POSTING_ORGANIZATIONS, "see interested carriers")
        load = await self._owned(principal, load_id)
        return [(interest, name) for interest, name in await self.repository.interests(load.id)]

    async def assign(
        self,
        principal: Principal,
        load_id: uuid.UUID,
        carrier_organization_id: uuid.UUID,
        *,
        accept_counter_rate: bool = False,
    ) -> Load:
        """Give a posted load to one of the carriers that showed interest in it."""
        _require(principal, POSTING_ORGANIZATIONS, "assign loads")
        load = await self._owned(principal, load_id)
        carrier = await self.repository.get_organization(carrier_organization_id)
        if carrier is None or carrier.type is not OrganizationType.CARRIER or not carrier.is_active:
            raise errors.CarrierNotEligibleError(
                f"Organization {carrier_organization_id} is not an active carrier.",
                carrierOrganizationId=str(carrier_organization_id),
            )
        refusal = await self.eligibility(self.session, carrier_organization_id, load)
        if refusal is not None:
            raise errors.CarrierNotEligibleError(
                f"Carrier {carrier_organization_id} cannot be assigned loads: {refusal}",
                carrierOrganizationId=str(carrier_organization_id),
                reason=refusal,
            )

        # The transition comes first: of two concurrent assignments the loser then
        # fails on the load's status (409), not on interest rows the winner changed.
        await self._transition(
            principal,
            load,
            LoadStatus.ASSIGNED,
            expected={LoadStatus.POSTED},
            changes={"assigned_carrier_organization_id": carrier_organization_id},
            reason=f"assigned to carrier {carrier_organization_id}",
        )
        interest = await self.repository.get_interest(load.id, carrier_organization_id)
        if interest is None or interest.status is not InterestStatus.ACTIVE:
            raise errors.InterestNotFoundError(
                f"Carrier {carrier_organization_id} has no active interest in load {load_id}; "
                "assign one of the carriers listed under /loads/{id}/interests."
            )
        if accept_counter_rate and interest.counter_rate_cents is not None:
            load.rate_cents = interest.counter_rate_cents
            load.gross_revenue_cents = gross_revenue_cents(
                interest.counter_rate_cents, load.rate_mode, miles=load.miles, units=load.units
            )
        interest.status = InterestStatus.ACCEPTED
        await self.repository.decline_other_interests(load.id, carrier_organization_id)
        await self.session.flush()
        await self.session.refresh(load)
        return load

    # carrier side

    async def express_interest(
        self,
        principal: Principal,
        load_id: uuid.UUID,
        *,
        counter_rate_cents: int | None,
        note: str,
    ) -> LoadInterest:
        _require(principal, CARRYING_ORGANIZATIONS, "express interest in loads")
        load = await self.repository.get(load_id)
        if load is None or load.status is not LoadStatus.POSTED:
            raise errors.LoadNotFoundError(f"Load {load_id} is not on the board.")
        values = {
            "status": InterestStatus.ACTIVE,
            "counter_rate_cents": counter_rate_cents,
            "note": note,
            "user_id": principal.user_id,
            "updated_at": func.now(),
        }
        statement = (
            pg_insert(LoadInterest)
            .values(
                id=uuid.uuid4(),
                load_id=load_id,
                carrier_organization_id=principal.organization_id,
                **values,
            )
            .on_conflict_do_update(constraint="uq_load_interests_load_carrier", set_=values)
            .returning(LoadInterest.id)
        )
        interest_id = (await self.session.execute(statement)).scalar_one()
        log.info(
            "load.interest_expressed",
            load_id=str(load_id),
            carrier_organization_id=str(principal.organization_id),
            counter_rate_cents=counter_rate_cents,
        )
        interest = await self.session.get(LoadInterest, interest_id, populate_existing=True)
        assert interest is not None
        return interest

    async def withdraw_interest(self, principal: Principal, load_id: uuid.UUID) -> None:
        _require(principal, CARRYING_ORGANIZATIONS, "withdraw interest")
        result = await self.session.execute(
            update(LoadInterest)
            .where(
                LoadInterest.load_id == load_id,
                LoadInterest.carrier_organization_id == principal.organization_id,
                LoadInterest.status == InterestStatus.ACTIVE,
            )
            .values(status=InterestStatus.WITHDRAWN, updated_at=func.now())
            .returning(LoadInterest.id)
        )
        if result.scalar_one_or_none() is None:
            raise errors.InterestNotFoundError(
                f"Your organization has no active interest in load {load_id}."
            )

    async def release(
        self, principal: Principal, load_id: uuid.UUID, driver_user_id: uuid.UUID
    ) -> Load:
        """Dispatch one of the carrier's drivers on an assigned load."""
        _require(principal, CARRYING_ORGANIZATIONS, "release drivers")
        load = await self.repository.get_assigned(principal, load_id)
        if load is None:
            raise errors.LoadNotFoundError(f"Load {load_id} is not assigned to your organization.")
        # Locked: of two releases of one driver, the second waits here for the first
        # to commit, then finds its load below. The unique index behind ON_THE_ROAD
        # catches any writer that skips this step.
        driver = await self.repository.get_driver(
            principal.organization_id, driver_user_id, lock=True
        )
        if driver is None:
            raise errors.DriverNotFoundError(
                f"User {driver_user_id} is not an active driver of your organization."
            )
        busy = await self.repository.load_on_the_road(driver_user_id)
        if busy is not None and busy.id != load.id:
            name = f"{busy.id} ({busy.reference})" if busy.reference else str(busy.id)
            raise errors.DriverBusyError(
                f"Driver {driver_user_id} is already on load {name}, which is "
                f"{busy.status.value}. Finish that load or reassign it to another driver "
                f"first; a driver carries one released or in-transit load at a time.",
                driverUserId=str(driver_user_id),
                activeLoadId=str(busy.id),
                activeLoadReference=busy.reference,
                activeLoadStatus=busy.status.value,
            )
        await self._transition(
            principal,
            load,
            LoadStatus.RELEASED,
            expected={LoadStatus.ASSIGNED},
            changes={"assigned_driver_user_id": driver_user_id},
            reason=f"driver {driver_user_id} dispatched",
        )
        return load

    # both sides

    async def get(self, principal: Principal, load_id: uuid.UUID) -> Load:
        load = await self.repository.get_visible(principal, load_id)
        if load is None:
            raise errors.LoadNotFoundError(f"Load {load_id} does not exist.")
        return load

    async def events(self, principal: Principal, load_id: uuid.UUID) -> Sequence[LoadEvent]:
        load = await self.repository.get_owned(principal, load_id)
        if load is None and principal.organization_type in CARRYING_ORGANIZATIONS:
            load = await self.repository.get_assigned(principal, load_id)
        if load is None:
            raise errors.LoadNotFoundError(f"Load {load_id} does not exist.")
        return await self.repository.events(load.id)

    async def list_mine(
        self,
        principal: Principal,
        *,
        statuses: Sequence[LoadStatus],
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[Load], str | None]:
        after = _decode_list_cursor(cursor) if cursor else None
        loads = await self.repository.list_for_organization(
            principal, statuses=statuses, after=after, limit=limit + 1
        )
        next_cursor = None
        if len(loads) > limit:
            loads = loads[:limit]
            last = loads[-1]
            key = (
                last.assigned_at
                if principal.organization_type is OrganizationType.CARRIER
                else last.created_at
            )
            next_cursor = _encode_list_cursor(key, last.id)
        return loads, next_cursor

    # steps

    async def _owned(
        self, principal: Principal, load_id: uuid.UUID, *, for_update: bool = False
    ) -> Load:
        load = await self.repository.get_owned(principal, load_id, for_update=for_update)
        if load is None:
            raise errors.LoadNotFoundError(f"Load {load_id} does not exist.")
        return load

    def _check_postable(self, load: Load) -> None:
        if load.pickup_window_end <= datetime.now(UTC):
            raise _invalid(
                _field_error(
                    "pickup.windowEnd",
                    "the pickup window has already ended; move it into the future to post",
                )
            )

    async def _transition(
        self,
        principal: Principal,
        load: Load,
        to_status: LoadStatus,
        *,
        reason: str | None = None,
        expected: frozenset[LoadStatus] | set[LoadStatus] | None = None,
        changes: dict[str, Any] | None = None,
    ) -> None:
        await transition_load(
            self.session,
            load.id,
            to_status,
            Actor.from_principal(principal),
            reason=reason,
            expected_from=expected,
            changes=changes,
            board_cache=self.runtime.board_cache,
        )
        await self.session.refresh(load)
        await self.after_manual_transition(self.session, load, to_status, principal)


def _cents(value: Any) -> int:
    return amount_to_cents(value)


def _unknown_equipment(field: str, value: str, catalog: EquipmentCatalog) -> dict[str, str]:
    known = ", ".join(sorted(catalog.types))
    return _field_error(field, f"unknown equipment type {value!r}; use one of {known}")


def _stored_stop(load: Load, prefix: str) -> ResolvedStop:
    return ResolvedStop(
        street=getattr(load, f"{prefix}_street"),
        city=getattr(load, f"{prefix}_city"),
        state=getattr(load, f"{prefix}_state"),
        zip=getattr(load, f"{prefix}_zip"),
        time_zone=getattr(load, f"{prefix}_time_zone"),
        lat=getattr(load, f"{prefix}_lat"),
        lng=getattr(load, f"{prefix}_lng"),
        window_start=getattr(load, f"{prefix}_window_start"),
        window_end=getattr(load, f"{prefix}_window_end"),
        geofence_radius_m=getattr(load, f"{prefix}_geofence_radius_m"),
    )


def _encode_list_cursor(key: datetime | None, load_id: uuid.UUID) -> str:
    payload = orjson.dumps([key.isoformat() if key else None, load_id.hex])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def _decode_list_cursor(value: str) -> tuple[datetime | None, uuid.UUID]:
    try:
        key, id_hex = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        return (datetime.fromisoformat(key) if key else None), uuid.UUID(hex=id_hex)
    except (ValueError, TypeError) as exc:
        raise errors.InvalidCursorError(
            "The cursor is not one this API issued. Start again without 'cursor'.",
            field="cursor",
        ) from exc


# --- expiry ---


async def expire_overdue_loads(
    session: AsyncSession, *, limit: int = EXPIRY_BATCH_SIZE
) -> list[uuid.UUID]:
    """Expire up to ``limit`` posted loads whose pickup window has ended; flush only.

    One statement per batch, with the same guard as every transition (the row is
    still POSTED when updated); rows locked by a concurrent assignment are
    skipped, not waited for, and the assignment wins.
    """
    statement = text(
        """
        WITH due AS (
            SELECT id FROM loads
            WHERE status = 'POSTED' AND pickup_window_end <= now()
            ORDER BY pickup_window_end
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE loads SET status = 'EXPIRED', updated_at = now()
            FROM due WHERE loads.id = due.id AND loads.status = 'POSTED'
            RETURNING loads.id
        )
        INSERT INTO load_events (load_id, from_status, to_status, actor_kind,
                                 actor_description, reason)
        SELECT id, 'POSTED', 'EXPIRED', 'SYSTEM', 'load expiry', 'pickup window ended'
        FROM expired
        RETURNING load_id
        """
    )
    return list((await session.execute(statement, {"limit": limit})).scalars())


async def expire_posted_loads(
    sessionmaker: async_sessionmaker[AsyncSession],
    board_cache: BoardCache,
    *,
    batch_size: int = EXPIRY_BATCH_SIZE,
) -> int:
    """Expire every posted load whose pickup window has ended, in batches; return the count.

    NOTE: the jobs domain runs this periodically (a Procrastinate periodic task);
    ``superior-one expire-loads`` runs it by hand.
    """
    total = 0
    while True:
        async with unit_of_work(sessionmaker) as session:
            expired = await expire_overdue_loads(session, limit=batch_size)
            if expired:
                board_cache.invalidate_after_commit(session)
        total += len(expired)
        if expired:
            log.info("load.expired_batch", count=len(expired))
        if len(expired) < batch_size:
            return total
