"""structlog configuration: JSON lines in production, a console renderer in development.

Context variables (request id, job id, trace id) are merged into every line.
Keys that may carry credentials are masked before rendering, whatever the caller
passed, and string values (exception text included) are scrubbed of bearer
tokens, JWTs, ``password=...`` pairs and card numbers.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from superior_one.observability.tracing import add_trace_ids

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


# Secrets found inside free text: exception messages, URLs, values logged by mistake.
_SECRET_IN_TEXT = re.compile(
    r"(?P<jwt>\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*)"
    r"|(?P<bearer>\b[Bb]earer\s+[\w.~+/=-]{8,})"
    r"|(?P<pair>\b[\w-]*?(?i:password|passwd|secret|token|api_?key|web_?key|authorization)[\w-]*"
    r"[\"']?\s*[=:]\s*[\"']?[^\s,;&\"'}]+)"
    r"|(?P<card>(?<![\d.])(?:\d[ -]?){12,18}\d(?![\d.]))"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _replace_secret(match: re.Match[str]) -> str:
    if match.group("card") is not None:
        digits = re.sub(r"[ -]", "", match.group("card"))
        return REDACTED if _luhn_valid(digits) else match.group("card")
    if match.group("pair") is not None:
        name = re.match(r"[\w-]+", match.group("pair"))
        return f"{name.group(0) if name else 'secret'}={REDACTED}"
    return REDACTED


def scrub_text(text: str) -> str:
    """``text`` with tokens, ``password=...`` pairs and card numbers replaced."""
    if len(text) < 8:
        return text
    return _SECRET_IN_TEXT.sub(_replace_secret, text)


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in list(event_dict.items()):
        lowered = name.lower()
        if any(part in lowered for part in SENSITIVE_KEY_PARTS):
            event_dict[name] = REDACTED
        elif isinstance(value, str):
            event_dict[name] = scrub_text(value)
    return event_dict


def _scrub_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = scrub_text(exception)
    return event_dict


def _orjson_dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive,
    ]


def build_formatter(*, json: bool) -> logging.Formatter:
    """The stdlib formatter that renders structlog's and foreign records alike."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Exception text is rendered after redaction ran, so it is scrubbed on its own.
    # NOTE: the console renderer (development) prints tracebacks unscrubbed.
    exception_formatter: list[Any] = (
        [structlog.processors.format_exc_info, _scrub_exception] if json else []
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_formatter,
            renderer,
        ],
    )


def configure_logging(*, level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and route the standard library's logging through it."""
    structlog.configure(
        # Dropping a line below the level before any processor runs keeps
        # disabled debug and info lines nearly free.
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = build_formatter(json=json)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Uvicorn's own access log would duplicate the access line written by the
    # request middleware.
    logging.getLogger("uvicorn.access").disabled = True
