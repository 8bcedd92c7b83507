"""structlog configuration: JSON lines in production, a console renderer in development.

Context variables (request id, job id, trace id) are merged into every line.
Keys that may carry credentials are masked before rendering, whatever the caller
passed, and string values (exception text included) are scrubbed of bearer
tokens, JWTs, ``password=...`` pairs and card numbers.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog

from superior_one.observability.redaction import REDACTED, is_sensitive_key, scrub_text
from superior_one.observability.tracing import add_trace_ids

# Values the logging setup and the access line produce (the route is a template,
# never the raw path); scrubbing them would only cost time.
_OWN_KEYS = frozenset(
    {
        "event", "level", "logger", "timestamp", "request_id", "trace_id", "span_id", "job_id",
        "method", "route", "error_class", "error_code",
    }
)  # fmt: skip


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in event_dict.items():
        if name in _OWN_KEYS:
            continue
        if is_sensitive_key(name):
            event_dict[name] = REDACTED
        elif isinstance(value, str):
            event_dict[name] = scrub_text(value)
    return event_dict


# structlog keeps one ContextVar per bound key in this private dict. Reading those
# few is several times cheaper than structlog's merge_contextvars and
# clear_contextvars, which walk every variable of the context (asyncio's,
# OpenTelemetry's, ...) on each line and each request. The public functions are
# the fallback if a structlog release drops the dict; a test reads it.
_BOUND_VARS: dict[str, ContextVar[Any]] | None = getattr(
    structlog.contextvars, "_CONTEXT_VARS", None
)
_PREFIX_LENGTH = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)


def merge_bound_context(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: what ``merge_contextvars`` adds, the bound context variables."""
    if _BOUND_VARS is None:
        return structlog.contextvars.merge_contextvars(logger, method, event_dict)
    # A copy: another thread binding a new key would change the dict mid-loop
    # (RuntimeError). dict.copy() runs in C, so no other thread runs during it.
    for key, var in _BOUND_VARS.copy().items():
        value = var.get()
        if value is not Ellipsis:
            event_dict.setdefault(key[_PREFIX_LENGTH:], value)
    return event_dict


def clear_bound_context() -> None:
    """Unbind every context variable bound with ``structlog.contextvars``."""
    if _BOUND_VARS is None:
        structlog.contextvars.clear_contextvars()
        return
    for var in _BOUND_VARS.copy().values():
        if var.get() is not Ellipsis:
            var.set(Ellipsis)


def _scrubbing(key: str) -> Callable[..., MutableMapping[str, Any]]:
    """Build a processor that scrubs the text under ``key``, when there is one."""

    def scrub(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        value = event_dict.get(key)
        if isinstance(value, str):
            event_dict[key] = scrub_text(value)
        return event_dict

    return scrub


# Exception text is rendered after redaction ran, so it is scrubbed on its own.
_scrub_exception = _scrubbing("exception")
# A standard library record's event is its formatted message, which may quote
# secrets (httpx logs each request's full URL), unlike our own dotted names.
_scrub_foreign_message = _scrubbing("event")


def _scrubbed_plain_traceback(sio: TextIO, exc_info: Any) -> None:
    """Write structlog's plain traceback, scrubbed like the JSON renderer's ``exception`` text."""
    traceback = io.StringIO()
    structlog.dev.plain_traceback(traceback, exc_info)
    sio.write(scrub_text(traceback.getvalue()))


class _UtcTimestamp:
    """structlog processor: ``timestamp`` as ISO 8601 in UTC with microseconds and ``Z``.

    The same text as ``TimeStamper(fmt="iso", utc=True)``, at a fraction of the
    cost: the date and time up to the second are formatted once per second.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        event_dict["timestamp"] = f"{self._prefix}.{nanoseconds // 1000:06d}Z"
        return event_dict


def _orjson_dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _Sink:
    """The text stream every line goes to, structlog's and the standard library's;
    :func:`configure_logging` points it at stderr or at a test's buffer."""

    def __init__(self) -> None:
        self.target: TextIO = sys.stderr

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


class _NamedWriteLogger(structlog.WriteLogger):
    """A structlog ``WriteLogger`` with a name, for the ``logger`` key."""

    def __init__(self, file: _Sink, name: str) -> None:
        super().__init__(file)  # type: ignore[arg-type]
        self.name = name


_SINK = _Sink()
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "err": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_ERROR_METHODS = frozenset({"error", "err", "exception", "critical", "fatal"})
_threshold = logging.INFO
# Called with each error-level event after redaction (Sentry registers one).
_error_hooks: list[Callable[[MutableMapping[str, Any]], None]] = []
# One list for the life of the process: loggers cached on first use keep a reference
# to it, so configuring again (the api factory, a test) still reaches them.
_PROCESSORS: list[Any] = []


_ACCESS_LOGGER = "superior_one.access"
_access_log = structlog.get_logger(_ACCESS_LOGGER)
_access_timestamp = _UtcTimestamp()
# Set by configure_logging: JSON lines at INFO or below, where write_access_line
# renders the line itself.
_access_line_direct = False


def write_access_line(fields: dict[str, Any]) -> None:
    """Write the info-level ``http.request`` line with ``fields`` (the dict is consumed).

    In JSON mode this builds the line the processor chain would, key for key,
    without structlog's bound logger and generic chain. Through the chain the line
    cost about 8 us in a timeit loop, roughly a twentieth of a cached request, and
    it is written for every request. A test compares both lines. Console mode goes
    through structlog.
    """
    if not _access_line_direct:
        _access_log.info("http.request", **fields)
        return
    fields["event"] = "http.request"
    merge_bound_context(None, "info", fields)
    add_trace_ids(None, "info", fields)
    fields["level"] = "info"
    fields["logger"] = _ACCESS_LOGGER
    _access_timestamp(None, "info", fields)
    redact_sensitive(None, "info", fields)
    _SINK.write(_orjson_dumps(fields) + "\n")
    _SINK.flush()


def register_error_hook(hook: Callable[[MutableMapping[str, Any]], None]) -> None:
    """Call ``hook`` with every error-level event, already redacted."""
    _error_hooks.append(hook)


def unregister_error_hook(hook: Callable[[MutableMapping[str, Any]], None]) -> None:
    if hook in _error_hooks:
        _error_hooks.remove(hook)


def _drop_below_level(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if _LEVELS.get(method, logging.INFO) < _threshold:
        raise structlog.DropEvent
    return event_dict


def _run_error_hooks(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if _error_hooks and method in _ERROR_METHODS:
        for hook in _error_hooks:
            hook(event_dict)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        merge_bound_context,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        _UtcTimestamp(),
        redact_sensitive,
    ]


def _renderer(json: bool) -> list[Any]:
    if not json:
        # A plain traceback: the default rich one prints every frame's local
        # variables, which took about 15 s per error on a loaded worker.
        return [
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=_scrubbed_plain_traceback
            )
        ]
    return [
        structlog.processors.format_exc_info,
        _scrub_exception,
        structlog.processors.JSONRenderer(serializer=_orjson_dumps),
    ]


def build_formatter(*, json: bool) -> logging.Formatter:
    """Build the formatter for the standard library's records (SQLAlchemy, httpx, servers)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), _scrub_foreign_message],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderer(json)],
    )


def configure_logging(
    *, level: str = "INFO", json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog, and route the standard library's logging to the same stream.

    structlog's own events are rendered and written directly, without the standard
    library's records and handlers, which cost about three times as much per line
    (bench/observability_overhead.py). ``stream`` replaces stderr (tests).
    """
    global _threshold, _access_line_direct
    _threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _access_line_direct = json and _threshold <= logging.INFO
    _SINK.target = stream if stream is not None else sys.stderr
    _PROCESSORS[:] = [_drop_below_level, *_shared_processors(), _run_error_hooks, *_renderer(json)]
    structlog.configure(
        processors=_PROCESSORS,
        logger_factory=lambda *args: _NamedWriteLogger(_SINK, str(args[0]) if args else ""),
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_SINK)
    handler.setFormatter(build_formatter(json=json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Uvicorn's own access log would duplicate the access line written by the
    # request middleware.
    logging.getLogger("uvicorn.access").disabled = True
