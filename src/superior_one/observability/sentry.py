"""Optional error reporting to Sentry, on when ``SO_SENTRY_DSN`` is set.

Sentry receives the error events that the logs already record: each error-level
structlog event (one ``log.exception`` line, one event) through a hook of the
logging setup, and error records of other libraries through Sentry's logging
integration. Request bodies are never sent, and :func:`scrub_event` removes
anything that looks like a credential from every event and breadcrumb before it
leaves the process. Traces stay with OpenTelemetry; Sentry's own tracing is off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping, MutableSequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import structlog

from superior_one.config import Settings
from superior_one.observability.logging import register_error_hook, unregister_error_hook
from superior_one.observability.redaction import (
    REDACTED,
    SENSITIVE_KEY_PARTS,
    is_sensitive_key,
    scrub_text,
)

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

log = structlog.get_logger(__name__)

_started = False


def setup_sentry(settings: Settings, *, service_name: str, transport: Any = None) -> bool:
    """Start the Sentry client once per process; return whether it runs.

    ``transport`` replaces the network transport (tests capture events with it).
    """
    global _started
    dsn = settings.sentry_dsn.get_secret_value()
    if _started or not dsn:
        return _started
    import sentry_sdk
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.environment,
        server_name=service_name,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=None,
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, *SENSITIVE_KEY_PARTS, "webkey", "card_number"],
            recursive=True,
        ),
        **options,
    )
    register_error_hook(capture_error_event)
    _started = True
    log.info("sentry.started", service=service_name, environment=settings.environment)
    return True


def stop_sentry() -> None:
    """Flush and close the client (tests, and process shutdown)."""
    global _started
    if not _started:
        return
    import sentry_sdk

    unregister_error_hook(capture_error_event)
    sentry_sdk.get_client().close(timeout=2.0)
    _started = False


def capture_error_event(event_dict: MutableMapping[str, Any]) -> None:
    """Send one error-level log event: its exception if it has one, else its name."""
    import sentry_sdk

    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    with sentry_sdk.new_scope() as scope:
        for name, value in event_dict.items():
            if name != "exc_info":
                scope.set_extra(name, value if isinstance(value, (int, float)) else str(value))
        scope.set_tag("log_event", str(event_dict.get("event")))
        if isinstance(exc_info, BaseException) or (
            isinstance(exc_info, tuple) and exc_info[0] is not None
        ):
            sentry_sdk.capture_exception(exc_info)
        else:
            sentry_sdk.capture_message(str(event_dict.get("event")), level="error")


def scrub_event(event: Event, _hint: Hint) -> Event | None:
    """Drop request bodies, cookies and credential headers; scrub every string."""
    request: Any = event.get("request")
    if isinstance(request, MutableMapping):
        request.pop("data", None)
        request.pop("cookies", None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = _strip_query(url)
        if request.get("query_string"):
            request["query_string"] = REDACTED
        headers = request.get("headers")
        if isinstance(headers, MutableMapping):
            for name in list(headers):
                if is_sensitive_key(name):
                    headers[name] = REDACTED
    result: Event = _walk(event, scrub_text)
    return result


def scrub_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any] | None:
    data = crumb.get("data")
    if isinstance(data, MutableMapping):
        # httpx breadcrumbs carry the full URL; FMCSA puts its key in the query.
        url = data.get("url")
        if isinstance(url, str):
            data["url"] = _strip_query(url)
        data.pop("http.query", None)
    result: dict[str, Any] = _walk(crumb, scrub_text)
    return result


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _walk(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, MutableMapping):
        for name in list(value):
            value[name] = REDACTED if is_sensitive_key(str(name)) else _walk(value[name], scrub)
        return value
    if isinstance(value, MutableSequence):
        for index, item in enumerate(value):
            value[index] = _walk(item, scrub)
        return value
    return value
