"""Failed-login limits per account and per client address, counted in Redis."""

from __future__ import annotations

import hashlib
import math
import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from superior_one.auth.errors import LoginRateLimitedError
from superior_one.config import Settings
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

ACCOUNT_NAMESPACE = "login-account"
ADDRESS_NAMESPACE = "login-address"


class LoginRateLimiter:
    """Block an account or address after too many failed logins in a moving window.

    Only failures are counted, so an office of users behind one address can log
    in all day; once a limit is reached, every attempt for that account or
    address gets 429, correct password or not, until the window frees up.

    NOTE: with Redis down no limit is enforced and a warning is logged: locking
    every user out during a Redis outage is worse than a short unthrottled window.
    """

    def __init__(self, settings: Settings, storage: RedisStorage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account: RateLimitItem = parse(settings.login_limit_per_account)
        self._per_address: RateLimitItem = parse(settings.login_limit_per_address)

    async def check(self, email: str, address: str) -> None:
        """Raise 429 when the account or the address has used up its failures."""
        try:
            for item, namespace, identifier in self._limits(email, address):
                if not await self._limiter.test(item, namespace, identifier):
                    stats = await self._limiter.get_window_stats(item, namespace, identifier)
                    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                    raise LoginRateLimitedError(
                        f"Too many failed login attempts. Wait {retry_after} seconds before "
                        "trying again.",
                        headers={"Retry-After": str(retry_after)},
                    )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("auth.login_limit_unavailable", error=str(exc))

    async def record_failure(self, email: str, address: str) -> None:
        try:
            for item, namespace, identifier in self._limits(email, address):
                await self._limiter.hit(item, namespace, identifier)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("auth.login_limit_unavailable", error=str(exc))

    def _limits(self, email: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        # The email is hashed so the Redis keys hold no personal data.
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        return [
            (self._per_account, ACCOUNT_NAMESPACE, account),
            (self._per_address, ADDRESS_NAMESPACE, address),
        ]
