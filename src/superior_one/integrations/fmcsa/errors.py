"""Typed FMCSA errors.

Every error is an :class:`~superior_one.errors.AppError` with status 503, so an
endpoint that lets one escape renders a problem document without leaking the
upstream reply. Callers that verify carriers catch :class:`FmcsaUnavailableError`
and report UNAVAILABLE; they never treat any of these as "verified".
"""

from __future__ import annotations

import math
from typing import Any

from superior_one.errors import AppError


class FmcsaError(AppError):
    """Base of FMCSA errors.

    ``reason`` is a short machine-readable cause (``timeout``, ``maintenance``,
    ``web_key_rejected``...). ``last_known`` is filled in by the client with the
    last cached reply for the same request (a
    :class:`~superior_one.integrations.fmcsa.client.Fetched`), or stays ``None``.
    """

    status = 503
    code = "fmcsa_error"
    title = "FMCSA lookup failed"
    # Failure kind for so_external_call_errors (observability.metrics vocabulary).
    metric_kind: str = "other"

    def __init__(self, detail: str, *, reason: str | None = None, **extra: Any) -> None:
        self.reason = reason or self.code
        super().__init__(detail, reason=self.reason, **extra)
        self.last_known: Any = None


class FmcsaConfigurationError(FmcsaError):
    """FMCSA rejected our webKey or the base URL is wrong. Never retried."""

    code = "fmcsa_misconfigured"
    title = "FMCSA integration misconfigured"
    metric_kind = "http_4xx"


class FmcsaResponseError(FmcsaError):
    """FMCSA returned a body we cannot read (unexpected shape or not JSON)."""

    code = "fmcsa_bad_response"
    title = "FMCSA returned an unreadable response"


class FmcsaUnavailableError(FmcsaError):
    """FMCSA cannot be called right now; ``reason`` gives the cause."""

    code = "fmcsa_unavailable"
    title = "FMCSA unavailable"

    def __init__(self, detail: str, *, reason: str, **extra: Any) -> None:
        super().__init__(detail, reason=reason, **extra)


class FmcsaTransientError(FmcsaUnavailableError):
    """5xx, 429, timeout or network failure: worth retrying with backoff.

    ``retry_after_s`` carries FMCSA's Retry-After header (seconds) when it sent one.
    """

    def __init__(
        self,
        detail: str,
        *,
        reason: str,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail, reason=reason)
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.metric_kind = _TRANSIENT_METRIC_KINDS.get(reason, "other")


class FmcsaMaintenanceError(FmcsaUnavailableError):
    """FMCSA served its HTML maintenance page instead of JSON."""

    metric_kind = "http_5xx"

    def __init__(self, detail: str, *, status_code: int) -> None:
        super().__init__(detail, reason="maintenance")
        self.status_code = status_code


class FmcsaCircuitOpenError(FmcsaUnavailableError):
    """The shared circuit breaker is open: no call is made until it half-opens."""

    metric_kind = "circuit_open"

    def __init__(self, detail: str, *, retry_in_s: float) -> None:
        super().__init__(detail, reason="circuit_open", headers=_retry_after(retry_in_s))
        self.retry_in_s = retry_in_s


class FmcsaOverBudgetError(FmcsaUnavailableError):
    """The shared call budget stayed exhausted for longer than we may wait."""

    def __init__(self, detail: str, *, retry_in_s: float) -> None:
        super().__init__(detail, reason="over_budget", headers=_retry_after(retry_in_s))
        self.retry_in_s = retry_in_s


_TRANSIENT_METRIC_KINDS = {
    "timeout": "timeout",
    "network_error": "connection",
    "rate_limited": "rate_limited",
    "server_error": "http_5xx",
}


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
