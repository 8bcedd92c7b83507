"""Create the platform organization and its administrators outside the API."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.passwords import PasswordService
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.resources import open_resources

PLATFORM_ORGANIZATION_NAME = "Superior One Operations"


async def create_platform_admin(settings: Settings, email: str, password: str) -> uuid.UUID:
    """Create or update the platform admin ``email``; running it twice is harmless."""
    email = email.strip().lower()
    passwords = PasswordService(settings)
    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        organization = (
            await session.execute(
                select(Organization).where(Organization.type == OrganizationType.PLATFORM)
            )
        ).scalar_one_or_none()
        if organization is None:
            organization = Organization(
                name=PLATFORM_ORGANIZATION_NAME,
                type=OrganizationType.PLATFORM,
                is_verified=True,
            )
            session.add(organization)
            await session.flush()

        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
        if user is None:
            user = User(
                organization_id=organization.id,
                email=email,
                full_name="Platform administrator",
                password_hash=passwords.hash(password),
                role=Role.PLATFORM_ADMIN,
            )
            session.add(user)
        else:
            user.password_hash = passwords.hash(password)
            user.token_version += 1
        await session.flush()
        return user.id
