from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from superior_one.accounts.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationOut,
    OrganizationCreate,
    OrganizationOut,
    OrganizationUpdate,
    UserOut,
    UserUpdate,
)
from superior_one.accounts.service import AccountsService
from superior_one.auth.dependencies import OrganizationAdmin, PlatformAdmin
from superior_one.db import SessionDep

router = APIRouter(tags=["accounts"])


def get_accounts_service(request: Request, session: SessionDep) -> AccountsService:
    state = request.app.state
    return AccountsService(
        session=session, settings=state.settings, principal_cache=state.principal_cache
    )


AccountsServiceDep = Annotated[AccountsService, Depends(get_accounts_service)]


@router.post("/admin/organizations", response_model=OrganizationOut, status_code=201)
async def create_organization(
    body: OrganizationCreate, _admin: PlatformAdmin, service: AccountsServiceDep
) -> OrganizationOut:
    return OrganizationOut.model_validate(await service.create_organization(body))


@router.patch("/admin/organizations/{organization_id}", response_model=OrganizationOut)
async def update_organization(
    organization_id: uuid.UUID,
    body: OrganizationUpdate,
    _admin: PlatformAdmin,
    service: AccountsServiceDep,
) -> OrganizationOut:
    return OrganizationOut.model_validate(await service.update_organization(organization_id, body))


@router.post(
    "/organizations/{organization_id}/invitations",
    response_model=InvitationOut,
    status_code=201,
)
async def invite_user(
    organization_id: uuid.UUID,
    body: InvitationCreate,
    principal: OrganizationAdmin,
    service: AccountsServiceDep,
) -> InvitationOut:
    invitation, token = await service.invite(principal, organization_id, body)
    return InvitationOut(
        id=invitation.id,
        organization_id=invitation.organization_id,
        email=invitation.email,
        full_name=invitation.full_name or None,
        role=invitation.role,
        expires_at=invitation.expires_at,
        token=token,
    )


@router.post("/auth/accept-invitation", response_model=UserOut, status_code=201)
async def accept_invitation(
    body: InvitationAccept, request: Request, service: AccountsServiceDep
) -> UserOut:
    user = await service.accept_invitation(body, request.app.state.passwords)
    return UserOut.model_validate(user)


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    principal: OrganizationAdmin,
    service: AccountsServiceDep,
) -> UserOut:
    return UserOut.model_validate(await service.update_user(principal, user_id, body))
