"""HTTP routes of the tracking domain: GPS ingest and the reads built on it.

The two ingest routes answer 202 once the fixes are durably buffered, with a
result per fix. They build their JSON with orjson directly: they are the
busiest routes of the platform.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBearer
from pydantic import Field

from superior_one.auth.dependencies import CurrentPrincipal
from superior_one.db import SessionDep
from superior_one.query_parameters import KnownQuery
from superior_one.schemas import RequestSchema
from superior_one.tracking import errors
from superior_one.tracking.geofence import StopKind
from superior_one.tracking.ingest import IngestResult, TrackingRuntime, ingest_fixes
from superior_one.tracking.models import FraudFlag
from superior_one.tracking.schemas import (
    CarrierFlagsOut,
    EtaOut,
    FraudFlagOut,
    GeofenceEventOut,
    IngestOut,
    NearbyTrucksOut,
    PingBatchIn,
    PositionsPageOut,
    TrackPageOut,
    TrackPointOut,
    TruckPositionOut,
)
from superior_one.tracking.service import TrackingService
from superior_one.tracking.validation import GpsFixIn

bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="Access token")
router = APIRouter(tags=["tracking"], dependencies=[Depends(bearer)])

DEFAULT_RESOLUTION_S = 60
MAX_TRACK_PAGE = 2000
MAX_POSITIONS_PAGE = 500
MAX_RADIUS_MI = 500.0


async def get_runtime(request: Request) -> TrackingRuntime:
    # Async on purpose: FastAPI runs a plain function dependency in a thread.
    runtime: TrackingRuntime = request.app.state.tracking
    return runtime


RuntimeDep = Annotated[TrackingRuntime, Depends(get_runtime)]


async def get_service(session: SessionDep, runtime: RuntimeDep) -> TrackingService:
    return TrackingService(session=session, runtime=runtime)


ServiceDep = Annotated[TrackingService, Depends(get_service)]


# --- ingest ---


def _results(result: IngestResult) -> list[dict[str, Any]]:
    results = []
    for verdict in result.verdicts:
        item: dict[str, Any] = {
            "index": verdict.index,
            "status": verdict.status,
            "reason": verdict.reason.value,
        }
        if verdict.detail is not None:
            item["detail"] = verdict.detail
        if verdict.fix is not None:
            item["fixTime"] = verdict.fix.fix_time
            item["clientFixId"] = verdict.fix.client_fix_id
        results.append(item)
    return results


def _accepted_response(result: IngestResult) -> Response:
    body = {
        "loadId": result.load_id,
        "accepted": result.count("accepted"),
        "duplicates": result.count("duplicate"),
        "rejected": result.count("rejected"),
        "bufferedIn": result.buffered_in,
        "results": _results(result),
    }
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


@router.post(
    "/loads/{load_id}/gps-ping",
    status_code=202,
    response_model=IngestOut,
    summary="Report one GPS fix of a load (current clients)",
    responses={422: {"description": "The fix was rejected; the body says why."}},
)
async def gps_ping(
    load_id: uuid.UUID,
    body: GpsFixIn,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
) -> Response:
    """Accepted (202) once the fix is buffered; a duplicate is accepted again and stored
    once. A rejected fix gets 422 with its reason code."""
    result = await ingest_fixes(runtime, principal, load_id, [body])
    verdict = result.verdicts[0]
    if verdict.status == "rejected":
        raise errors.FixRejectedError(
            f"The fix was rejected ({verdict.reason.value}): {verdict.detail}",
            reason=verdict.reason.value,
            results=_results(result),
        )
    return _accepted_response(result)


@router.post(
    "/tracking/pings",
    status_code=202,
    response_model=IngestOut,
    summary="Report up to 500 GPS fixes of a load at once (after a dead zone)",
)
async def gps_pings(
    body: PingBatchIn,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
) -> Response:
    """Each fix gets its own result; a rejected fix never fails the others."""
    result = await ingest_fixes(runtime, principal, body.load_id, body.fixes)
    return _accepted_response(result)


# --- one load ---


@router.get("/loads/{load_id}/track", response_model=TrackPageOut, summary="A load's GPS track")
async def load_track(
    load_id: uuid.UUID,
    principal: CurrentPrincipal,
    _query: KnownQuery,
    service: ServiceDep,
    resolution_s: Annotated[
        int,
        Query(
            alias="resolutionS",
            ge=0,
            le=3600,
            description="One fix per this many seconds (the first of each interval); 0: all.",
        ),
    ] = DEFAULT_RESOLUTION_S,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TRACK_PAGE)] = 500,
) -> TrackPageOut:
    page = await service.track(
        principal, load_id, resolution_s=resolution_s, cursor=cursor, limit=limit
    )
    return TrackPageOut(
        load_id=page.load_id,
        resolution_s=page.resolution_s,
        items=[TrackPointOut(**item) for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/loads/{load_id}/eta", response_model=EtaOut, summary="ETA to the next stop")
async def load_eta(load_id: uuid.UUID, principal: CurrentPrincipal, service: ServiceDep) -> EtaOut:
    """From the last fix, along the freeway graph's road distance, at an average speed."""
    eta = await service.eta(principal, load_id)
    return EtaOut.model_validate(eta)


@router.get("/loads/{load_id}/geofence-events", response_model=list[GeofenceEventOut])
async def load_geofence_events(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: ServiceDep
) -> list[GeofenceEventOut]:
    """Entries, exits, arrivals and departures at the load's stops, each with its fix."""
    return [
        GeofenceEventOut.model_validate(e)
        for e in await service.geofence_events(principal, load_id)
    ]


@router.get("/loads/{load_id}/fraud-flags", response_model=list[FraudFlagOut])
async def load_fraud_flags(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: ServiceDep
) -> list[FraudFlagOut]:
    """Double-brokering signals on the load, for its shipper."""
    return [_flag_out(f) for f in await service.load_flags(principal, load_id)]


class StopFenceIn(RequestSchema):
    vertices: list[tuple[float, float]] = Field(
        min_length=3, max_length=200, description="[lat, lng] pairs in ring order."
    )


@router.put("/loads/{load_id}/stops/{stop}/geofence", status_code=204)
async def set_stop_fence(
    load_id: uuid.UUID,
    stop: StopKind,
    body: StopFenceIn,
    principal: CurrentPrincipal,
    service: ServiceDep,
) -> Response:
    """Replace a stop's circular fence with a polygon (a quarry, a job site)."""
    await service.set_stop_polygon(principal, load_id, stop, body.vertices)
    return Response(status_code=204)


# --- a carrier's trucks ---


@router.get(
    "/tracking/positions", response_model=PositionsPageOut, summary="Latest positions of trucks"
)
async def truck_positions(
    principal: CurrentPrincipal,
    _query: KnownQuery,
    service: ServiceDep,
    carrier_id: Annotated[uuid.UUID | None, Query(alias="carrierId")] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POSITIONS_PAGE)] = 100,
) -> PositionsPageOut:
    """Return each of the carrier's trucks at its newest fix by fix time."""
    carrier, rows, next_cursor = await service.positions(
        principal, carrier_id, cursor=cursor, limit=limit
    )
    return PositionsPageOut(
        carrier_organization_id=carrier,
        items=[TruckPositionOut.model_validate(p) for p in rows],
        next_cursor=next_cursor,
    )


@router.get(
    "/tracking/trucks/nearby", response_model=NearbyTrucksOut, summary="Trucks near a point"
)
async def trucks_nearby(
    principal: CurrentPrincipal,
    _query: KnownQuery,
    service: ServiceDep,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lng: Annotated[float, Query(ge=-180, le=180)],
    radius_mi: Annotated[float, Query(alias="radiusMi", gt=0, le=MAX_RADIUS_MI)],
    carrier_id: Annotated[uuid.UUID | None, Query(alias="carrierId")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POSITIONS_PAGE)] = 50,
) -> NearbyTrucksOut:
    """Return the carrier's trucks within the radius, nearest first, up to ``limit``."""
    carrier, items, source = await service.nearby(
        principal, carrier_id, lat=lat, lng=lng, radius_mi=radius_mi, limit=limit
    )
    return NearbyTrucksOut(
        carrier_organization_id=carrier,
        lat=lat,
        lng=lng,
        radius_mi=radius_mi,
        items=[TruckPositionOut(**item) for item in items],
        source=source,
    )


@router.get("/tracking/carriers/{carrier_id}/fraud-flags", response_model=CarrierFlagsOut)
async def carrier_fraud_flags(
    carrier_id: uuid.UUID,
    principal: CurrentPrincipal,
    _query: KnownQuery,
    service: ServiceDep,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POSITIONS_PAGE)] = 50,
) -> CarrierFlagsOut:
    """Return a carrier's double-brokering signals, for shippers choosing whom to tender to."""
    totals, flags, next_cursor = await service.carrier_flags(
        principal, carrier_id, cursor=cursor, limit=limit
    )
    return CarrierFlagsOut(
        carrier_organization_id=carrier_id,
        totals=totals,
        items=[_flag_out(f) for f in flags],
        next_cursor=next_cursor,
    )


def _flag_out(flag: FraudFlag) -> FraudFlagOut:
    return FraudFlagOut.model_validate(flag)
