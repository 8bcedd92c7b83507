"""Load board result cache in Redis, invalidated by a generation counter.

Every cached page is stored with the board's generation number it was built
at. A change that adds a load to the board or removes one (post, edit while
posted, assign, cancel, expire) increments the generation after its
transaction commits, and that happens before the request that made the change
answers; from then on a page of an older generation is a miss, so no reader
can get a page that still lists an assigned or cancelled load. A reader gets
the generation and the page in one round trip (MGET); both keys carry the
``{board}`` hash tag so a Redis Cluster keeps them in one slot.

Redis failures never fail a search: the board is served from PostgreSQL, and
after a failure this process skips Redis for ``board_cache_retry_s`` seconds so
a dead Redis does not add its connect timeout to every request.
"""

from __future__ import annotations

import time

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.config import Settings
from superior_one.db import after_commit
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS, key

log = structlog.get_logger(__name__)


class BoardCache:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._ttl_s = settings.board_cache_ttl_s
        self._anchor_ttl_s = settings.board_page_anchor_ttl_s
        self._retry_s = settings.board_cache_retry_s
        self._generation_key = key(settings, "{board}", "generation")
        self._prefix = key(settings, "{board}")
        self._skip_until = 0.0

    @property
    def enabled(self) -> bool:
        return self._ttl_s > 0 and time.monotonic() >= self._skip_until

    def _failed(self, operation: str, exc: Exception) -> None:
        self._skip_until = time.monotonic() + self._retry_s
        log.warning("board_cache.unavailable", operation=operation, error_type=type(exc).__name__)

    async def generation(self) -> int | None:
        """Return the current generation, or ``None`` when Redis is unavailable."""
        if not self.enabled:
            return None
        try:
            raw = await self._redis.get(self._generation_key)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self._failed("generation", exc)
            return None
        return int(raw) if raw is not None else 0

    def _page_key(self, fingerprint: str) -> str:
        return f"{self._prefix}:page:{fingerprint}"

    async def get_page(self, fingerprint: str) -> tuple[int | None, bytes | None]:
        """Return the current generation and the page cached at it, in one round trip.

        ``(None, None)`` when Redis is unavailable; the page is ``None`` on a miss.
        """
        if not self.enabled:
            return None, None
        try:
            raw_generation, stored = await self._redis.mget(
                [self._generation_key, self._page_key(fingerprint)]
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self._failed("get_page", exc)
            return None, None
        generation = int(raw_generation) if raw_generation is not None else 0
        if not isinstance(stored, bytes):
            return generation, None
        stamp, _, body = stored.partition(b"\n")
        return generation, body if stamp == b"%d" % generation else None

    async def put_page(self, generation: int, fingerprint: str, body: bytes) -> None:
        """Cache ``body`` as built at ``generation`` (read before the search ran)."""
        try:
            await self._redis.set(
                self._page_key(fingerprint), b"%d\n" % generation + body, ex=self._ttl_s
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self._failed("put_page", exc)

    async def invalidate(self) -> None:
        """Start a new generation now; every page cached before is never read again."""
        try:
            generation = await self._redis.incr(self._generation_key)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            # NOTE: pages cached before this failure stay readable until their TTL
            # (board_cache_ttl_s) if Redis comes back before it runs out.
            self._failed("invalidate", exc)
            return
        log.debug("board_cache.invalidated", generation=generation)

    def invalidate_after_commit(self, session: AsyncSession) -> None:
        """Invalidate once ``session`` commits (at most once per transaction)."""
        if session.info.get("board_cache_invalidation"):
            return
        session.info["board_cache_invalidation"] = True

        async def hook() -> None:
            session.info.pop("board_cache_invalidation", None)
            await self.invalidate()

        after_commit(session, hook)

    # Legacy ``page`` numbers: the cursor that starts each page, remembered per search.

    def _anchor_key(self, search: str, page: int) -> str:
        return f"{self._prefix}:anchor:{search}:{page}"

    async def get_anchors(self, search: str, pages: list[int]) -> dict[int, str]:
        """Return the known start cursors among ``pages`` for one search (one round trip)."""
        if not pages or not self.enabled:
            return {}
        try:
            values = await self._redis.mget([self._anchor_key(search, p) for p in pages])
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self._failed("get_anchors", exc)
            return {}
        return {
            page: value.decode() if isinstance(value, bytes) else str(value)
            for page, value in zip(pages, values, strict=True)
            if value is not None
        }

    async def put_anchor(self, search: str, page: int, cursor: str) -> None:
        if not self.enabled:
            return
        try:
            await self._redis.set(self._anchor_key(search, page), cursor, ex=self._anchor_ttl_s)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self._failed("put_anchor", exc)
