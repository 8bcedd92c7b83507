"""The authenticated principal and its cache.

A request with a valid access token is authenticated from, in order: a small
in-process cache, Redis, then PostgreSQL. Changes that revoke access (user or
organization deactivated, role changed, logout everywhere) bump the user's token
version, delete the Redis entry and publish an invalidation that every process
applies to its in-process cache at once.

The in-process cache is used only while this process's pub/sub subscription is
live: a process that might have missed an invalidation falls back to Redis,
whose entry was deleted by the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import asdict, dataclass

import orjson
import structlog
from cachetools import TTLCache
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.config import Settings
from superior_one.db import after_commit
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS, key

log = structlog.get_logger(__name__)

# A second delete shortly after the first closes the window in which a request
# that read the row before the change commits re-caches the old state.
SECOND_INVALIDATION_DELAY_S = 0.5
RESUBSCRIBE_DELAY_S = 1.0
LISTEN_POLL_S = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    organization_type: OrganizationType
    role: Role
    token_version: int
    is_active: bool
    organization_active: bool

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Principal:
        data = orjson.loads(raw)
        return cls(
            user_id=uuid.UUID(data["user_id"]),
            organization_id=uuid.UUID(data["organization_id"]),
            organization_type=OrganizationType(data["organization_type"]),
            role=Role(data["role"]),
            token_version=int(data["token_version"]),
            is_active=bool(data["is_active"]),
            organization_active=bool(data["organization_active"]),
        )

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN


async def load_principal(session: AsyncSession, user_id: uuid.UUID) -> Principal | None:
    """Read the principal's flags from PostgreSQL (one query)."""
    row = (
        await session.execute(
            select(
                User.id,
                User.organization_id,
                Organization.type,
                User.role,
                User.token_version,
                User.is_active,
                Organization.is_active,
            )
            .join(Organization, Organization.id == User.organization_id)
            .where(User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(
        user_id=row[0],
        organization_id=row[1],
        organization_type=row[2],
        role=row[3],
        token_version=row[4],
        is_active=row[5],
        organization_active=row[6],
    )


class PrincipalCache:
    """Two-level principal cache with cross-process invalidation over pub/sub."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._sessionmaker = sessionmaker
        self._local: TTLCache[uuid.UUID, Principal] = TTLCache(
            maxsize=max(settings.principal_local_max_entries, 1),
            ttl=settings.principal_local_ttl_s,
        )
        self._local_enabled = (
            settings.principal_local_max_entries > 0 and settings.principal_local_ttl_s > 0
        )
        self._channel = key(settings, "principal", "invalidate")
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def _redis_key(self, user_id: uuid.UUID) -> str:
        return key(self._settings, "principal", str(user_id))

    async def get(self, user_id: uuid.UUID) -> Principal | None:
        if self._local_enabled and self._subscribed.is_set():
            cached = self._local.get(user_id)
            if cached is not None:
                return cached

        principal = await self._get_from_redis(user_id)
        if principal is None:
            async with self._sessionmaker() as session:
                principal = await load_principal(session, user_id)
            if principal is None:
                return None
            await self._store_in_redis(principal)

        if self._local_enabled and self._subscribed.is_set():
            self._local[user_id] = principal
        return principal

    async def _get_from_redis(self, user_id: uuid.UUID) -> Principal | None:
        try:
            raw = await self._redis.get(self._redis_key(user_id))
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("principal_cache.redis_unavailable", error=str(exc))
            return None
        return Principal.from_json(raw) if raw is not None else None

    async def _store_in_redis(self, principal: Principal) -> None:
        try:
            await self._redis.set(
                self._redis_key(principal.user_id),
                principal.to_json(),
                ex=self._settings.principal_cache_ttl_s,
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("principal_cache.redis_unavailable", error=str(exc))

    async def invalidate(self, user_ids: list[uuid.UUID]) -> None:
        """Drop ``user_ids`` everywhere; call after the change has committed."""
        if not user_ids:
            return
        await self._invalidate_now(user_ids)
        task = asyncio.create_task(self._invalidate_later(user_ids))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def invalidate_after_commit(self, session: AsyncSession, user_ids: list[uuid.UUID]) -> None:
        """Drop ``user_ids`` everywhere once ``session``'s transaction has committed."""

        async def invalidate() -> None:
            await self.invalidate(user_ids)

        after_commit(session, invalidate)

    async def _invalidate_now(self, user_ids: list[uuid.UUID]) -> None:
        for user_id in user_ids:
            self._local.pop(user_id, None)
        payload = orjson.dumps([str(u) for u in user_ids])
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(*(self._redis_key(u) for u in user_ids))
                pipe.publish(self._channel, payload)
                await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            # Other processes stop trusting their local caches while their own
            # subscriptions are down, so they cannot serve the old state either.
            log.warning("principal_cache.invalidation_not_published", error=str(exc))

    async def _invalidate_later(self, user_ids: list[uuid.UUID]) -> None:
        await asyncio.sleep(SECOND_INVALIDATION_DELAY_S)
        await self._invalidate_now(user_ids)

    def start(self) -> None:
        """Start listening for invalidations from other processes."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="principal-invalidations")

    async def wait_until_subscribed(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        return self._subscribed.is_set()

    async def stop(self) -> None:
        tasks = [t for t in (self._listener, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listener = None

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    # Anything cached before this point may have missed a message.
                    self._local.clear()
                    self._subscribed.set()
                    log.info("principal_cache.subscribed", channel=self._channel)
                    while True:
                        # An explicit read timeout: the client's short socket
                        # timeout is meant for commands, not for an idle channel.
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=LISTEN_POLL_S
                        )
                        if message is not None and message.get("type") == "message":
                            self._apply(message["data"])
            except asyncio.CancelledError:
                self._subscribed.clear()
                raise
            except Exception as exc:
                self._subscribed.clear()
                self._local.clear()
                log.warning("principal_cache.subscription_lost", error=str(exc))
                await asyncio.sleep(RESUBSCRIBE_DELAY_S)

    def _apply(self, data: bytes) -> None:
        try:
            user_ids = [uuid.UUID(u) for u in orjson.loads(data)]
        except (orjson.JSONDecodeError, ValueError, TypeError):
            log.warning("principal_cache.invalid_message")
            return
        for user_id in user_ids:
            self._local.pop(user_id, None)
