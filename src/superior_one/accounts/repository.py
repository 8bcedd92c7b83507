"""Queries for organizations, users and invitations, scoped by the caller."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts.models import Invitation, Organization, User
from superior_one.auth.principal import Principal


class AccountsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_organization(self, organization_id: uuid.UUID) -> Organization | None:
        return await self.session.get(Organization, organization_id)

    async def get_user_visible_to(
        self, principal: Principal, user_id: uuid.UUID, *, for_update: bool = False
    ) -> User | None:
        """Return the user if ``principal`` may see it: same organization or platform admin."""
        query = select(User).where(User.id == user_id)
        if not principal.is_platform_admin:
            query = query.where(User.organization_id == principal.organization_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def bump_token_versions_in_organization(
        self, organization_id: uuid.UUID
    ) -> list[uuid.UUID]:
        result = await self.session.execute(
            update(User)
            .where(User.organization_id == organization_id)
            .values(token_version=User.token_version + 1)
            .returning(User.id)
        )
        return list(result.scalars())

    async def email_in_use(self, email: str) -> bool:
        found = await self.session.scalar(select(User.id).where(User.email == email).limit(1))
        return found is not None

    async def get_invitation_for_update(self, token_hash: str) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )
        return result.scalar_one_or_none()
