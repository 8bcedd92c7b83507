"""Plain async helpers that create rows for tests, committed like real requests."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.passwords import PasswordService
from superior_one.auth.tokens import issue_access_token
from superior_one.config import Settings
from superior_one.db import unit_of_work

DEFAULT_PASSWORD = "correct horse battery staple"


async def create_organization(
    sessionmaker: async_sessionmaker[AsyncSession],
    type: OrganizationType = OrganizationType.SHIPPER,
    *,
    name: str | None = None,
    is_active: bool = True,
    is_verified: bool = True,
) -> Organization:
    async with unit_of_work(sessionmaker) as session:
        organization = Organization(
            name=name or f"{type.value.title()} {uuid.uuid4().hex[:6]}",
            type=type,
            is_active=is_active,
            is_verified=is_verified,
        )
        session.add(organization)
    return organization


async def create_user(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    organization: Organization,
    role: Role = Role.DISPATCHER,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    is_active: bool = True,
) -> User:
    async with unit_of_work(sessionmaker) as session:
        user = User(
            organization_id=organization.id,
            email=(email or f"user-{uuid.uuid4().hex[:10]}@example.com").lower(),
            full_name="Test User",
            password_hash=PasswordService(settings).hash(password),
            role=role,
            is_active=is_active,
        )
        session.add(user)
    return user


def access_token(settings: Settings, user: User) -> str:
    return issue_access_token(
        settings,
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role.value,
        token_version=user.token_version or 1,
    )


def auth_headers(settings: Settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(settings, user)}"}
