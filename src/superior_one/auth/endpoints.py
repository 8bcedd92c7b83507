from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from superior_one.auth.dependencies import CurrentPrincipal
from superior_one.auth.errors import TokenRevokedError
from superior_one.auth.repository import AuthRepository
from superior_one.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    MeResponse,
    PrincipalOut,
    RefreshRequest,
    TokenPair,
)
from superior_one.auth.service import AuthService, IssuedTokens
from superior_one.db import SessionDep

router = APIRouter(tags=["auth"])


def get_auth_service(request: Request, session: SessionDep) -> AuthService:
    state = request.app.state
    return AuthService(
        session=session,
        settings=state.settings,
        passwords=state.passwords,
        principal_cache=state.principal_cache,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


def _token_pair(tokens: IssuedTokens) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post("/auth/login", response_model=TokenPair)
async def login(body: LoginRequest, request: Request, service: AuthServiceDep) -> TokenPair:
    address = request.client.host if request.client else "unknown"
    tokens = await service.login(
        str(body.email), body.password, address, request.app.state.login_limiter
    )
    return _token_pair(tokens)


@router.post("/auth/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, service: AuthServiceDep) -> TokenPair:
    return _token_pair(await service.refresh(body.refresh_token))


@router.post("/auth/logout", status_code=204)
async def logout(
    body: LogoutRequest, principal: CurrentPrincipal, service: AuthServiceDep
) -> Response:
    await service.logout(principal.user_id, body.refresh_token, body.all_sessions)
    return Response(status_code=204)


@router.get("/me", response_model=MeResponse)
async def me(principal: CurrentPrincipal, session: SessionDep) -> MeResponse:
    found = await AuthRepository(session).get_user(principal.user_id)
    if found is None:
        raise TokenRevokedError("The token's user no longer exists. Log in again.")
    user, organization = found
    return MeResponse(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        organization_id=organization.id,
        organization_name=organization.name,
        organization_type=organization.type,
        organization_verified=organization.is_verified,
    )


@router.get("/auth/whoami", response_model=PrincipalOut)
async def whoami(principal: CurrentPrincipal) -> PrincipalOut:
    """Return the caller's identity from the token and the principal cache, no query."""
    return PrincipalOut(
        user_id=principal.user_id,
        organization_id=principal.organization_id,
        organization_type=principal.organization_type,
        role=principal.role,
    )
