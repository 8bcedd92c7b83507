"""Last known FMCSA replies in Redis, each with the time it was fetched.

The raw JSON body is stored, not our parsed model, so a change to the models
never makes old entries unreadable. Entries live for
``fmcsa_cache_retention_s``; whether one is fresh enough to skip a call is the
caller's choice (``max_age_s``). Only readable replies are stored. A failure is
never cached, so "FMCSA was down" cannot later read as "carrier not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS, key

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CachedReply:
    body: Any
    fetched_at: datetime


class ReplyCache:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._retention_s = settings.fmcsa_cache_retention_s

    def _key(self, path: str) -> str:
        return key(self._settings, "fmcsa", "reply", path)

    async def get(self, path: str) -> CachedReply | None:
        """Return the stored reply for ``path``, or ``None`` when absent or Redis is unreachable."""
        try:
            raw = await self._redis.get(self._key(path))
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("fmcsa.cache_read_failed", path=path, error_type=type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            entry = orjson.loads(raw)
            return CachedReply(
                body=entry["body"], fetched_at=datetime.fromisoformat(entry["fetchedAt"])
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("fmcsa.cache_entry_unreadable", path=path)
            return None

    async def put(self, path: str, body: Any, fetched_at: datetime) -> None:
        entry = orjson.dumps({"fetchedAt": fetched_at.isoformat(), "body": body})
        try:
            await self._redis.set(self._key(path), entry, ex=self._retention_s)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("fmcsa.cache_write_failed", path=path, error_type=type(exc).__name__)
