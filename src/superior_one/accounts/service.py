"""Organizations, invitations and user administration.

Every change that affects what a user may do (deactivation, reactivation, role
change, organization status) bumps the token version, so tokens issued before
the change stop working, and invalidates the principal caches after commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts import errors
from superior_one.accounts.models import Invitation, Organization, OrganizationType, Role, User
from superior_one.accounts.repository import AccountsRepository
from superior_one.accounts.schemas import (
    InvitationAccept,
    InvitationCreate,
    OrganizationCreate,
    OrganizationUpdate,
    UserUpdate,
)
from superior_one.auth.passwords import PasswordService
from superior_one.auth.principal import Principal, PrincipalCache
from superior_one.auth.tokens import hash_opaque_token, new_opaque_token
from superior_one.config import Settings

log = structlog.get_logger(__name__)

# Roles an organization admin may grant inside their own organization.
ORGANIZATION_ROLES = frozenset({Role.ORG_ADMIN, Role.DISPATCHER, Role.DRIVER})


@dataclass(slots=True)
class AccountsService:
    session: AsyncSession
    settings: Settings
    principal_cache: PrincipalCache

    @property
    def repository(self) -> AccountsRepository:
        return AccountsRepository(self.session)

    async def create_organization(self, data: OrganizationCreate) -> Organization:
        organization = Organization(name=data.name, type=data.type)
        self.session.add(organization)
        await self.session.flush()
        await self.session.refresh(organization)
        log.info("organization.created", organization_id=str(organization.id), type=data.type)
        return organization

    async def update_organization(
        self, organization_id: uuid.UUID, data: OrganizationUpdate
    ) -> Organization:
        organization = await self.repository.get_organization(organization_id)
        if organization is None:
            raise errors.OrganizationNotFoundError(f"Organization {organization_id} not found.")
        if data.is_verified is not None:
            organization.is_verified = data.is_verified
        if data.is_active is not None and data.is_active != organization.is_active:
            organization.is_active = data.is_active
            user_ids = await self.repository.bump_token_versions_in_organization(organization.id)
            self.principal_cache.invalidate_after_commit(self.session, user_ids)
            log.info(
                "organization.status_changed",
                organization_id=str(organization.id),
                is_active=data.is_active,
            )
        await self.session.flush()
        await self.session.refresh(organization)
        return organization

    async def invite(
        self, principal: Principal, organization_id: uuid.UUID, data: InvitationCreate
    ) -> tuple[Invitation, str]:
        organization = await self._organization_visible_to(principal, organization_id)
        allowed = ORGANIZATION_ROLES
        if organization.type is OrganizationType.PLATFORM:
            allowed = frozenset({Role.PLATFORM_ADMIN})
        if data.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise errors.RoleNotAssignableError(
                f"Role {data.role} cannot be granted in this organization; use one of {names}."
            )

        email = str(data.email).lower()
        # Accepting would fail on the users' unique email, so the inviter learns it now.
        if await self.repository.email_in_use(email):
            raise errors.EmailInUseError(
                f"{email} already has an account; a person can belong to one organization. "
                "Invite another address, or ask that user's administrator to move them."
            )
        token, token_hash = new_opaque_token()
        invitation = Invitation(
            organization_id=organization.id,
            email=email,
            full_name=data.full_name,
            role=data.role,
            token_hash=token_hash,
            invited_by_id=principal.user_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=self.settings.invitation_ttl_s),
        )
        self.session.add(invitation)
        await self.session.flush()
        log.info(
            "invitation.created",
            invitation_id=str(invitation.id),
            organization_id=str(organization.id),
            role=data.role,
        )
        return invitation, token

    async def accept_invitation(self, data: InvitationAccept, passwords: PasswordService) -> User:
        invitation = await self.repository.get_invitation_for_update(hash_opaque_token(data.token))
        now = datetime.now(UTC)
        if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= now:
            raise errors.InvitationInvalidError(
                "The invitation token is unknown, already used or expired. Ask your "
                "administrator for a new invitation."
            )
        invitation.accepted_at = now
        user = User(
            organization_id=invitation.organization_id,
            email=invitation.email,
            full_name=data.full_name or invitation.full_name,
            password_hash=passwords.hash(data.password),
            role=invitation.role,
        )
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user)
        log.info("user.created", user_id=str(user.id), organization_id=str(user.organization_id))
        return user

    async def update_user(self, principal: Principal, user_id: uuid.UUID, data: UserUpdate) -> User:
        user = await self.repository.get_user_visible_to(principal, user_id, for_update=True)
        if user is None:
            raise errors.UserNotFoundError(f"User {user_id} not found.")
        if user.id == principal.user_id and (data.is_active is False or data.role is not None):
            raise errors.SelfLockoutError(
                "You cannot deactivate yourself or change your own role; ask another administrator."
            )

        changed = False
        if data.role is not None and data.role != user.role:
            if user.role is Role.PLATFORM_ADMIN or data.role is Role.PLATFORM_ADMIN:
                raise errors.RoleNotAssignableError(
                    "The platform administrator role is granted only with "
                    "'superior-one create-admin'."
                )
            log.info(
                "user.role_changed", user_id=str(user.id), from_role=user.role, to_role=data.role
            )
            user.role = data.role
            changed = True
        if data.is_active is not None and data.is_active != user.is_active:
            user.is_active = data.is_active
            log.info("user.status_changed", user_id=str(user.id), is_active=data.is_active)
            changed = True

        if changed:
            # Reactivation also bumps the version: tokens from before the
            # deactivation must not come back to life.
            user.token_version += 1
            self.principal_cache.invalidate_after_commit(self.session, [user.id])
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def _organization_visible_to(
        self, principal: Principal, organization_id: uuid.UUID
    ) -> Organization:
        if not principal.is_platform_admin and principal.organization_id != organization_id:
            raise errors.OrganizationNotFoundError(f"Organization {organization_id} not found.")
        organization = await self.repository.get_organization(organization_id)
        if organization is None:
            raise errors.OrganizationNotFoundError(f"Organization {organization_id} not found.")
        return organization
