"""FastAPI dependencies: the authenticated principal and role checks.

Endpoints declare ``principal: CurrentPrincipal`` (or a role-restricted alias
from :func:`require_roles`); repositories take the principal and filter by its
organization.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from superior_one.accounts.models import Role
from superior_one.auth import errors
from superior_one.auth.principal import Principal, PrincipalCache
from superior_one.auth.tokens import AccessTokenVerifier


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise errors.TokenMissingError(
            "This endpoint needs an access token: send 'Authorization: Bearer <token>'."
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.TokenMalformedError(
            "The Authorization header must be 'Bearer <access token>'."
        )
    return token.strip()


async def get_principal(request: Request) -> Principal:
    verifier: AccessTokenVerifier = request.app.state.token_verifier
    cache: PrincipalCache = request.app.state.principal_cache

    claims = verifier.verify(_bearer_token(request))
    principal = await cache.get(claims.user_id)

    if principal is None or principal.organization_id != claims.organization_id:
        raise errors.TokenRevokedError("The token's user no longer exists. Log in again.")
    if not principal.is_active:
        raise errors.AccountDeactivatedError(
            "This account is deactivated. Ask your organization's administrator to reactivate it."
        )
    if not principal.organization_active:
        raise errors.OrganizationDeactivatedError(
            "Your organization is deactivated. Contact Superior One support."
        )
    if principal.token_version != claims.token_version:
        raise errors.TokenRevokedError(
            "This token was revoked (logout, role or status change). Log in again."
        )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Build a dependency that admits only principals holding one of ``roles``."""
    allowed = frozenset(roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise errors.RoleRequiredError(
                f"This action needs one of the roles {names}; your role is {principal.role}."
            )
        return principal

    return check


PlatformAdmin = Annotated[Principal, Depends(require_roles(Role.PLATFORM_ADMIN))]
OrganizationAdmin = Annotated[
    Principal, Depends(require_roles(Role.ORG_ADMIN, Role.PLATFORM_ADMIN))
]
