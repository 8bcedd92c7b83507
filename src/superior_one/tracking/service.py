"""Reads of the tracking domain, and the shipper's stop fences.

Every read goes through the caller: a load's track, ETA and geofence events
are visible to its shipper, its carrier (a driver: their own load) and
platform admins; another tenant's load answers 404. A carrier's trucks are
visible to that carrier's dispatchers and admins only.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts.models import OrganizationType, Role
from superior_one.auth.principal import Principal
from superior_one.geo.areas import Polygon
from superior_one.geo.geodesy import METRES_PER_MILE, LatLng, distance_m
from superior_one.geo.roads import road_network
from superior_one.loads.models import Load, LoadStatus
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS
from superior_one.tracking import errors
from superior_one.tracking.geofence import GeofenceState, StopFence, StopKind
from superior_one.tracking.ingest import TrackingRuntime
from superior_one.tracking.models import FraudFlag, TruckPosition
from superior_one.tracking.repository import TrackingRepository, released_since
from superior_one.tracking.rules import ETA_RULES, GEOFENCE_RULES, EtaRules, GeofenceRules

log = structlog.get_logger(__name__)

DISPATCHING_ROLES = frozenset({Role.DISPATCHER, Role.ORG_ADMIN})
SHIPPING_ORGANIZATIONS = frozenset({OrganizationType.SHIPPER, OrganizationType.BROKER})
# Redis GEO measures on a sphere (up to 0.5 % off the WGS84 geodesic): search a
# little wider, then keep what the geodesic puts inside.
GEO_SEARCH_PADDING = 1.01
# Statuses in which a stop's fence may still be redrawn: until the truck has left it.
_BEFORE_PICKUP = {LoadStatus.DRAFT, LoadStatus.POSTED, LoadStatus.ASSIGNED, LoadStatus.RELEASED}
FENCE_EDITABLE = {
    StopKind.PICKUP: frozenset(_BEFORE_PICKUP),
    StopKind.DELIVERY: frozenset(_BEFORE_PICKUP | {LoadStatus.IN_TRANSIT}),
}


@dataclass(frozen=True, slots=True)
class TrackPage:
    load_id: uuid.UUID
    resolution_s: int
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Eta:
    load_id: uuid.UUID
    next_stop: str
    last_fix_id: int
    last_fix_time: datetime
    last_fix_age_s: float
    stale: bool
    road_miles: float
    road_miles_estimated: bool
    average_speed_mph: float
    eta: datetime
    minutes_remaining: float


def encode_cursor(value: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


def decode_cursor(value: str) -> list[Any]:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(decoded, list):
        raise _bad_cursor()
    return decoded


# Ids in a cursor are compared with BIGINT columns, so a larger value failed as a
# vague "value cannot be stored".
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


def cursor_id(value: Any) -> int:
    """Return a cursor's row id; raise :class:`ValueError` unless it is a BIGINT."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a cursor id is an integer")
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        raise ValueError("a cursor id is a BIGINT")
    return value


def cursor_time(value: Any) -> datetime:
    """Return a cursor's fix time; raise :class:`ValueError` unless it is one a fix can have.

    A time without an offset broke the bucket arithmetic against an aware epoch,
    and one in year 1 or 9999 overflowed it. Both gave a 500.
    """
    if not isinstance(value, str):
        raise ValueError("a cursor time is text")
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() is None or not 2 <= moment.year <= 9998:
        raise ValueError("a cursor time has an offset and a plausible year")
    return moment


def _bad_cursor() -> errors.InvalidTrackCursorError:
    return errors.InvalidTrackCursorError(
        "The cursor is not one this API issued. Start again without 'cursor'.", field="cursor"
    )


@dataclass(slots=True)
class TrackingService:
    session: AsyncSession
    runtime: TrackingRuntime

    @property
    def repository(self) -> TrackingRepository:
        return TrackingRepository(self.session)

    async def visible_load(self, principal: Principal, load_id: uuid.UUID) -> Load:
        load = await self.repository.visible_load(principal, load_id)
        if load is None:
            raise errors.TrackedLoadNotFoundError(f"Load {load_id} does not exist.")
        return load

    # --- one load ---

    async def track(
        self,
        principal: Principal,
        load_id: uuid.UUID,
        *,
        resolution_s: int,
        cursor: str | None,
        limit: int,
    ) -> TrackPage:
        load = await self.visible_load(principal, load_id)
        after: tuple[datetime, int] | None = None
        if cursor:
            try:
                stamp, fix_id, cursor_resolution = decode_cursor(cursor)
                after = (cursor_time(stamp), cursor_id(fix_id))
            except (ValueError, TypeError) as exc:
                raise _bad_cursor() from exc
            if cursor_resolution != resolution_s:
                raise errors.InvalidTrackCursorError(
                    "The cursor belongs to another resolution; keep 'resolutionS' while paging.",
                    field="cursor",
                )
        rows = await self.repository.track_page(
            load.id,
            since=released_since(load.released_at, self.runtime.validation_rules.max_age_s),
            after=after,
            resolution_s=resolution_s,
            limit=limit + 1,
        )
        items = [
            {
                "fix_id": r.id,
                "fix_time": r.fix_time,
                "lat": r.lat,
                "lng": r.lng,
                "accuracy_m": r.accuracy_m,
                "speed_mps": r.speed_mps,
                "heading_deg": r.heading_deg,
                "source": r.source,
            }
            for r in rows[:limit]
        ]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(
                [last["fix_time"].isoformat(), last["fix_id"], resolution_s]
            )
        return TrackPage(load.id, resolution_s, items, next_cursor)

    async def eta(
        self, principal: Principal, load_id: uuid.UUID, rules: EtaRules = ETA_RULES
    ) -> Eta:
        load = await self.visible_load(principal, load_id)
        if load.status is LoadStatus.RELEASED:
            next_stop, stop = "pickup", LatLng(load.pickup_lat, load.pickup_lng)
        elif load.status is LoadStatus.IN_TRANSIT:
            next_stop, stop = "delivery", LatLng(load.delivery_lat, load.delivery_lng)
        else:
            raise errors.NoNextStopError(
                f"Load {load_id} is {load.status}; an ETA exists while it is RELEASED "
                "(to pickup) or IN_TRANSIT (to delivery).",
                currentStatus=load.status.value,
            )
        last = await self.repository.last_fix(
            load.id, released_since(load.released_at, self.runtime.validation_rules.max_age_s)
        )
        if last is None:
            raise errors.NoFixYetError(f"Load {load_id} has no GPS fix yet.")

        # Shortest paths are CPU work: keep them off the event loop.
        route = await asyncio.to_thread(road_network().route, LatLng(last.lat, last.lng), stop)
        hours = route.miles / rules.average_speed_mph
        eta = last.fix_time + timedelta(hours=hours)
        now = datetime.now(UTC)
        age_s = max(0.0, (now - last.fix_time).total_seconds())
        return Eta(
            load_id=load.id,
            next_stop=next_stop,
            last_fix_id=last.id,
            last_fix_time=last.fix_time,
            last_fix_age_s=round(age_s, 1),
            stale=age_s > rules.stale_after_s,
            road_miles=round(route.miles, 1),
            road_miles_estimated=route.estimated,
            average_speed_mph=rules.average_speed_mph,
            eta=eta,
            minutes_remaining=round(max(0.0, (eta - now).total_seconds() / 60), 1),
        )

    async def geofence_events(self, principal: Principal, load_id: uuid.UUID) -> Sequence[Any]:
        load = await self.visible_load(principal, load_id)
        return await self.repository.geofence_events(load.id)

    async def load_flags(self, principal: Principal, load_id: uuid.UUID) -> Sequence[FraudFlag]:
        """Flags on a load, for its shipper and platform admins (others: 404)."""
        load = await self.repository.visible_load(principal, load_id)
        if load is None or not (
            principal.is_platform_admin or load.shipper_organization_id == principal.organization_id
        ):
            raise errors.TrackedLoadNotFoundError(f"Load {load_id} does not exist.")
        return await self.repository.load_flags(load.id)

    async def set_stop_polygon(
        self,
        principal: Principal,
        load_id: uuid.UUID,
        stop: StopKind,
        vertices: list[tuple[float, float]],
    ) -> None:
        """Replace a stop's circle with a polygon (the shipper's facility outline)."""
        load = await self.repository.visible_load(principal, load_id)
        if load is None or not (
            principal.is_platform_admin or load.shipper_organization_id == principal.organization_id
        ):
            raise errors.TrackedLoadNotFoundError(f"Load {load_id} does not exist.")
        if not principal.is_platform_admin and principal.role not in DISPATCHING_ROLES:
            raise errors.TrackingForbiddenError(
                "Only the shipper's admins and dispatchers can draw a stop's fence."
            )
        stop_open = FENCE_EDITABLE[stop]
        if load.status not in stop_open:
            raise errors.FenceLockedError(
                f"Load {load_id} is {load.status}: its {stop.value} fence can no longer change.",
                currentStatus=load.status.value,
            )
        location = (
            LatLng(load.pickup_lat, load.pickup_lng)
            if stop is StopKind.PICKUP
            else LatLng(load.delivery_lat, load.delivery_lng)
        )
        fence = _polygon_fence(stop, vertices, location)
        await self.repository.set_stop_polygon(load.id, stop.value, [list(v) for v in vertices])
        # A load already being tracked switches fences now; its progress is kept.
        row = await self.repository.lock_state(load.id)
        if row is not None:
            state = GeofenceState.from_dict(row.state)
            stops = tuple(fence if s.kind is stop else s for s in state.stops)
            row.state = state.model_copy(update={"stops": stops}).to_dict()
        await self.session.flush()
        log.info("tracking.stop_fence_set", load_id=str(load.id), stop=stop.value,
                 vertices=len(vertices))  # fmt: skip

    # --- a carrier's trucks ---

    def carrier_of(self, principal: Principal, carrier_id: uuid.UUID | None) -> uuid.UUID:
        if principal.is_platform_admin:
            if carrier_id is None:
                raise errors.TrackingForbiddenError(
                    "Platform admins name the carrier: add 'carrierId'."
                )
            return carrier_id
        if (
            principal.organization_type is not OrganizationType.CARRIER
            or principal.role not in DISPATCHING_ROLES
        ):
            raise errors.TrackingForbiddenError(
                "Truck positions are visible to the carrier's dispatchers and admins only."
            )
        if carrier_id is not None and carrier_id != principal.organization_id:
            # Another carrier's fleet: indistinguishable from one that does not exist.
            raise errors.CarrierNotFoundError(
                f"No carrier {carrier_id} among yours: omit 'carrierId' to see your own trucks."
            )
        return principal.organization_id

    async def positions(
        self,
        principal: Principal,
        carrier_id: uuid.UUID | None,
        *,
        cursor: str | None,
        limit: int,
    ) -> tuple[uuid.UUID, list[TruckPosition], str | None]:
        carrier = self.carrier_of(principal, carrier_id)
        after = None
        if cursor:
            try:
                after = uuid.UUID(str(decode_cursor(cursor)[0]))
            except (ValueError, IndexError) as exc:
                raise _bad_cursor() from exc
        rows = list(await self.repository.positions_page(carrier, after, limit + 1))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor([str(rows[-1].driver_user_id)])
        return carrier, rows, next_cursor

    async def nearby(
        self,
        principal: Principal,
        carrier_id: uuid.UUID | None,
        *,
        lat: float,
        lng: float,
        radius_mi: float,
        limit: int,
    ) -> tuple[uuid.UUID, list[dict[str, Any]], str]:
        """Return a carrier's trucks within ``radius_mi`` of a point, nearest first."""
        carrier = self.carrier_of(principal, carrier_id)
        radius_m = radius_mi * METRES_PER_MILE
        if self.runtime.redis_usable():
            try:
                found = await self.runtime.stream.positions_near(
                    carrier, lat, lng, radius_m * GEO_SEARCH_PADDING, limit
                )
                details = await self.runtime.stream.position_details(
                    carrier, [driver for driver, _, _ in found]
                )
                return carrier, _nearby_items(found, details, lat, lng, radius_m), "redis"
            except REDIS_UNAVAILABLE_ERRORS as exc:
                self.runtime.redis_failed(exc)
        rows = await self.repository.positions_within(carrier, lat, lng, radius_m, limit)
        items = [
            _position_item(row[0], distance_mi=round(row[1] / METRES_PER_MILE, 2)) for row in rows
        ]
        return carrier, items, "database"

    async def carrier_flags(
        self,
        principal: Principal,
        carrier_id: uuid.UUID,
        *,
        cursor: str | None,
        limit: int,
    ) -> tuple[dict[str, int], list[FraudFlag], str | None]:
        """Return a carrier's flags for shippers and brokers deciding whether to use it.

        Totals count every shipper's loads; the listed flags are the caller's own
        loads only, because other shippers' loads are private to them.
        """
        if not principal.is_platform_admin and (
            principal.organization_type not in SHIPPING_ORGANIZATIONS
        ):
            raise errors.TrackingForbiddenError(
                "A carrier's fraud flags are visible to shippers, brokers and platform admins."
            )
        after = None
        if cursor:
            try:
                after = cursor_id(decode_cursor(cursor)[0])
            except (ValueError, IndexError, TypeError) as exc:
                raise _bad_cursor() from exc
        shipper = None if principal.is_platform_admin else principal.organization_id
        totals = await self.repository.carrier_flag_summary(carrier_id)
        flags = list(
            await self.repository.carrier_flags(
                carrier_id, shipper_organization_id=shipper, after=after, limit=limit + 1
            )
        )
        next_cursor = None
        if len(flags) > limit:
            flags = flags[:limit]
            next_cursor = encode_cursor([flags[-1].id])
        return totals, flags, next_cursor


def _polygon_fence(
    stop: StopKind,
    vertices: list[tuple[float, float]],
    location: LatLng,
    rules: GeofenceRules = GEOFENCE_RULES,
) -> StopFence:
    for index, (lat, lng) in enumerate(vertices):
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            raise errors.InvalidFenceError(
                f"Vertex {index} ({lat}, {lng}) is not a position: send [latitude, longitude] "
                "with latitude in -90..90 and longitude in -180..180.",
                field=f"vertices[{index}]",
            )
    try:
        polygon = Polygon(tuple(LatLng(lat, lng) for lat, lng in vertices))
        fence = StopFence(stop_id=stop.value, kind=stop, polygon=tuple(vertices))
    except ValueError as exc:
        raise errors.InvalidFenceError(
            f"The polygon cannot be used as a fence: {exc}.", field="vertices"
        ) from exc
    distance = polygon.edge_distance_m(location)
    if distance > rules.polygon_max_stop_distance_m:
        raise errors.InvalidFenceError(
            f"The polygon is {distance / 1000:.1f} km from the {stop.value} stop at "
            f"({location.lat}, {location.lng}); draw it around the stop's facility "
            f"(within {rules.polygon_max_stop_distance_m / 1000:.1f} km).",
            field="vertices",
        )
    return fence


def _position_item(position: TruckPosition, *, distance_mi: float | None) -> dict[str, Any]:
    return {
        "driver_user_id": position.driver_user_id,
        "load_id": position.load_id,
        "fix_time": position.fix_time,
        "lat": position.lat,
        "lng": position.lng,
        "accuracy_m": position.accuracy_m,
        "speed_mps": position.speed_mps,
        "heading_deg": position.heading_deg,
        "distance_mi": distance_mi,
    }


def _nearby_items(
    found: list[tuple[str, float, float]],
    details: dict[str, tuple[datetime, dict[str, Any]]],
    lat: float,
    lng: float,
    radius_m: float,
) -> list[dict[str, Any]]:
    items = []
    for driver, truck_lat, truck_lng in found:
        metres = distance_m((lat, lng), (truck_lat, truck_lng))
        if metres > radius_m or driver not in details:
            continue
        fix_time, extra = details[driver]
        items.append(
            {
                "driver_user_id": uuid.UUID(driver),
                "load_id": uuid.UUID(extra["load"]) if extra.get("load") else None,
                "fix_time": fix_time,
                "lat": extra.get("lat", truck_lat),
                "lng": extra.get("lng", truck_lng),
                "accuracy_m": extra.get("acc"),
                "speed_mps": extra.get("spd"),
                "heading_deg": extra.get("hdg"),
                "distance_mi": round(metres / METRES_PER_MILE, 2),
            }
        )
    items.sort(key=lambda item: item["distance_mi"])
    return items
