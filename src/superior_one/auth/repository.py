"""Queries for users by email and for refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts.models import Organization, User
from superior_one.auth.models import RefreshToken


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_user_with_organization(self, email: str) -> tuple[User, Organization] | None:
        return await self._user_with_organization(User.email == email)

    async def get_user(self, user_id: uuid.UUID) -> tuple[User, Organization] | None:
        return await self._user_with_organization(User.id == user_id)

    async def _user_with_organization(
        self, condition: ColumnElement[bool]
    ) -> tuple[User, Organization] | None:
        row = (
            await self.session.execute(
                select(User, Organization)
                .join(Organization, Organization.id == User.organization_id)
                .where(condition)
            )
        ).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def get_refresh_token_for_update(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )
        return result.scalar_one_or_none()

    async def revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
