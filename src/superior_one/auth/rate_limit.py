"""Login attempt limits per account and per client address, counted in Redis."""

from __future__ import annotations

import hashlib

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from superior_one.auth.errors import LoginRateLimitedError
from superior_one.config import Settings
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)


class LoginRateLimiter:
    def __init__(self, settings: Settings, storage: RedisStorage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account: RateLimitItem = parse(settings.login_limit_per_account)
        self._per_address: RateLimitItem = parse(settings.login_limit_per_address)

    async def hit(self, email: str, address: str) -> None:
        """Count one attempt; raise 429 once either limit is exhausted.

        NOTE: with Redis down the attempt is allowed and logged: locking every
        user out during a Redis outage is worse than a short unthrottled window.
        """
        # The email is hashed so the Redis keys hold no personal data.
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        try:
            account_ok = await self._limiter.hit(self._per_account, "login-account", account)
            address_ok = await self._limiter.hit(self._per_address, "login-address", address)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("auth.login_limit_unavailable", error=str(exc))
            return
        if not (account_ok and address_ok):
            item = self._per_account if not account_ok else self._per_address
            retry_after = item.get_expiry()
            raise LoginRateLimitedError(
                f"Too many login attempts. Wait {retry_after} seconds before trying again.",
                headers={"Retry-After": str(retry_after)},
            )
