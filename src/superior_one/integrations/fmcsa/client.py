"""Async client of the FMCSA QCMobile API.

Build one per process with :meth:`FmcsaClient.create` from the process's settings,
Redis client and ``httpx.AsyncClient``. Every call then passes the shared budget,
breaker and retries (:mod:`.resilience`) and the reply cache (:mod:`.cache`).
Each method returns a :class:`Fetched` value with the fetch time and whether
the data came from the cache.

How replies are read:

* HTML instead of JSON (any status) is the maintenance page:
  :class:`FmcsaMaintenanceError`, not retried, since a maintenance window
  outlasts any retry horizon and each retry costs budget;
* 5xx, 429, timeouts and network errors: :class:`FmcsaTransientError`, retried;
* 404 whose content mentions the webKey, 401 and 403: :class:`FmcsaConfigurationError`.
  A 404 that is not a QCMobile JSON reply means a wrong base URL, so it is one too;
* 404 with a QCMobile JSON reply, and 200 with ``content: null``: nothing found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
import orjson
import structlog
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis

from superior_one.config import Settings
from superior_one.integrations.fmcsa import schemas
from superior_one.integrations.fmcsa.cache import ReplyCache
from superior_one.integrations.fmcsa.errors import (
    FmcsaConfigurationError,
    FmcsaError,
    FmcsaMaintenanceError,
    FmcsaResponseError,
    FmcsaTransientError,
)
from superior_one.integrations.fmcsa.resilience import FmcsaGuard
from superior_one.observability import metrics
from superior_one.redis import create_limits_storage

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_DOT_OR_DOCKET = 99_999_999


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A parsed FMCSA reply and the time it was fetched."""

    value: T
    fetched_at: datetime
    from_cache: bool

    def age_s(self, now: datetime | None = None) -> float:
        return max(0.0, ((now or datetime.now(UTC)) - self.fetched_at).total_seconds())


def http_timeout(settings: Settings) -> httpx.Timeout:
    """Return the explicit timeouts every FMCSA request uses."""
    return httpx.Timeout(
        settings.fmcsa_read_timeout_s,
        connect=settings.fmcsa_connect_timeout_s,
        pool=settings.fmcsa_connect_timeout_s,
    )


class FmcsaClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        guard: FmcsaGuard | None = None,
        cache: ReplyCache | None = None,
    ) -> None:
        self._http = http
        self._base_url = settings.fmcsa_base_url.rstrip("/")
        self._web_key = settings.fmcsa_web_key
        self._timeout = http_timeout(settings)
        self._fresh_s = settings.fmcsa_cache_fresh_s
        self._guard = guard
        self._cache = cache
        _hide_web_key_in_httpx_logs()

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        http: httpx.AsyncClient,
        redis: Redis,
        limits_storage: RedisStorage | None = None,
    ) -> FmcsaClient:
        """Build the client with budget, breaker, retries and cache on the process's Redis."""
        storage = limits_storage or create_limits_storage(redis, settings)
        return cls(
            http,
            settings,
            guard=FmcsaGuard(settings, redis=redis, limits_storage=storage),
            cache=ReplyCache(redis, settings),
        )

    async def carrier(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[schemas.CarrierRecord | None]:
        """Fetch the carrier with this USDOT number; ``value`` is ``None`` when FMCSA has none."""
        path = f"carriers/{_checked(dot_number, 'DOT number')}"
        return await self._fetch(path, "carrier", schemas.parse_carrier, max_age_s)

    async def carriers_by_docket(
        self, mc_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.CarrierRecord]]:
        """Fetch the carriers holding this MC docket number (QCMobile returns a list)."""
        path = f"carriers/docket-number/{_checked(mc_number, 'MC number')}"
        return await self._fetch(path, "docket_number", schemas.parse_carriers, max_age_s)

    async def authority(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.CarrierAuthority]]:
        path = f"carriers/{_checked(dot_number, 'DOT number')}/authority"
        return await self._fetch(path, "authority", schemas.parse_authority, max_age_s)

    async def out_of_service(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.OutOfServiceOrder]]:
        path = f"carriers/{_checked(dot_number, 'DOT number')}/oos"
        return await self._fetch(path, "oos", schemas.parse_out_of_service, max_age_s)

    async def basics(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.BasicMeasure]]:
        path = f"carriers/{_checked(dot_number, 'DOT number')}/basics"
        return await self._fetch(path, "basics", schemas.parse_basics, max_age_s)

    async def docket_numbers(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.DocketNumber]]:
        path = f"carriers/{_checked(dot_number, 'DOT number')}/docket-numbers"
        return await self._fetch(path, "docket_numbers", schemas.parse_docket_numbers, max_age_s)

    async def cargo_carried(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.CargoClass]]:
        path = f"carriers/{_checked(dot_number, 'DOT number')}/cargo-carried"
        return await self._fetch(path, "cargo_carried", schemas.parse_cargo_carried, max_age_s)

    async def operation_classification(
        self, dot_number: int, *, max_age_s: float | None = None
    ) -> Fetched[list[schemas.OperationClass]]:
        path = f"carriers/{_checked(dot_number, 'DOT number')}/operation-classification"
        return await self._fetch(
            path, "operation_classification", schemas.parse_operation_classification, max_age_s
        )

    async def _fetch(
        self,
        path: str,
        endpoint: str,
        parse: Callable[[Any], T],
        max_age_s: float | None,
    ) -> Fetched[T]:
        max_age = self._fresh_s if max_age_s is None else max_age_s
        cached = await self._cache.get(path) if self._cache is not None else None
        if cached is not None and max_age > 0:
            hit = _parse_cached(cached.body, cached.fetched_at, parse, path)
            if hit is not None and hit.age_s() <= max_age:
                log.debug("fmcsa.cache_hit", endpoint=endpoint, path=path)
                return hit

        try:
            body = await self._call(path, endpoint)
            value = parse(body)
        except FmcsaError as exc:
            if cached is not None:
                exc.last_known = _parse_cached(cached.body, cached.fetched_at, parse, path)
            raise

        fetched_at = datetime.now(UTC)
        if self._cache is not None:
            await self._cache.put(path, body, fetched_at)
        return Fetched(value=value, fetched_at=fetched_at, from_cache=False)

    async def _call(self, path: str, endpoint: str) -> Any:
        if not self._web_key.get_secret_value():
            raise FmcsaConfigurationError(
                "No FMCSA webKey is configured; set SO_FMCSA_WEB_KEY.", reason="no_web_key"
            )
        send: Callable[[], Awaitable[Any]] = lambda: self._send(path, endpoint)  # noqa: E731
        if self._guard is None:
            return await send()
        return await self._guard.call(send, endpoint=endpoint)

    async def _send(self, path: str, endpoint: str) -> Any:
        # One attempt: timed and counted by metrics.external_call, which labels a
        # failure with the raised error's metric_kind.
        started = time.perf_counter()
        with metrics.external_call("fmcsa", endpoint):
            try:
                response = await self._http.get(
                    f"{self._base_url}/{path}",
                    params={"webKey": self._web_key.get_secret_value()},
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
            except httpx.TimeoutException as exc:
                _log_call(endpoint, path, started, outcome="timeout")
                raise FmcsaTransientError("FMCSA request timed out.", reason="timeout") from exc
            except httpx.TransportError as exc:
                _log_call(endpoint, path, started, outcome="network_error")
                raise FmcsaTransientError(
                    "FMCSA connection failed.", reason="network_error"
                ) from exc

            _log_call(endpoint, path, started, outcome=str(response.status_code))
            return read_reply(response)


def read_reply(response: httpx.Response) -> Any:
    """Return the JSON body of a QCMobile reply, or raise the typed error it represents."""
    status = response.status_code
    if _is_html(response):
        raise FmcsaMaintenanceError(
            "FMCSA is serving its maintenance page; try again later.", status_code=status
        )
    if status == 429:
        raise FmcsaTransientError(
            "FMCSA is limiting our requests.",
            reason="rate_limited",
            status_code=status,
            retry_after_s=_retry_after_s(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise FmcsaTransientError(
            f"FMCSA returned server error {status}.",
            reason="server_error",
            status_code=status,
            retry_after_s=_retry_after_s(response.headers.get("Retry-After")),
        )
    if status in {401, 403}:
        raise _rejected_web_key(status)

    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        if status == 404:
            raise FmcsaConfigurationError(
                "FMCSA returned 404 without a QCMobile body; check SO_FMCSA_BASE_URL.",
                reason="wrong_base_url",
            ) from exc
        raise FmcsaResponseError(f"FMCSA returned {status} with a body that is not JSON.") from exc

    message = schemas.content_message(body) if isinstance(body, dict) else None
    if message is not None and "webkey" in message.lower():
        raise _rejected_web_key(status)
    if status == 404 and not (isinstance(body, dict) and "content" in body):
        raise FmcsaConfigurationError(
            "FMCSA returned 404 without a QCMobile body; check SO_FMCSA_BASE_URL.",
            reason="wrong_base_url",
        )
    if status >= 400 and status != 404:
        raise FmcsaResponseError(f"FMCSA rejected the request with status {status}.")
    return body


def _rejected_web_key(status: int) -> FmcsaConfigurationError:
    return FmcsaConfigurationError(
        f"FMCSA rejected our webKey (status {status}); check SO_FMCSA_WEB_KEY.",
        reason="web_key_rejected",
    )


def _is_html(response: httpx.Response) -> bool:
    if "html" in response.headers.get("content-type", "").lower():
        return True
    return response.content.lstrip()[:1] == b"<"


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_cached(
    body: Any, fetched_at: datetime, parse: Callable[[Any], T], path: str
) -> Fetched[T] | None:
    try:
        return Fetched(value=parse(body), fetched_at=fetched_at, from_cache=True)
    except FmcsaError:
        log.warning("fmcsa.cache_entry_unreadable", path=path)
        return None


def _checked(number: int, what: str) -> int:
    if isinstance(number, bool) or not 0 < number <= MAX_DOT_OR_DOCKET:
        raise ValueError(f"{what} must be between 1 and {MAX_DOT_OR_DOCKET}, got {number!r}")
    return number


def _log_call(endpoint: str, path: str, started: float, *, outcome: str) -> None:
    log.info(
        "fmcsa.call",
        endpoint=endpoint,
        path=path,
        outcome=outcome,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


class _RedactWebKey(logging.Filter):
    """httpx logs every request URL at INFO, and ours carries the webKey."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_set_param("webKey", "[redacted]")
                if isinstance(arg, httpx.URL) and "webKey" in arg.params
                else arg
                for arg in record.args
            )
        return True


# OpenTelemetry's httpx instrumentation puts the full URL, webKey included, on each
# client span; the exporter wrapper (observability/span_redaction.py) masks it there.
def _hide_web_key_in_httpx_logs() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactWebKey) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactWebKey())
