from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from superior_one.auth.dependencies import CurrentPrincipal
from superior_one.carriers.models import Carrier
from superior_one.carriers.schemas import (
    CarrierOut,
    CarrierRegister,
    DecisionOut,
    PolicyCreate,
    PolicyOut,
    VerificationRequested,
)
from superior_one.carriers.service import CarriersService
from superior_one.db import SessionDep
from superior_one.query_parameters import KnownQuery

router = APIRouter(tags=["carriers"])


def get_carriers_service(request: Request, session: SessionDep) -> CarriersService:
    return CarriersService(session, request.app.state.settings)


CarriersServiceDep = Annotated[CarriersService, Depends(get_carriers_service)]


def _carrier_out(carrier: Carrier) -> CarrierOut:
    out = CarrierOut.model_validate(carrier)
    if carrier.last_verified_at is not None:
        out.verification_age_s = (datetime.now(UTC) - carrier.last_verified_at).total_seconds()
    return out


@router.post("/carriers", response_model=CarrierOut, status_code=201)
async def register_carrier(
    body: CarrierRegister, principal: CurrentPrincipal, service: CarriersServiceDep
) -> CarrierOut:
    """Register your organization's USDOT number; FMCSA verification follows in the background."""
    return _carrier_out(await service.register(principal, body))


@router.get("/carriers/me", response_model=CarrierOut)
async def own_carrier(principal: CurrentPrincipal, service: CarriersServiceDep) -> CarrierOut:
    return _carrier_out(await service.own_carrier(principal))


@router.post("/carriers/me/verification", response_model=VerificationRequested, status_code=202)
async def request_verification(
    principal: CurrentPrincipal, service: CarriersServiceDep
) -> VerificationRequested:
    carrier, job_id = await service.request_verification(principal)
    return VerificationRequested(carrier_id=carrier.id, job_id=job_id)


@router.post("/carriers/me/insurance-policies", response_model=PolicyOut, status_code=201)
async def add_policy(
    body: PolicyCreate, principal: CurrentPrincipal, service: CarriersServiceDep
) -> PolicyOut:
    return PolicyOut.model_validate(await service.add_policy(principal, body))


@router.get("/carriers/{carrier_id}", response_model=CarrierOut)
async def get_carrier(
    carrier_id: uuid.UUID, principal: CurrentPrincipal, service: CarriersServiceDep
) -> CarrierOut:
    return _carrier_out(await service.visible_carrier(principal, carrier_id))


@router.get("/carriers/{carrier_id}/insurance-policies", response_model=list[PolicyOut])
async def list_policies(
    carrier_id: uuid.UUID, principal: CurrentPrincipal, service: CarriersServiceDep
) -> list[PolicyOut]:
    # A carrier has a handful of policies, so the list is bounded without a cursor.
    return [PolicyOut.model_validate(p) for p in await service.policies(principal, carrier_id)]


@router.get("/carriers/{carrier_id}/eligibility", response_model=DecisionOut)
async def eligibility(
    carrier_id: uuid.UUID,
    principal: CurrentPrincipal,
    _query: KnownQuery,
    service: CarriersServiceDep,
    pickup_at: Annotated[
        AwareDatetime, Query(alias="pickupAt", description="Pickup time with its UTC offset.")
    ],
    time_zone: Annotated[
        str, Query(alias="timeZone", description="IANA time zone of the pickup facility.")
    ],
    min_coverage_cents: Annotated[
        int | None,
        Query(alias="minCoverageCents", gt=0, description="The load's minimum liability cover."),
    ] = None,
) -> DecisionOut:
    """Decide whether the carrier may take a load picked up at ``pickupAt``, with every reason."""
    decision = await service.decision(
        principal,
        carrier_id,
        pickup_at=pickup_at,
        time_zone=time_zone,
        min_coverage_cents=min_coverage_cents,
    )
    return DecisionOut.from_decision(decision)
