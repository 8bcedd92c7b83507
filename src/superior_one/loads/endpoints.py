"""HTTP routes of the loads domain: the board, shippers' and carriers' actions.

Route handlers parse, authorize and call one service function. The board
returns its JSON bytes as built (or cached) by the service, so a cache hit
costs no serialization.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBearer

from superior_one.auth.dependencies import CurrentPrincipal
from superior_one.config import Settings
from superior_one.db import SessionDep
from superior_one.loads.board import BoardSearch, BoardSort
from superior_one.loads.models import HaulType, Load, LoadInterest, LoadStatus, LoadType
from superior_one.loads.schemas import (
    MAX_MILES,
    MAX_RATE,
    AssignIn,
    BoardPageOut,
    BoardQuery,
    CancelIn,
    EquipmentMatchOut,
    EquipmentRecommendationOut,
    EquipmentTypeOut,
    InterestIn,
    InterestOut,
    LoadCreate,
    LoadEventOut,
    LoadOut,
    LoadPageOut,
    LoadUpdate,
    ReleaseIn,
    StateCode,
    StopOut,
    amount_to_cents,
)
from superior_one.loads.service import (
    BoardService,
    CarrierEligibility,
    LoadService,
    LoadsRuntime,
    allow_all_carriers,
    no_transition_check,
)
from superior_one.payments.money import format_cents
from superior_one.query_parameters import KnownQuery, declared_query_parameters

# Declares the bearer scheme in OpenAPI so the docs page offers "Authorize" and sends
# the token; authentication itself is CurrentPrincipal's.
bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="Access token")
router = APIRouter(tags=["loads"], dependencies=[Depends(bearer)])


# Dependencies are coroutines: FastAPI runs a plain function in a thread pool,
# and that hand-off cost more than the board's cache hit itself.
async def get_runtime(request: Request) -> LoadsRuntime:
    runtime: LoadsRuntime = request.app.state.loads
    return runtime


async def get_carrier_eligibility(request: Request) -> CarrierEligibility:
    # Set by the carrier vetting domain at start-up; see allow_all_carriers.
    check: CarrierEligibility = getattr(
        request.app.state, "carrier_eligibility", allow_all_carriers
    )
    return check


async def get_load_service(
    request: Request,
    session: SessionDep,
    runtime: Annotated[LoadsRuntime, Depends(get_runtime)],
    eligibility: Annotated[CarrierEligibility, Depends(get_carrier_eligibility)],
) -> LoadService:
    return LoadService(
        session=session,
        settings=request.app.state.settings,
        runtime=runtime,
        eligibility=eligibility,
        # Set by the tracking domain (double-brokering check); see ManualTransitionCheck.
        after_manual_transition=getattr(
            request.app.state, "load_transition_check", no_transition_check
        ),
    )


LoadServiceDep = Annotated[LoadService, Depends(get_load_service)]


# --- board ---


async def board_search(
    request: Request,
    runtime: Annotated[LoadsRuntime, Depends(get_runtime)],
    session: SessionDep,
    origin_state: Annotated[
        StateCode | None,
        Query(
            alias="originState",
            description="Pickup state: USPS code of a state, DC or territory, any case.",
        ),
    ] = None,
    destination_state: Annotated[
        StateCode | None,
        Query(alias="destinationState", description="Delivery state, like originState."),
    ] = None,
    equipment_type: Annotated[
        list[str] | None,
        Query(
            alias="equipmentType",
            description="A code of GET /equipment-types. Repeat or comma-separate for several.",
        ),
    ] = None,
    haul_type: Annotated[HaulType | None, Query(alias="haulType")] = None,
    min_rate: Annotated[
        Decimal | None,
        Query(
            alias="minRate",
            gt=0,
            le=MAX_RATE,
            description="Minimum total pay, USD (at most 10000000.00).",
        ),
    ] = None,
    min_rate_per_mile: Annotated[
        Decimal | None,
        Query(
            alias="minRatePerMile",
            gt=0,
            le=MAX_RATE,
            description="Minimum USD per loaded mile (at most 10000000.00).",
        ),
    ] = None,
    pickup_from: Annotated[
        datetime | None, Query(alias="pickupFrom", description="ISO 8601 with offset.")
    ] = None,
    pickup_to: Annotated[
        datetime | None,
        Query(alias="pickupTo", description="ISO 8601 with offset, not before pickupFrom."),
    ] = None,
    commodity: Annotated[
        str | None, Query(min_length=3, max_length=100, description="Text in the commodity.")
    ] = None,
    origin_lat: Annotated[float | None, Query(alias="originLat", ge=-90, le=90)] = None,
    origin_lng: Annotated[float | None, Query(alias="originLng", ge=-180, le=180)] = None,
    origin_radius_mi: Annotated[
        float | None,
        Query(
            alias="originRadiusMi",
            gt=0,
            description="Deadhead radius, statute miles (at most 500); needs originLat and "
            "originLng.",
        ),
    ] = None,
    destination_lat: Annotated[float | None, Query(alias="destinationLat", ge=-90, le=90)] = None,
    destination_lng: Annotated[float | None, Query(alias="destinationLng", ge=-180, le=180)] = None,
    destination_radius_mi: Annotated[
        float | None,
        Query(
            alias="destinationRadiusMi",
            gt=0,
            description="Statute miles (at most 500); needs destinationLat and destinationLng.",
        ),
    ] = None,
    sort: Annotated[BoardSort, Query()] = BoardSort.PICKUP_DATE,
    limit: Annotated[int | None, Query(ge=1, description="Page size (maximum 100).")] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="The nextCursor of the same search's previous page."),
    ] = None,
    # Parameters of the replaced board, kept for existing clients.
    state: Annotated[
        StateCode | None,
        Query(
            deprecated=True,
            description="= originState; if both are sent, their values must agree.",
        ),
    ] = None,
    max_distance: Annotated[
        Decimal | None,
        Query(
            alias="maxDistance",
            gt=0,
            le=MAX_MILES,
            deprecated=True,
            description="Maximum loaded miles (at most 5000).",
        ),
    ] = None,
    page: Annotated[
        int | None,
        Query(
            ge=1, le=10_000, deprecated=True, description="1-based page number; not with cursor."
        ),
    ] = None,
    origin_lat_legacy: Annotated[
        float | None,
        Query(alias="origin_lat", ge=-90, le=90, deprecated=True, description="= originLat."),
    ] = None,
    origin_lng_legacy: Annotated[
        float | None,
        Query(alias="origin_lng", ge=-180, le=180, deprecated=True, description="= originLng."),
    ] = None,
    radius_mi_legacy: Annotated[
        float | None,
        Query(alias="radius_mi", gt=0, deprecated=True, description="= originRadiusMi."),
    ] = None,
) -> BoardSearch:
    """Parse the board's query parameters; :class:`BoardQuery` applies the rules (422)."""
    query = BoardQuery(
        origin_state=origin_state,
        destination_state=destination_state,
        equipment_type=equipment_type,
        haul_type=haul_type,
        min_rate=min_rate,
        min_rate_per_mile=min_rate_per_mile,
        pickup_from=pickup_from,
        pickup_to=pickup_to,
        commodity=commodity,
        origin_lat=origin_lat,
        origin_lng=origin_lng,
        origin_radius_mi=origin_radius_mi,
        destination_lat=destination_lat,
        destination_lng=destination_lng,
        destination_radius_mi=destination_radius_mi,
        sort=sort,
        limit=limit,
        cursor=cursor,
        state=state,
        max_distance=max_distance,
        page=page,
        origin_lat_legacy=origin_lat_legacy,
        origin_lng_legacy=origin_lng_legacy,
        radius_mi_legacy=radius_mi_legacy,
    )
    # The catalog is the process's cached copy: a database read only when it expires.
    codes = (await runtime.catalog.get(session)).types if equipment_type is not None else ()
    settings: Settings = request.app.state.settings
    return query.to_search(request.query_params.multi_items(), BOARD_PARAMETERS, settings, codes)


# Read from board_search's own declarations, so a parameter added there is accepted.
BOARD_PARAMETERS = declared_query_parameters(board_search)


BoardSearchDep = Annotated[BoardSearch, Depends(board_search)]


@router.get(
    "/loads",
    response_model=BoardPageOut,
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
    summary="Search the load board",
)
async def search_board(
    # Before the search: a caller without a token gets 401, not the board's 422s.
    _principal: CurrentPrincipal,
    search: BoardSearchDep,
    session: SessionDep,
    request: Request,
    runtime: Annotated[LoadsRuntime, Depends(get_runtime)],
) -> Response:
    """Posted loads matching the filters, in a stable order, one keyset page at a time.

    Distances (radius filters, ``originDistanceMi``, ``sort=distance``) are WGS84
    geodesic statute miles computed by PostGIS on geography points.

    A 422 names each parameter that is unknown, sent twice with different values
    (only ``equipmentType`` takes several), or sent under both its deprecated and
    its current name with values that disagree.
    """
    service = BoardService(
        session=session, settings=request.app.state.settings, cache=runtime.board_cache
    )
    return Response(await service.search(search), media_type="application/json")


# --- reference data ---


@router.get("/equipment-types", response_model=list[EquipmentTypeOut])
async def list_equipment_types(
    _principal: CurrentPrincipal, service: LoadServiceDep
) -> list[EquipmentTypeOut]:
    catalog = await service.catalog()
    return [EquipmentTypeOut.model_validate(t) for t in catalog.types.values()]


@router.get("/equipment-types/recommendations", response_model=EquipmentMatchOut)
async def recommend_equipment(
    _principal: CurrentPrincipal,
    _query: KnownQuery,
    service: LoadServiceDep,
    commodity: Annotated[str, Query(min_length=2, max_length=200)],
    load_type: Annotated[LoadType, Query(alias="loadType")],
    haul_type: Annotated[HaulType, Query(alias="haulType")],
    weight_lbs: Annotated[int, Query(alias="weightLbs", gt=0, le=200_000)],
) -> EquipmentMatchOut:
    """Equipment for a load, OPTIMAL first then ACCEPTABLE, each with its reason."""
    catalog = await service.catalog()
    recommendations = catalog.recommend(commodity, load_type, haul_type, weight_lbs)
    return EquipmentMatchOut(
        commodity=commodity,
        load_type=load_type,
        haul_type=haul_type,
        weight_lbs=weight_lbs,
        recommendations=[
            EquipmentRecommendationOut(
                equipment_type=r.equipment.code, name=r.equipment.name, tier=r.tier, reason=r.reason
            )
            for r in recommendations
        ],
    )


# --- loads ---


@router.post("/loads", response_model=LoadOut, status_code=201, summary="Create a load")
async def create_load(
    body: LoadCreate, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    return load_out(await service.create(principal, body))


@router.get("/loads/mine", response_model=LoadPageOut, summary="My organization's loads")
async def list_my_loads(
    principal: CurrentPrincipal,
    _query: KnownQuery,
    service: LoadServiceDep,
    request: Request,
    status: Annotated[list[LoadStatus] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> LoadPageOut:
    """Loads the caller's organization posted (shippers) or was assigned (carriers)."""
    loads, next_cursor = await service.list_mine(
        principal, statuses=status or [], cursor=cursor, limit=limit
    )
    return LoadPageOut(items=[load_out(load) for load in loads], next_cursor=next_cursor)


@router.get("/loads/{load_id}", response_model=LoadOut)
async def get_load(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    return load_out(await service.get(principal, load_id))


@router.patch("/loads/{load_id}", response_model=LoadOut)
async def update_load(
    load_id: uuid.UUID, body: LoadUpdate, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    return load_out(await service.update(principal, load_id, body))


@router.post("/loads/{load_id}/post", response_model=LoadOut)
async def post_load(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    return load_out(await service.post(principal, load_id))


@router.post("/loads/{load_id}/cancel", response_model=LoadOut)
async def cancel_load(
    load_id: uuid.UUID, body: CancelIn, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    return load_out(await service.cancel(principal, load_id, body.reason))


@router.post("/loads/{load_id}/complete", response_model=LoadOut)
async def complete_load(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    """The shipper confirms a DELIVERED load: it becomes COMPLETED."""
    return load_out(await service.complete(principal, load_id))


@router.get("/loads/{load_id}/interests", response_model=list[InterestOut])
async def list_interests(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: LoadServiceDep
) -> list[InterestOut]:
    return [interest_out(i, name) for i, name in await service.interests(principal, load_id)]


@router.post("/loads/{load_id}/assign", response_model=LoadOut)
async def assign_load(
    load_id: uuid.UUID, body: AssignIn, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    load = await service.assign(
        principal,
        load_id,
        body.carrier_organization_id,
        accept_counter_rate=body.accept_counter_rate,
    )
    return load_out(load)


@router.put("/loads/{load_id}/interest", response_model=InterestOut)
async def express_interest(
    load_id: uuid.UUID, body: InterestIn, principal: CurrentPrincipal, service: LoadServiceDep
) -> InterestOut:
    """Express (or update) the caller's carrier interest, with an optional counter rate."""
    counter = amount_to_cents(body.counter_rate) if body.counter_rate is not None else None
    interest = await service.express_interest(
        principal, load_id, counter_rate_cents=counter, note=body.note
    )
    return interest_out(interest, None)


@router.delete("/loads/{load_id}/interest", status_code=204)
async def withdraw_interest(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: LoadServiceDep
) -> Response:
    await service.withdraw_interest(principal, load_id)
    return Response(status_code=204)


@router.post("/loads/{load_id}/release", response_model=LoadOut)
async def release_driver(
    load_id: uuid.UUID, body: ReleaseIn, principal: CurrentPrincipal, service: LoadServiceDep
) -> LoadOut:
    """The assigned carrier dispatches one of its drivers: the load becomes RELEASED."""
    return load_out(await service.release(principal, load_id, body.driver_user_id))


@router.get("/loads/{load_id}/events", response_model=list[LoadEventOut])
async def list_load_events(
    load_id: uuid.UUID, principal: CurrentPrincipal, service: LoadServiceDep
) -> list[LoadEventOut]:
    return [LoadEventOut.model_validate(e) for e in await service.events(principal, load_id)]


# --- shaping ---


def _stop_out(load: Load, prefix: str) -> StopOut:
    zone = getattr(load, f"{prefix}_time_zone")
    local = ZoneInfo(zone)
    return StopOut(
        street=getattr(load, f"{prefix}_street"),
        city=getattr(load, f"{prefix}_city"),
        state=getattr(load, f"{prefix}_state"),
        zip=getattr(load, f"{prefix}_zip"),
        time_zone=zone,
        lat=getattr(load, f"{prefix}_lat"),
        lng=getattr(load, f"{prefix}_lng"),
        window_start=getattr(load, f"{prefix}_window_start").astimezone(local),
        window_end=getattr(load, f"{prefix}_window_end").astimezone(local),
        geofence_radius_m=getattr(load, f"{prefix}_geofence_radius_m"),
    )


def load_out(load: Load) -> LoadOut:
    return LoadOut(
        id=load.id,
        reference=load.reference,
        status=load.status,
        shipper_organization_id=load.shipper_organization_id,
        pickup=_stop_out(load, "pickup"),
        delivery=_stop_out(load, "delivery"),
        equipment_type=load.equipment_type,
        haul_type=load.haul_type,
        load_type=load.load_type,
        commodity=load.commodity,
        weight_lbs=load.weight_lbs,
        rate=format_cents(load.rate_cents),
        rate_mode=load.rate_mode,
        units=None if load.units is None else str(load.units),
        miles=float(load.miles),
        gross_revenue=format_cents(load.gross_revenue_cents),
        rate_per_mile=format_cents(load.rate_per_mile_cents),
        assigned_carrier_organization_id=load.assigned_carrier_organization_id,
        assigned_driver_user_id=load.assigned_driver_user_id,
        posted_at=load.posted_at,
        assigned_at=load.assigned_at,
        created_at=load.created_at,
        updated_at=load.updated_at,
    )


def interest_out(interest: LoadInterest, carrier_name: str | None) -> InterestOut:
    return InterestOut(
        id=interest.id,
        load_id=interest.load_id,
        carrier_organization_id=interest.carrier_organization_id,
        carrier_name=carrier_name,
        status=interest.status,
        counter_rate=(
            None
            if interest.counter_rate_cents is None
            else format_cents(interest.counter_rate_cents)
        ),
        note=interest.note,
        created_at=interest.created_at,
        updated_at=interest.updated_at,
    )
