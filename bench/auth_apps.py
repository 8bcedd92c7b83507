"""App factories for the auth benchmark: the platform as built, and the replaced approach.

The replaced Node system loaded the user and then the organization from the
database on every authenticated request. ``create_db_lookup_app`` reproduces
that by swapping the principal dependency for one that does those two queries.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from sqlalchemy import select

from superior_one.accounts.models import Organization, User
from superior_one.app import create_app
from superior_one.auth.dependencies import _bearer_token, get_principal
from superior_one.auth.errors import AccountDeactivatedError, TokenRevokedError
from superior_one.auth.principal import Principal
from superior_one.auth.tokens import decode_access_token


def create_cached_app() -> FastAPI:
    return create_app()


async def _principal_from_database(request: Request) -> Principal:
    settings = request.app.state.settings
    claims = decode_access_token(settings, _bearer_token(request))
    async with request.app.state.sessionmaker() as session:
        user = (
            await session.execute(select(User).where(User.id == claims.user_id))
        ).scalar_one_or_none()
        if user is None:
            raise TokenRevokedError("unknown user")
        organization = (
            await session.execute(
                select(Organization).where(Organization.id == user.organization_id)
            )
        ).scalar_one()
    if not user.is_active or not organization.is_active:
        raise AccountDeactivatedError("deactivated")
    return Principal(
        user_id=uuid.UUID(str(user.id)),
        organization_id=organization.id,
        organization_type=organization.type,
        role=user.role,
        token_version=user.token_version,
        is_active=user.is_active,
        organization_active=organization.is_active,
    )


def create_db_lookup_app() -> FastAPI:
    app = create_app()
    app.dependency_overrides[get_principal] = _principal_from_database
    return app
