"""Login, token refresh with rotation, and logout."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.accounts.models import Organization, User
from superior_one.auth import errors
from superior_one.auth.models import RefreshToken
from superior_one.auth.passwords import PasswordService
from superior_one.auth.principal import PrincipalCache
from superior_one.auth.rate_limit import LoginRateLimiter
from superior_one.auth.repository import AuthRepository
from superior_one.auth.tokens import hash_opaque_token, issue_access_token, new_opaque_token
from superior_one.config import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(slots=True)
class AuthService:
    session: AsyncSession
    settings: Settings
    passwords: PasswordService
    principal_cache: PrincipalCache

    @property
    def repository(self) -> AuthRepository:
        return AuthRepository(self.session)

    async def login(
        self, email: str, password: str, address: str, limiter: LoginRateLimiter
    ) -> IssuedTokens:
        email = email.strip().lower()
        await limiter.check(email, address)

        found = await self.repository.get_user_with_organization(email)
        # One argon2 verification on every path, so an unknown email and a
        # wrong password take similar time and return the same error.
        password_ok = self.passwords.verify(found[0].password_hash if found else None, password)
        if found is None or not password_ok:
            await limiter.record_failure(email, address)
            log.info("auth.login_failed", reason="invalid_credentials")
            raise errors.InvalidCredentialsError(
                "The email or password is incorrect. Check both and try again."
            )

        user, organization = found
        self._ensure_can_sign_in(user, organization)
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = self.passwords.hash(password)
        now = datetime.now(UTC)
        user.last_login_at = now
        tokens = await self._issue(user, family_id=uuid.uuid4(), now=now)
        log.info("auth.login_succeeded", user_id=str(user.id), organization_id=str(organization.id))
        return tokens

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        now = datetime.now(UTC)
        stored = await self.repository.get_refresh_token_for_update(
            hash_opaque_token(refresh_token)
        )
        if stored is None:
            raise errors.RefreshTokenInvalidError(
                "The refresh token is not recognized. Log in again."
            )
        if stored.used_at is not None or stored.revoked_at is not None:
            # A rotated or revoked token presented again means it leaked, or
            # the family was logged out: revoke every token descended from it.
            await self.repository.revoke_family(stored.family_id, now)
            log.warning(
                "auth.refresh_token_reused",
                user_id=str(stored.user_id),
                family_id=str(stored.family_id),
            )
            raise errors.RefreshTokenReusedError(
                "This refresh token was already used or revoked; all sessions from the "
                "same login are now revoked. Log in again."
            )
        if stored.expires_at <= now:
            raise errors.RefreshTokenExpiredError("The refresh token has expired. Log in again.")

        found = await self.repository.get_user(stored.user_id)
        if found is None:
            raise errors.RefreshTokenInvalidError("The refresh token's user no longer exists.")
        user, organization = found
        self._ensure_can_sign_in(user, organization)
        if stored.token_version != user.token_version:
            raise errors.TokenRevokedError(
                "This session was revoked (logout, role or status change). Log in again."
            )

        stored.used_at = now
        return await self._issue(user, family_id=stored.family_id, now=now)

    async def logout(
        self, user_id: uuid.UUID, refresh_token: str | None, all_sessions: bool
    ) -> None:
        now = datetime.now(UTC)
        if all_sessions:
            found = await self.repository.get_user(user_id)
            if found is None:
                return
            user, _ = found
            user.token_version += 1
            await self.repository.revoke_all_for_user(user_id, now)
            self.principal_cache.invalidate_after_commit(self.session, [user_id])
            log.info("auth.logged_out_everywhere", user_id=str(user_id))
            return

        if refresh_token:
            stored = await self.repository.get_refresh_token_for_update(
                hash_opaque_token(refresh_token)
            )
            # Another user's token is treated as unknown: nothing is revealed.
            if stored is not None and stored.user_id == user_id:
                await self.repository.revoke_family(stored.family_id, now)
        log.info("auth.logged_out", user_id=str(user_id))

    def _ensure_can_sign_in(self, user: User, organization: Organization) -> None:
        if not user.is_active:
            raise errors.AccountDeactivatedError(
                "This account is deactivated. Ask your organization's administrator to "
                "reactivate it."
            )
        if not organization.is_active:
            raise errors.OrganizationDeactivatedError(
                "Your organization is deactivated. Contact Superior One support."
            )

    async def _issue(self, user: User, *, family_id: uuid.UUID, now: datetime) -> IssuedTokens:
        access = issue_access_token(
            self.settings,
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role.value,
            token_version=user.token_version,
            now=now,
        )
        refresh, refresh_hash = new_opaque_token()
        self.session.add(
            RefreshToken(
                user_id=user.id,
                family_id=family_id,
                token_hash=refresh_hash,
                token_version=user.token_version,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_s),
            )
        )
        await self.session.flush()
        return IssuedTokens(
            access_token=access,
            refresh_token=refresh,
            expires_in=self.settings.access_token_ttl_s,
        )
