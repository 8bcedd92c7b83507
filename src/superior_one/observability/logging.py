"""structlog configuration: JSON lines in production, a console renderer in development.

Context variables (request id, job id, trace id) are merged into every line.
Keys that may carry credentials are masked before rendering, whatever the caller
passed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

# Lower-case substrings of keys whose values never reach a log line.
SENSITIVE_KEY_PARTS = (
    "password",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "webkey",
    "card",
    "cvc",
)
REDACTED = "[redacted]"


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name in list(event_dict):
        lowered = name.lower()
        if any(part in lowered for part in SENSITIVE_KEY_PARTS):
            event_dict[name] = REDACTED
    return event_dict


def _orjson_dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(*, level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and route the standard library's logging through it."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    exception_formatter: list[Any] = [structlog.processors.format_exc_info] if json else []

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_formatter,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Uvicorn's own access log would duplicate the access line written by the
    # request middleware.
    logging.getLogger("uvicorn.access").disabled = True
